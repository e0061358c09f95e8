-- Switchboard schema for SQLite. Timestamps are unix milliseconds; ids are
-- text; every column holding conversation content is AES-GCM ciphertext.

CREATE TABLE tenants (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    config      TEXT    NOT NULL,
    kill_switch INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id               TEXT    NOT NULL PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    message_count    INTEGER NOT NULL DEFAULT 0,
    latest_seq       INTEGER NOT NULL DEFAULT 0,
    admin_assisted   INTEGER NOT NULL DEFAULT 0,
    takeover         TEXT,
    metadata         BLOB
) STRICT;

-- The owner's list (newest activity first, ties by id) and the admin filters
-- and sorts of SPEC §12.
CREATE INDEX sessions_owner_activity ON sessions (tenant_id, owner, last_activity_at DESC, id DESC);
CREATE INDEX sessions_tenant_created ON sessions (tenant_id, created_at, id);
CREATE INDEX sessions_tenant_activity ON sessions (tenant_id, last_activity_at, id);
CREATE INDEX sessions_tenant_admin_assisted ON sessions (tenant_id, admin_assisted);

CREATE TABLE messages (
    session_id        TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    tenant_id         TEXT    NOT NULL,
    role              TEXT    NOT NULL,
    content           BLOB    NOT NULL,
    author            TEXT,
    status            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    token_count       INTEGER NOT NULL DEFAULT 0,
    client_message_id TEXT,
    turn_id           TEXT,
    meta              TEXT,
    lease_node        TEXT,
    lease_until       INTEGER,
    tools             BLOB,
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, client_message_id)
) STRICT;

-- Only in-flight answers are indexed: "is one streaming in this session?" and
-- the lease reapers stay cheap however large the table grows.
CREATE INDEX messages_streaming ON messages (session_id) WHERE status = 'streaming';
CREATE INDEX messages_streaming_lease ON messages (lease_until) WHERE status = 'streaming';

-- One encrypted canary per key id, to tell at startup whether the configured
-- keys can read this database.
CREATE TABLE keycheck (
    kid        TEXT    NOT NULL PRIMARY KEY,
    canary     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
