-- Outbound events (SPEC §19): the durable outbox, one row per event and
-- delivery, written in the transaction of the change that causes it. `id`
-- is the event's id and `webhook-id` (a v7 uuid: ids sort by time). `body`
-- is the JSON sent, encrypted like content (sealed at the row's id).
CREATE TABLE outbox (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    lease_node      TEXT,
    lease_until     INTEGER
) STRICT;
-- The worker's scan: rows waiting to be sent, by when they are due (held
-- ones too: a held row whose endpoint was resumed meanwhile is sent).
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('pending', 'held');
-- The gauges count every status but `delivered`.
CREATE INDEX outbox_open ON outbox (status) WHERE status <> 'delivered';
-- The admin list (a tenant's rows, newest first, by status) and holds.
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status, id);
CREATE INDEX outbox_tenant_id ON outbox (tenant_id, id);
-- The purges: delivered rows by delivery, dead and gone ones by creation.
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status = 'delivered';
CREATE INDEX outbox_ended ON outbox (created_at) WHERE status IN ('dead', 'gone');
-- An erased subject's sessions' rows.
CREATE INDEX outbox_session ON outbox (session_id);

-- A tenant whose endpoint answered 410: its new events are held until an
-- admin resumes it.
CREATE TABLE event_endpoints_disabled (
    tenant_id   TEXT    NOT NULL PRIMARY KEY,
    disabled_at INTEGER NOT NULL
) STRICT;

-- The last activity a `session.idle` was written for: one per quiet stretch.
ALTER TABLE sessions ADD COLUMN idle_for INTEGER;
