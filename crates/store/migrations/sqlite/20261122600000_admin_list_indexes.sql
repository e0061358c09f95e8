-- The admin session list at a million sessions (SPEC §12; measured in
-- docs/benchmarks.md). SQLite keeps no statistics here and prefers an index
-- that yields the asked order to one that narrows more, so a narrow filter
-- needs an index of its own in that order, or it walks the tenant's whole
-- sort index (seconds at a million sessions).

-- A user's sessions by creation (the owner's other index is by activity).
CREATE INDEX sessions_tenant_owner_created ON sessions (tenant_id, owner, created_at, id);

-- Sessions an agent holds now, and sessions an agent ever helped: few of
-- each, so partial indexes, one per sort key, which only those sessions'
-- writes touch. The list writes these values as literals so that they apply.
CREATE INDEX sessions_human_created ON sessions (tenant_id, created_at, id) WHERE status = 'human';
CREATE INDEX sessions_human_activity ON sessions (tenant_id, last_activity_at, id) WHERE status = 'human';
CREATE INDEX sessions_human_message_count ON sessions (tenant_id, message_count, id) WHERE status = 'human';
CREATE INDEX sessions_assisted_created ON sessions (tenant_id, created_at, id) WHERE admin_assisted = TRUE;
CREATE INDEX sessions_assisted_activity ON sessions (tenant_id, last_activity_at, id) WHERE admin_assisted = TRUE;
CREATE INDEX sessions_assisted_message_count ON sessions (tenant_id, message_count, id)
    WHERE admin_assisted = TRUE;

-- They replace this one: it yields no order, so no plan of the list used it.
DROP INDEX sessions_tenant_admin_assisted;
