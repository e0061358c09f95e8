//! The SQL both backends run. SQLite reads `$N` as numbered parameters, and
//! both schemas use the same names and shapes, so one text serves both; the
//! hot-path statements that each backend does in fewer round trips its own
//! way are in `sqlite` and `postgres` below.

use crate::rows::{message_columns, session_columns, tenant_columns};

pub const PING: &str = "SELECT 1";

pub const UPSERT_TENANT: &str =
    "INSERT INTO tenants (id, name, source, config, kill_switch, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, source = excluded.source, \
     config = excluded.config, kill_switch = excluded.kill_switch, updated_at = excluded.updated_at";
pub const GET_TENANT: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1");
pub const LIST_TENANTS: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY id");
pub const DELETE_TENANT: &str = "DELETE FROM tenants WHERE id = $1";

pub const INSERT_SESSION: &str = "INSERT INTO sessions (id, tenant_id, owner, status, created_at, \
     last_activity_at, message_count, latest_seq, admin_assisted, takeover, metadata) \
     VALUES ($1, $2, $3, 'active', $4, $4, 0, 0, FALSE, NULL, $5)";
pub const GET_SESSION: &str =
    concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1 AND tenant_id = $2");
/// Keyset page: strictly after `($3, $4)` in (last_activity_at, id) descending.
pub const LIST_SESSIONS: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE tenant_id = $1 AND owner = $2 AND (last_activity_at, id) < ($3, $4) \
     ORDER BY last_activity_at DESC, id DESC LIMIT $5"
);
pub const DELETE_SESSION_MESSAGES: &str = "DELETE FROM messages WHERE session_id = $1 AND tenant_id = $2";
pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id = $1 AND tenant_id = $2";

pub const LIST_MESSAGES: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
);
/// The user message sent with this `client_message_id`, and its turn's answer.
pub const FIND_DUPLICATE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND (client_message_id = $2 OR (role = 'assistant' AND turn_id = \
     (SELECT turn_id FROM messages WHERE session_id = $1 AND client_message_id = $2))) ORDER BY seq"
);
/// Earlier messages for a new turn's history (read after its commit), none
/// created before `$4` (past the tenant's retention).
pub const HISTORY: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND seq <= $2 AND created_at >= $4 ORDER BY seq DESC LIMIT $3"
);

pub const CHECKPOINT: &str = "UPDATE messages SET content = $1, lease_node = $2, lease_until = $3 \
     WHERE session_id = $4 AND seq = $5 AND tenant_id = $6 AND status = 'streaming'";
pub const REAP_EXPIRED: &str = concat!(
    "UPDATE messages SET status = 'interrupted', lease_node = NULL, lease_until = NULL \
     WHERE status = 'streaming' AND lease_until < $1 RETURNING ",
    message_columns!()
);
pub const REAP_NODE: &str = concat!(
    "UPDATE messages SET status = 'interrupted', lease_node = NULL, lease_until = NULL \
     WHERE status = 'streaming' AND lease_node = $1 RETURNING ",
    message_columns!()
);

pub const LIST_CANARIES: &str = "SELECT kid, canary FROM keycheck";
pub const INSERT_CANARY: &str =
    "INSERT INTO keycheck (kid, canary, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING";
pub const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success = TRUE";

/// Moves the session past a turn's messages: `$1` latest_seq, `$2` how many
/// were added, `$3` now, `$4` session id; `$removed` counts what
/// `purge_over_cap!` deleted. Activity only moves forward, whatever order
/// concurrent writers commit in.
macro_rules! advance_session {
    ($removed:literal) => {
        concat!(
            "UPDATE sessions SET latest_seq = $1, message_count = message_count + $2 - ",
            $removed,
            ", last_activity_at = CASE WHEN last_activity_at < $3 THEN $3 ELSE last_activity_at END \
             WHERE id = $4"
        )
    };
}

/// Retention's cap (SPEC §11.6), in the transaction that adds a turn's
/// messages: deletes the session's (`$4`) messages up to seq `$bound`, which
/// the caller keeps below the new ones (`turn::purge_bound`), never one still
/// streaming. A seek on the primary key that finds nothing until the session
/// reaches its cap.
macro_rules! purge_over_cap {
    ($bound:literal) => {
        concat!(
            "DELETE FROM messages WHERE session_id = $4 AND seq <= ",
            $bound,
            " AND status <> 'streaming'"
        )
    };
}

macro_rules! into_messages {
    () => {
        "INSERT INTO messages (session_id, seq, tenant_id, role, content, author, status, created_at, \
         token_count, client_message_id, turn_id, meta, lease_node, lease_until) "
    };
}

/// A turn's user message (`$5`..`$16`).
macro_rules! first_row {
    () => {
        "($5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14, NULL, $15, $16)"
    };
}

/// A turn's user message; `second_row!` adds its answer.
macro_rules! insert_messages {
    () => {
        concat!(into_messages!(), "VALUES ", first_row!())
    };
}

macro_rules! second_row {
    () => {
        ", ($17, $18, $19, $20, $21, NULL, $22, $23, $24, $25, $26, NULL, $27, $28)"
    };
}

/// Ends a streaming message: `$1` content, `$2` status, `$3` token count,
/// `$4` meta, `$5` session id, `$6` seq, `$7` tenant id.
macro_rules! finish_message {
    () => {
        "UPDATE messages SET content = $1, status = $2, token_count = $3, meta = $4, \
         lease_node = NULL, lease_until = NULL \
         WHERE session_id = $5 AND seq = $6 AND tenant_id = $7 AND status = 'streaming'"
    };
}

/// `$8` now.
macro_rules! touch_session {
    () => {
        "UPDATE sessions SET last_activity_at = CASE WHEN last_activity_at < $8 THEN $8 ELSE last_activity_at END \
         WHERE id = $5 AND tenant_id = $7"
    };
}

/// SQLite runs several statements of one query text in one call to its
/// connection thread, which costs far less than a call per statement.
pub mod sqlite {
    /// Everything `begin_turn` decides on, in one read, budgets included
    /// (`$4` day, `$5` subject, `$6` now; a NULL day counts nothing). The
    /// writer is the only one, so nothing changes between this read and the
    /// writes. The literal `'streaming'` lets the planner use the partial
    /// index.
    macro_rules! turn_state {
        () => {
            concat!(
                "SELECT owner, status, latest_seq, \
                 (SELECT seq FROM messages WHERE session_id = $1 AND client_message_id = $3) AS duplicate_seq, \
                 EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming') AS streaming, ",
                crate::usage::counted!("$2", "$4", "$5", "$6"),
                " FROM sessions WHERE id = $1 AND tenant_id = $2"
            )
        };
    }

    pub const BEGIN_TURN_STATE: &str = concat!("BEGIN IMMEDIATE; ", turn_state!());
    pub const TURN_STATE: &str = turn_state!();
    /// `changes()` right after the purge is what it deleted. `$17` the
    /// purge's bound.
    pub const ADVANCE_AND_INSERT_USER: &str =
        concat!(purge_over_cap!("$17"), "; ", advance_session!("changes()"), "; ", insert_messages!());
    pub const ADVANCE_AND_INSERT_USER_COMMIT: &str = concat!(
        purge_over_cap!("$17"),
        "; ",
        advance_session!("changes()"),
        "; ",
        insert_messages!(),
        "; COMMIT"
    );
    /// `$4` session id, `$6` the user message's seq, `$29` how many, none
    /// created before `$30` (past the tenant's retention), without their
    /// `meta` (a provider's history needs role and content; decoding every
    /// answer's usage and latency cost more than reading the rows). One
    /// row holding them all (newest first, content in hex): every row a
    /// query returns is a hand-over between threads in sqlx, which costs far
    /// more than building and parsing the JSON. `ORDER BY` inside an
    /// aggregate needs SQLite 3.44 or later (sqlx's bundled one is 3.46).
    macro_rules! earlier_messages {
        () => {
            "SELECT json_group_array(json_array(seq, role, hex(content), author, status, created_at, \
             token_count, client_message_id, turn_id, NULL) ORDER BY seq DESC) AS earlier \
             FROM (SELECT * FROM messages WHERE session_id = $4 AND seq < $6 AND created_at >= $30 \
             ORDER BY seq DESC LIMIT $29)"
        };
    }

    /// A replay's page, oldest first, packed into one JSON value like
    /// `earlier_messages` (one hand-over from sqlx's thread, not one a row).
    pub const MESSAGES_AFTER: &str = "SELECT json_group_array(json_array(seq, role, hex(content), author, \
         status, created_at, token_count, client_message_id, turn_id, meta) ORDER BY seq) \
         FROM (SELECT * FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 \
         ORDER BY seq LIMIT $4)";

    /// A new turn's writes (after the cap's purge, bound `$31`) and its
    /// budget reservation (`$32`..`$38`, all NULL without a budget), then
    /// the messages before its user message (the provider's history, so
    /// never a purged one), read in the same round trip and transaction.
    macro_rules! start_turn {
        () => {
            concat!(
                purge_over_cap!("$31"),
                "; ",
                advance_session!("changes()"),
                "; ",
                insert_messages!(),
                second_row!(),
                "; ",
                crate::usage::take_reservation!("$32", "$33", "$34", "$35", "$36", "$37", "$38"),
                "; ",
                earlier_messages!()
            )
        };
    }
    pub const START_TURN: &str = start_turn!();
    pub const START_TURN_COMMIT: &str = concat!(start_turn!(), "; COMMIT");

    /// Writes that run only if `START_KNOWN`'s guard held.
    macro_rules! guarded {
        ($sql:expr) => {
            concat!($sql, " AND EXISTS (SELECT 1 FROM turn_guard)")
        };
    }

    /// `START_TURN` in one round trip for a session whose `latest_seq` the
    /// caller already knows (`$41`), so the rows could be encrypted with
    /// their seq before: a guard row is written into the writer's temporary
    /// `turn_guard` only if everything `begin_turn` checks lets a turn with
    /// an answer start (`$39` tenant, `$40` owner, `$42` client_message_id,
    /// the budget's limits `$43` tokens, `$45` cost and `$46` the subject's
    /// tokens, `$44` now; the reservation's own parameters as in
    /// `START_TURN`), every write runs only with that row there, and the one
    /// row returned says whether they ran, with the history. Anything else —
    /// a refusal, a human session, a `latest_seq` that moved on — writes
    /// nothing, and the caller takes the two round trip way, which says why.
    macro_rules! start_known {
        () => {
            concat!(
                "INSERT INTO turn_guard SELECT id FROM sessions WHERE id = $4 AND tenant_id = $39 \
                 AND owner = $40 AND status = 'active' AND latest_seq = $41 \
                 AND NOT EXISTS (SELECT 1 FROM messages WHERE session_id = $4 AND status = 'streaming') \
                 AND NOT EXISTS (SELECT 1 FROM messages WHERE session_id = $4 AND client_message_id = $42) \
                 AND ($43 IS NULL OR ",
                crate::usage::tenant_tokens!("$39", "$35", "$44"),
                " + $36 <= $43) AND ($45 IS NULL OR ",
                crate::usage::tenant_cost!("$39", "$35", "$44"),
                " + $37 <= $45) AND ($46 IS NULL OR ",
                crate::usage::subject_tokens!("$39", "$35", "$34", "$44"),
                " + $36 <= $46); ",
                guarded!(purge_over_cap!("$31")),
                "; ",
                guarded!(advance_session!("changes()")),
                "; ",
                into_messages!(),
                "SELECT * FROM (VALUES ",
                first_row!(),
                second_row!(),
                ") WHERE EXISTS (SELECT 1 FROM turn_guard); ",
                guarded!(crate::usage::take_reservation!("$32", "$33", "$34", "$35", "$36", "$37", "$38")),
                "; SELECT (SELECT count(*) FROM turn_guard) AS written, (",
                earlier_messages!(),
                ") AS earlier; DELETE FROM turn_guard"
            )
        };
    }
    pub const START_KNOWN: &str = start_known!();
    pub const BEGIN_START_KNOWN_COMMIT: &str = concat!("BEGIN IMMEDIATE; ", start_known!(), "; COMMIT");
    /// A turn's end in one round trip: the answer finished and the session
    /// touched (`changes()` is the count of the statement before: only when
    /// the message was still streaming), then one row
    /// saying whether this write finished the answer (`changes()` of the
    /// touch; a `SELECT` leaves it as it is), then — only if it did and a
    /// usage record came (`$9` subject not NULL) — its usage event, each
    /// added to the day's sums only if the one before wrote, and finally the
    /// turn's budget reservation (`$19`) deleted. Usage parameters: `$9`
    /// subject, `$10` day, `$11` provider, `$12` model, `$13` prompt and
    /// `$14` completion tokens, `$15` estimated, `$16` cost, `$17` first
    /// token and `$18` total milliseconds; `$8` (now) is the event's time.
    macro_rules! finish_turn {
        () => {
            concat!(
                finish_message!(),
                "; ",
                touch_session!(),
                " AND changes() > 0; SELECT changes(); \
                 INSERT INTO usage_events (session_id, seq, tenant_id, subject, day, provider, model, \
                 prompt_tokens, completion_tokens, estimated, cost_micro_usd, first_token_ms, total_ms, created_at) \
                 SELECT $5, $6, $7, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $8 \
                 WHERE changes() > 0 AND $9 IS NOT NULL ON CONFLICT (session_id, seq) DO NOTHING; \
                 INSERT INTO usage_daily (tenant_id, day, turns, prompt_tokens, completion_tokens, cost_micro_usd) \
                 SELECT $7, $10, 1, $13, $14, $16 WHERE changes() > 0 ON CONFLICT (tenant_id, day) DO UPDATE \
                 SET turns = usage_daily.turns + 1, prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
                 completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, \
                 cost_micro_usd = usage_daily.cost_micro_usd + excluded.cost_micro_usd; \
                 INSERT INTO usage_subject_daily (tenant_id, subject, day, tokens) \
                 SELECT $7, $9, $10, $13 + $14 WHERE changes() > 0 ON CONFLICT (tenant_id, subject, day) \
                 DO UPDATE SET tokens = usage_subject_daily.tokens + excluded.tokens; \
                 DELETE FROM budget_reservations WHERE id = $19 AND tenant_id = $7"
            )
        };
    }
    pub const FINISH_TURN: &str = finish_turn!();
    pub const BEGIN_FINISH_TURN_COMMIT: &str = concat!("BEGIN IMMEDIATE; ", finish_turn!(), "; COMMIT");
    pub const LOCK_AUDIT: &str = "SELECT 1";
}

/// PostgreSQL runs one statement per round trip; data-modifying CTEs fold
/// two writes into one.
pub mod postgres {
    use crate::rows::message_columns;

    /// A replay's page: messages after a seq, oldest first.
    pub const MESSAGES_AFTER: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
    );

    /// Locks the session row: concurrent turns of one session, on any node,
    /// queue here, and each then sees what the one before committed.
    pub const LOCK_SESSION: &str =
        "SELECT owner, status, latest_seq FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE";
    /// After the lock, in a statement of its own: a later statement sees rows
    /// committed while this transaction waited for the lock.
    pub const TURN_CHECK: &str = "SELECT \
         (SELECT seq FROM messages WHERE session_id = $1 AND client_message_id = $2) AS duplicate_seq, \
         EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming') AS streaming";
    /// The cap's purge (bound `$17`, `$29` with an answer) folds in as one
    /// more CTE; all of them see the snapshot from before the insert, so it
    /// cannot touch the new rows.
    pub const ADVANCE_AND_INSERT_USER: &str = concat!(
        "WITH purged AS (",
        purge_over_cap!("$17"),
        " RETURNING seq), advanced AS (",
        advance_session!("(SELECT count(*) FROM purged)"),
        " RETURNING id) ",
        insert_messages!()
    );
    pub const ADVANCE_AND_INSERT_BOTH: &str = concat!(
        "WITH purged AS (",
        purge_over_cap!("$29"),
        " RETURNING seq), advanced AS (",
        advance_session!("(SELECT count(*) FROM purged)"),
        " RETURNING id) ",
        insert_messages!(),
        second_row!()
    );
    pub const FINISH_AND_TOUCH: &str = concat!(
        "WITH finished AS (",
        finish_message!(),
        " RETURNING seq) ",
        touch_session!(),
        " AND EXISTS (SELECT 1 FROM finished)"
    );
    /// Audit appends of every node queue here, until their transaction ends.
    pub const LOCK_AUDIT: &str = "SELECT pg_advisory_xact_lock(7369617564697400)";
}
