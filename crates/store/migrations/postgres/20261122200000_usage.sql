-- Usage and budgets (SPEC §13). One event per finished turn, kept after the
-- session is deleted (it is what the tenant is billed for); per-day sums per
-- tenant and per subject, updated in the same transaction; budget
-- reservations of turns still running. Days are UTC days since 1970-01-01;
-- money is integer micro-dollars.
CREATE TABLE usage_events (
    session_id        TEXT COLLATE "C" NOT NULL,
    seq               BIGINT NOT NULL,
    tenant_id         TEXT COLLATE "C" NOT NULL,
    subject           TEXT COLLATE "C" NOT NULL,
    day               BIGINT NOT NULL,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    estimated         BIGINT NOT NULL,
    cost_micro_usd    BIGINT NOT NULL,
    first_token_ms    BIGINT,
    total_ms          BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX usage_events_tenant_day ON usage_events (tenant_id, day);

CREATE TABLE usage_daily (
    tenant_id         TEXT COLLATE "C" NOT NULL,
    day               BIGINT NOT NULL,
    turns             BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micro_usd    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE usage_subject_daily (
    tenant_id TEXT COLLATE "C" NOT NULL,
    subject   TEXT COLLATE "C" NOT NULL,
    day       BIGINT NOT NULL,
    tokens    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, subject, day)
);

CREATE TABLE budget_reservations (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    subject        TEXT COLLATE "C" NOT NULL,
    day            BIGINT NOT NULL,
    tokens         BIGINT NOT NULL,
    cost_micro_usd BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX budget_reservations_tenant_day ON budget_reservations (tenant_id, day);
