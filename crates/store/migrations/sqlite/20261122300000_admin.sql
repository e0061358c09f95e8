-- The admin session list sorted by message count (SPEC §12); the other sorts
-- and filters have their indexes since the first schema.
CREATE INDEX sessions_tenant_message_count ON sessions (tenant_id, message_count, id);

-- Small settings every node must agree on, as JSON by name (the global kill
-- switch set through the admin API).
CREATE TABLE runtime_settings (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
