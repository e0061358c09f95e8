//! A turn's writes on PostgreSQL, one statement per round trip: the session
//! row locked first (`FOR UPDATE`: concurrent turns of one session, on any
//! node, queue there, and each then sees what the one before committed), the
//! budget's reservation under the lock of the tenant's day, then the turn's
//! purge, the session's move and the insert folded into one statement by
//! data-modifying CTEs. An answer's end and the session's activity are one
//! statement the same way.

use crate::crypto::Cipher;
use crate::db::Conn;
use crate::rows::{
    encrypt_content, encrypt_tools, message_columns, to_json, CountedRow, MessageRow, TurnCheckRow,
    TurnSessionRow, TurnStateRow,
};
use crate::store::SqlStore;
use crate::turn::{
    self, checkpoint_params, finish_params, Decision, RawTurn, CHECKPOINT, FIND_DUPLICATE, FINISH,
    INSERT_BOTH, INSERT_USER, PURGE_OVER_CAP, SET_CONTEXT, TOUCH_SESSION,
};
use crate::usage::{reservation_params, INSERT_RESERVATION};
use crate::write::WriteError;
use std::sync::{Arc, LazyLock};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, StoreError};
use switchboard_core::usage::{Reserve, Spent};

/// Session `$1` of tenant `$2`, locked for the rest of the transaction.
const LOCK_SESSION: &str =
    "SELECT owner, status, latest_seq, context FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE";
/// After the lock, in a statement of its own: a later statement sees rows
/// committed while this transaction waited for the lock. `$2` the
/// `client_message_id`.
const TURN_CHECK: &str = "SELECT \
     (SELECT seq FROM messages WHERE session_id = $1 AND client_message_id = $2) AS duplicate_seq, \
     EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming') AS streaming";

/// Moves session `$4` past a turn's messages (`turn::turn_params`):
/// `latest_seq` to `$1`, `$2` more messages less what the `purged` CTE
/// deleted, activity to `$3` (only ever forward).
const ADVANCE_SESSION: &str = "UPDATE sessions SET latest_seq = $1, \
     message_count = message_count + $2 - (SELECT count(*) FROM purged), \
     last_activity_at = CASE WHEN last_activity_at < $3 THEN $3 ELSE last_activity_at END WHERE id = $4";

/// A turn's writes as one statement. All CTEs see the snapshot from before
/// the insert, so the purge cannot touch the new rows.
fn turn_writes(insert: &str) -> String {
    format!("WITH purged AS ({PURGE_OVER_CAP} RETURNING seq), advanced AS ({ADVANCE_SESSION} RETURNING id) {insert}")
}
static WRITE_USER: LazyLock<String> = LazyLock::new(|| turn_writes(INSERT_USER));
static WRITE_TURN: LazyLock<String> = LazyLock::new(|| turn_writes(INSERT_BOTH));

/// An answer's end and, only if that ended it, the session's activity.
static FINISH_AND_TOUCH: LazyLock<String> = LazyLock::new(|| {
    format!("WITH finished AS ({FINISH} RETURNING seq) {TOUCH_SESSION} AND EXISTS (SELECT 1 FROM finished)")
});

/// Session `$1`'s messages up to seq `$2`, newest first, `$3` at most, none
/// created before `$4` (past the tenant's retention): a new turn's history,
/// read after its commit.
const HISTORY: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND seq <= $2 AND created_at >= $4 ORDER BY seq DESC LIMIT $3"
);

/// Tenant `$1`'s row of day `$2`, which the lock below needs to exist.
const OPEN_DAY: &str =
    "INSERT INTO usage_daily (tenant_id, day) VALUES ($1, $2) ON CONFLICT (tenant_id, day) DO NOTHING";
/// Reservations of one tenant are decided one at a time, on every node.
const LOCK_DAY: &str = "SELECT 1 FROM usage_daily WHERE tenant_id = $1 AND day = $2 FOR UPDATE";
/// What counts against tenant `$1`'s budgets on day `$2`: settled usage
/// plus reservations live at `$4`; the tenant's tokens and cost, subject
/// `$3`'s tokens. The live reservations, one per turn in flight on any node,
/// are summed once (`r`) for all three counts.
const COUNTED: &str = "SELECT \
     CAST(COALESCE((SELECT prompt_tokens + completion_tokens FROM usage_daily \
       WHERE tenant_id = $1 AND day = $2), 0) + r.tokens AS BIGINT) AS tenant_tokens, \
     CAST(COALESCE((SELECT cost_micro_usd FROM usage_daily \
       WHERE tenant_id = $1 AND day = $2), 0) + r.cost AS BIGINT) AS tenant_cost_micro_usd, \
     CAST(COALESCE((SELECT tokens FROM usage_subject_daily \
       WHERE tenant_id = $1 AND subject = $3 AND day = $2), 0) + r.subject_tokens AS BIGINT) AS subject_tokens \
     FROM (SELECT COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(cost_micro_usd), 0) AS cost, \
       COALESCE(SUM(tokens) FILTER (WHERE subject = $3), 0) AS subject_tokens \
       FROM budget_reservations WHERE tenant_id = $1 AND day = $2 AND expires_at > $4) AS r";
/// Tenant `$1`'s reservations from before yesterday (long expired; a
/// reservation is deleted when its turn settles, but not one whose node died).
const PURGE_RESERVATIONS: &str = "DELETE FROM budget_reservations WHERE tenant_id = $1 AND day < $2 - 1";

/// One transaction that locks the session row, decides and writes; then the
/// history, read after the commit.
pub async fn begin_turn(store: &SqlStore, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
    let shared = Arc::new(turn.clone());
    let cipher = store.cipher.clone();
    let raw = store
        .write(move |mut conn: Conn<'_>| {
            let (turn, cipher) = (shared.clone(), cipher.clone());
            Box::pin(async move { begin_turn_in(&mut conn, &turn, &cipher).await })
        })
        .await?;
    // Committed, so any connection sees the same history.
    let earlier: Vec<MessageRow> = match &raw {
        RawTurn::Started { user, .. } if turn::earlier_needed(turn) > 0 => {
            let params = [
                turn.session_id.into(),
                (user.seq - 1).into(),
                turn::earlier_needed(turn).into(),
                (&turn.retained_since).into(),
            ];
            store.reader.all(HISTORY, &params).await?
        }
        _ => Vec::new(),
    };
    raw.decode(turn, earlier, &store.cipher)
}

async fn begin_turn_in(
    conn: &mut Conn<'_>,
    turn: &BeginTurn,
    cipher: &Cipher,
) -> Result<RawTurn, WriteError> {
    let session_id = turn.session_id.to_string();
    let state = turn_state(conn, &session_id, turn).await?;
    let (latest_seq, human, context) = match turn::decide(state, &turn.owner)? {
        Decision::Refused(raw) => return Ok(raw),
        Decision::Duplicate => {
            let params = [(&session_id).into(), (&turn.client_message_id).into()];
            let found: Vec<MessageRow> = conn.all(FIND_DUPLICATE, &params).await?;
            return Ok(RawTurn::Duplicate { found });
        }
        Decision::Write { latest_seq, human, context } => (latest_seq, human, context),
    };
    // Only a turn with an answer spends anything.
    if let Some(r) = turn.budget.as_ref().filter(|_| !human) {
        if let Some(spent) = reserve(conn, r).await? {
            return Ok(RawTurn::QuotaExceeded(spent));
        }
    }
    let written = turn::new_messages(turn, latest_seq, !human, cipher)?;
    let writes = if human { &*WRITE_USER } else { &*WRITE_TURN };
    conn.execute(writes, &turn::turn_params(latest_seq, &session_id, turn, &written)).await?;
    if let Some(context) = turn::sealed_context(turn, cipher)? {
        conn.execute(SET_CONTEXT, &[(&context).into(), session_id.as_str().into()]).await?;
    }
    Ok(turn::written(written, human, context)?)
}

/// Locks the session row first, then checks its messages in a statement of
/// its own, which sees what a turn that held the lock before committed.
async fn turn_state(
    conn: &mut Conn<'_>,
    session_id: &str,
    turn: &BeginTurn,
) -> Result<Option<TurnStateRow>, sqlx::Error> {
    let Some(session) =
        conn.optional::<TurnSessionRow>(LOCK_SESSION, &[session_id.into(), (&turn.tenant_id).into()]).await?
    else {
        return Ok(None);
    };
    let check: TurnCheckRow =
        conn.one(TURN_CHECK, &[session_id.into(), (&turn.client_message_id).into()]).await?;
    Ok(Some(TurnStateRow { session, check }))
}

/// Inside the transaction that starts a turn: takes `r` if it fits, else
/// names the budget it does not fit in (and takes nothing).
async fn reserve(conn: &mut Conn<'_>, r: &Reserve) -> Result<Option<Spent>, sqlx::Error> {
    let day = [(&r.tenant_id).into(), r.day.into()];
    conn.execute(OPEN_DAY, &day).await?;
    conn.execute(LOCK_DAY, &day).await?;
    let params = [(&r.tenant_id).into(), r.day.into(), (&r.subject).into(), (&r.now).into()];
    let counted: CountedRow = conn.one(COUNTED, &params).await?;
    if let Some(spent) = r.refused_by(&counted.into()) {
        return Ok(Some(spent));
    }
    conn.execute(PURGE_RESERVATIONS, &day).await?;
    conn.execute(INSERT_RESERVATION, &reservation_params(r)).await?;
    Ok(None)
}

/// Saves a streaming answer's text so far and renews its lease.
pub async fn checkpoint(store: &SqlStore, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
    let c = checkpoint;
    let content = encrypt_content(&store.cipher, &c.tenant_id, c.session_id, c.seq, &c.content)?;
    let tools = encrypt_tools(&store.cipher, &c.tenant_id, c.session_id, c.seq, &c.tools)?;
    let shared = Arc::new((checkpoint.clone(), content, tools));
    store
        .write_one(move |mut conn: Conn<'_>| {
            let shared = shared.clone();
            Box::pin(async move {
                let (c, content, tools) = &*shared;
                Ok(conn.execute(CHECKPOINT, &checkpoint_params(c, content, tools)).await? > 0)
            })
        })
        .await
}

/// Ends a streaming answer; with a usage record, settles the turn's budget
/// and records its usage in the same transaction.
pub async fn finish_message(store: &SqlStore, finish: &Finish) -> Result<bool, StoreError> {
    let f = finish;
    let content = encrypt_content(&store.cipher, &f.tenant_id, f.session_id, f.seq, &f.content)?;
    let tools = encrypt_tools(&store.cipher, &f.tenant_id, f.session_id, f.seq, &f.tools)?;
    let (event, reserved) = crate::outbox::seal_leased(store, finish.event.as_ref())?;
    let shared = Arc::new((finish.clone(), content, to_json(&finish.meta)?, tools, event));
    let (finished, leased) = store
        .write(move |mut conn: Conn<'_>| {
            let shared = shared.clone();
            Box::pin(async move {
                let (f, content, meta, tools, event) = &*shared;
                let finished =
                    conn.execute(&FINISH_AND_TOUCH, &finish_params(f, content, meta, tools)).await? > 0;
                let mut leased = false;
                if let (true, Some(event)) = (finished, event) {
                    leased = crate::outbox::write_event(&mut conn, event).await?;
                }
                for (sql, params) in crate::usage::settle(f, finished) {
                    conn.execute(sql, &params).await?;
                }
                Ok((finished, leased))
            })
        })
        .await?;
    crate::outbox::handed(reserved, finish.event.as_ref(), leased);
    Ok(finished)
}
