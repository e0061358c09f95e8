-- The admin audit log (SPEC §12): appended one at a time, each entry sealed
-- by an HMAC over its fields and the seal before it (the key is not in the
-- database), so edits, insertions and removals break the chain.
CREATE TABLE audit_log (
    seq        BIGINT NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT COLLATE "C" NOT NULL,
    actor_name TEXT    NOT NULL,
    tenant_id  TEXT COLLATE "C",
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    prev_mac   TEXT    NOT NULL,
    mac        TEXT    NOT NULL
);
-- A tenant's agents page through their tenant's entries.
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
