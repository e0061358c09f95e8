-- Switchboard schema for PostgreSQL. Timestamps are unix milliseconds; ids are
-- text compared bytewise (COLLATE "C", so ordering matches SQLite's); every
-- column holding conversation content is AES-GCM ciphertext.

CREATE TABLE tenants (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    config      TEXT    NOT NULL,
    kill_switch BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE sessions (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    owner            TEXT COLLATE "C" NOT NULL,
    status           TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    last_activity_at BIGINT  NOT NULL,
    message_count    BIGINT  NOT NULL DEFAULT 0,
    latest_seq       BIGINT  NOT NULL DEFAULT 0,
    admin_assisted   BOOLEAN NOT NULL DEFAULT FALSE,
    takeover         TEXT,
    metadata         BYTEA
);

-- The owner's list (newest activity first, ties by id) and the admin filters
-- and sorts of SPEC §12.
CREATE INDEX sessions_owner_activity ON sessions (tenant_id, owner, last_activity_at DESC, id DESC);
CREATE INDEX sessions_tenant_created ON sessions (tenant_id, created_at, id);
CREATE INDEX sessions_tenant_activity ON sessions (tenant_id, last_activity_at, id);
CREATE INDEX sessions_tenant_admin_assisted ON sessions (tenant_id, admin_assisted);

CREATE TABLE messages (
    session_id        TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq               BIGINT  NOT NULL,
    tenant_id         TEXT COLLATE "C" NOT NULL,
    role              TEXT    NOT NULL,
    content           BYTEA   NOT NULL,
    author            TEXT,
    status            TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL,
    token_count       BIGINT  NOT NULL DEFAULT 0,
    client_message_id TEXT COLLATE "C",
    turn_id           TEXT COLLATE "C",
    meta              TEXT,
    lease_node        TEXT COLLATE "C",
    lease_until       BIGINT,
    tools             BYTEA,
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, client_message_id)
);

-- Only in-flight answers are indexed: "is one streaming in this session?" and
-- the lease reapers stay cheap however large the table grows.
CREATE INDEX messages_streaming ON messages (session_id) WHERE status = 'streaming';
CREATE INDEX messages_streaming_lease ON messages (lease_until) WHERE status = 'streaming';

-- One encrypted canary per key id, to tell at startup whether the configured
-- keys can read this database.
CREATE TABLE keycheck (
    kid        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    canary     BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);
