-- Usage and budgets (SPEC §13). One event per finished turn, kept after the
-- session is deleted (it is what the tenant is billed for); per-day sums per
-- tenant and per subject, updated in the same transaction; budget
-- reservations of turns still running. Days are UTC days since 1970-01-01;
-- money is integer micro-dollars.
CREATE TABLE usage_events (
    session_id        TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    tenant_id         TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    day               INTEGER NOT NULL,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    estimated         INTEGER NOT NULL,
    cost_micro_usd    INTEGER NOT NULL,
    first_token_ms    INTEGER,
    total_ms          INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT;
CREATE INDEX usage_events_tenant_day ON usage_events (tenant_id, day);

CREATE TABLE usage_daily (
    tenant_id         TEXT    NOT NULL,
    day               INTEGER NOT NULL,
    turns             INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micro_usd    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
) STRICT;

CREATE TABLE usage_subject_daily (
    tenant_id TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    day       INTEGER NOT NULL,
    tokens    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, subject, day)
) STRICT;

CREATE TABLE budget_reservations (
    id             TEXT    NOT NULL PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    day            INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX budget_reservations_tenant_day ON budget_reservations (tenant_id, day);
