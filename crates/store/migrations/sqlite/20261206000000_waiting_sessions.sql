-- Sessions waiting for an agent (the model asked for a person, SPEC §16):
-- few at a time, like those an agent holds, so the same partial indexes,
-- one per sort key of the admin list (see 20261122600000_admin_list_indexes).
CREATE INDEX sessions_waiting_created ON sessions (tenant_id, created_at, id) WHERE status = 'waiting';
CREATE INDEX sessions_waiting_activity ON sessions (tenant_id, last_activity_at, id) WHERE status = 'waiting';
CREATE INDEX sessions_waiting_message_count ON sessions (tenant_id, message_count, id) WHERE status = 'waiting';
