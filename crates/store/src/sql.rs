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

/// SQLite's writer runs these in place, one statement at a time
/// (`sqlite/direct.rs`); a statement costs a function call there, not a
/// round trip.
pub mod sqlite {
    /// Everything `begin_turn` decides on, in one read, budgets included
    /// (`$4` day, `$5` subject, `$6` now; a NULL day counts nothing). The
    /// writer is the only one, so nothing changes between this read and the
    /// writes. The literal `'streaming'` lets the planner use the partial
    /// index.
    pub const TURN_STATE: &str = concat!(
        "SELECT owner, status, latest_seq, \
         (SELECT seq FROM messages WHERE session_id = $1 AND client_message_id = $3) AS duplicate_seq, \
         EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming') AS streaming, ",
        crate::usage::counted!("$2", "$4", "$5", "$6"),
        " FROM sessions WHERE id = $1 AND tenant_id = $2"
    );

    /// A turn's writes without an answer: the cap's purge (bound `$17`),
    /// the session moved on (`changes()` is what the purge deleted), the
    /// user message.
    pub const WRITE_USER: &[&str] =
        &[purge_over_cap!("$17"), advance_session!("changes()"), insert_messages!()];
    /// The same with its answer (purge bound `$31`).
    pub const WRITE_TURN: &[&str] =
        &[purge_over_cap!("$31"), advance_session!("changes()"), concat!(insert_messages!(), second_row!())];

    /// `$4` session id, `$6` the user message's seq, `$29` how many, none
    /// created before `$30` (past the tenant's retention), without their
    /// `meta` (a provider's history needs role and content; decoding every
    /// answer's usage and latency cost more than reading the rows), packed
    /// into one JSON value, newest first, content in hex. `ORDER BY` inside
    /// an aggregate needs SQLite 3.44 or later (sqlx's bundled one is 3.46).
    pub const EARLIER: &str = "SELECT json_group_array(json_array(seq, role, hex(content), author, status, \
         created_at, token_count, client_message_id, turn_id, NULL) ORDER BY seq DESC) AS earlier \
         FROM (SELECT * FROM messages WHERE session_id = $4 AND seq < $6 AND created_at >= $30 \
         ORDER BY seq DESC LIMIT $29)";

    /// A replay's page, oldest first, packed into one JSON value like
    /// `EARLIER` (one hand-over from sqlx's thread, not one a row).
    pub const MESSAGES_AFTER: &str = "SELECT json_group_array(json_array(seq, role, hex(content), author, \
         status, created_at, token_count, client_message_id, turn_id, meta) ORDER BY seq) \
         FROM (SELECT * FROM messages WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 \
         ORDER BY seq LIMIT $4)";

    /// A budget reservation (`usage::INSERT_RESERVATION`'s parameters),
    /// after the tenant's reservations from before yesterday (long expired;
    /// a reservation is deleted when its turn settles, but not one whose node
    /// died).
    pub const RESERVE: &[&str] = &[
        "DELETE FROM budget_reservations WHERE tenant_id = $2 AND day < $4 - 1",
        crate::usage::INSERT_RESERVATION,
    ];

    /// An answer's end (`$1`..`$7`, see `finish_message!`), then, only if
    /// that finished it, the session's activity (`$8` now).
    pub const FINISH_MESSAGE: &str = finish_message!();
    pub const TOUCH_SESSION: &str = touch_session!();
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
