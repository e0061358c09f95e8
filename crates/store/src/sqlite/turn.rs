//! `begin_turn` on SQLite, the hot path of every chat turn: one direct write
//! (`direct.rs`) reads the session's state and the tenant's budget counts,
//! decides, encrypts and writes the turn's rows and its budget reservation,
//! and reads the history its provider call needs, all before the commit
//! that must precede that call. A session whose last turn was written here
//! needs no history read at all (`known.rs`).

use super::direct::{self, message_row};
use crate::crypto::Cipher;
use crate::rows::{message_rows_from_json, CountedRow, TurnCheckRow, TurnSessionRow, TurnStateRow};
use crate::store::SqlStore;
use crate::turn::{
    self, Decision, RawTurn, FIND_DUPLICATE, INSERT_ANSWER, INSERT_USER, PURGE_OVER_CAP, SET_CONTEXT,
};
use crate::usage::{reservation_params, INSERT_RESERVATION};
use crate::write::WriteError;
use std::sync::Arc;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, StoreError};

pub use super::known::KnownSessions;

/// Everything `begin_turn` decides on, in one read: the session's owner,
/// status, `latest_seq` and page context, whether `client_message_id` `$3` is known,
/// whether an answer streams, and what counts against the tenant's budgets
/// on day `$4` (settled plus reservations live at `$6`; the tenant's tokens
/// and cost, subject `$5`'s tokens; a NULL day counts nothing). The writer
/// is the only one, so nothing changes between this read and the writes. The
/// literal `'streaming'` lets the planner use the partial index. The live
/// reservations, one per turn in flight, are summed once (`r`) for all three
/// counts: at high concurrency there are many.
const TURN_STATE: &str = "SELECT sessions.owner, sessions.status, sessions.latest_seq, sessions.context, \
     (SELECT seq FROM messages WHERE session_id = $1 AND client_message_id = $3) AS duplicate_seq, \
     EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming') AS streaming, \
     CAST(COALESCE((SELECT prompt_tokens + completion_tokens FROM usage_daily \
       WHERE tenant_id = $2 AND day = $4), 0) + r.tokens AS BIGINT) AS tenant_tokens, \
     CAST(COALESCE((SELECT cost_micro_usd FROM usage_daily \
       WHERE tenant_id = $2 AND day = $4), 0) + r.cost AS BIGINT) AS tenant_cost_micro_usd, \
     CAST(COALESCE((SELECT tokens FROM usage_subject_daily \
       WHERE tenant_id = $2 AND subject = $5 AND day = $4), 0) + r.subject_tokens AS BIGINT) AS subject_tokens \
     FROM sessions, (SELECT COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(cost_micro_usd), 0) AS cost, \
       COALESCE(SUM(CASE WHEN subject = $5 THEN tokens END), 0) AS subject_tokens \
       FROM budget_reservations WHERE tenant_id = $2 AND day = $4 AND expires_at > $6) AS r \
     WHERE sessions.id = $1 AND sessions.tenant_id = $2";

/// Moves session `$4` past a turn's messages (`turn::turn_params`):
/// `latest_seq` to `$1`, its message count up by `added`, activity to `$3`
/// (only ever forward).
macro_rules! advance_session {
    ($added:literal) => {
        concat!(
            "UPDATE sessions SET latest_seq = $1, message_count = message_count + ",
            $added,
            ", last_activity_at = CASE WHEN last_activity_at < $3 THEN $3 ELSE last_activity_at END WHERE id = $4"
        )
    };
}

/// After the cap's purge: `$2` more messages less what the purge just
/// deleted (`changes()`).
const ADVANCE_SESSION: &str = advance_session!("$2 - changes()");
/// A session still under its cap with the new messages: no purge ran.
const ADVANCE_UNDER_CAP: &str = advance_session!("$2");

/// A turn's writes, in order: without an answer (`human`) or with one (a
/// row per insert, see [`INSERT_ANSWER`]). The cap's purge runs only when it
/// can delete something: until a session reaches its cap (most sessions
/// never do) it would be a statement that finds nothing, on every turn.
fn turn_writes(human: bool, purge: bool) -> &'static [&'static str] {
    match (human, purge) {
        (true, true) => &[PURGE_OVER_CAP, ADVANCE_SESSION, INSERT_USER],
        (true, false) => &[ADVANCE_UNDER_CAP, INSERT_USER],
        (false, true) => &[PURGE_OVER_CAP, ADVANCE_SESSION, INSERT_USER, INSERT_ANSWER],
        (false, false) => &[ADVANCE_UNDER_CAP, INSERT_USER, INSERT_ANSWER],
    }
}

/// After the writes: session `$4`'s messages before the user message (seq
/// `$7`), `$30` at most, none created before `$31` (past the tenant's
/// retention), without their `meta` and `tools` (a provider's history needs role and
/// content; decoding every answer's usage and latency cost more than reading
/// the rows), packed into one JSON value, newest first, content in hex.
/// `ORDER BY` inside an aggregate needs SQLite 3.44 or later (sqlx's bundled
/// one is 3.46).
const EARLIER: &str = "SELECT json_group_array(json_array(seq, role, hex(content), author, status, \
     created_at, token_count, client_message_id, turn_id, NULL, NULL) ORDER BY seq DESC) AS earlier \
     FROM (SELECT * FROM messages WHERE session_id = $4 AND seq < $7 AND created_at >= $31 \
     ORDER BY seq DESC LIMIT $30)";

/// A budget reservation (`usage::reservation_params`), after the tenant's
/// reservations from before yesterday (long expired; a reservation is
/// deleted when its turn settles, but not one whose node died).
const PURGE_RESERVATIONS: &str = "DELETE FROM budget_reservations WHERE tenant_id = $2 AND day < $4 - 1";

pub async fn begin_turn(
    store: &SqlStore,
    sqlite: &super::Sqlite,
    turn: &BeginTurn,
) -> Result<BeginTurnOutcome, StoreError> {
    let known = sqlite.known.guess(turn);
    let known_seq = known.as_ref().map(|k| k.latest_seq);
    let shared = Arc::new(turn.clone());
    let cipher = store.cipher.clone();
    let (raw, earlier) =
        sqlite.writer.write_direct(move |db| begin_turn_in(db, &shared, &cipher, known_seq)).await?;
    let outcome = match (raw, earlier, known) {
        (RawTurn::Started { user, assistant, context }, Earlier::Known, Some(known)) => {
            let purge = turn::purge_bound(turn.max_messages, assistant.seq - 2, 2);
            let history = super::known::history(turn, known.messages, purge, &user);
            let context = turn::open_context(turn, context.as_deref(), &store.cipher);
            BeginTurnOutcome::Started { user, assistant, history, context }
        }
        (raw, earlier, _) => {
            // Unpacked here, not in the writer, which every write waits for.
            let earlier = match earlier {
                Earlier::Read(json) => {
                    message_rows_from_json(&json, &turn.session_id.to_string(), &turn.tenant_id)?
                }
                Earlier::Known | Earlier::None => Vec::new(),
            };
            raw.decode(turn, earlier, &store.cipher)?
        }
    };
    sqlite.known.started(turn, &outcome);
    Ok(outcome)
}

/// The messages before a started turn's user message.
enum Earlier {
    None,
    /// The caller knows them: nothing was written to the session since the
    /// turn the known history comes from.
    Known,
    /// Newest first, packed as JSON ([`EARLIER`]).
    Read(String),
}

/// The outcome, decided and written in the writer's transaction. The writer
/// is the only one, so nothing changes between the read and the writes.
/// `known_seq`: the session's `latest_seq` after the turn whose history the
/// caller knows.
fn begin_turn_in(
    db: &rusqlite::Connection,
    turn: &BeginTurn,
    cipher: &Cipher,
    known_seq: Option<i64>,
) -> Result<(RawTurn, Earlier), WriteError> {
    let session_id = turn.session_id.to_string();
    let budget = turn.budget.as_ref();
    let state = [
        (&session_id).into(),
        (&turn.tenant_id).into(),
        (&turn.client_message_id).into(),
        budget.map(|r| r.day).into(),
        budget.map(|r| r.subject.as_str()).into(),
        budget.map(|r| r.now.timestamp_millis()).into(),
    ];
    let (state, counted) = direct::row(db, TURN_STATE, &state, state_row)?.unzip();
    let (latest_seq, human, context) = match turn::decide(state, &turn.owner)? {
        Decision::Refused(raw) => return Ok((raw, Earlier::None)),
        Decision::Duplicate => {
            let params = [(&session_id).into(), (&turn.client_message_id).into()];
            let found = direct::rows(db, FIND_DUPLICATE, &params, message_row)?;
            return Ok((RawTurn::Duplicate { found }, Earlier::None));
        }
        Decision::Write { latest_seq, human, context } => (latest_seq, human, context),
    };
    // Only a turn with an answer spends anything.
    if let Some(refused) = counted.filter(|_| !human).and_then(|c| turn::over_budget(turn, c.into())) {
        return Ok((refused, Earlier::None));
    }
    let written = turn::new_messages(turn, latest_seq, !human, cipher)?;
    if let Some(context) = turn::sealed_context(turn, cipher)? {
        direct::execute(db, SET_CONTEXT, &[(&context).into(), (&session_id).into()])?;
    }
    let mut params = turn::turn_params(latest_seq, &session_id, turn, &written);
    // Seqs start at 1: a bound below that deletes nothing.
    let purge = turn::purge_bound(turn.max_messages, latest_seq, written.len()) >= 1;
    direct::execute_all(db, turn_writes(human, purge), &params)?;
    if human {
        drop(params);
        return Ok((turn::written(written, true, None)?, Earlier::None));
    }
    if let Some(r) = budget {
        let reservation = reservation_params(r);
        direct::execute_all(db, &[PURGE_RESERVATIONS, INSERT_RESERVATION], &reservation)?;
    }
    let earlier = if known_seq == Some(latest_seq) {
        Earlier::Known
    } else {
        params.extend([turn::earlier_needed(turn).into(), (&turn.retained_since).into()]);
        let json = direct::row(db, EARLIER, &params, |row| row.get(0))?;
        Earlier::Read(json.unwrap_or_default())
    };
    drop(params);
    Ok((turn::written(written, false, context)?, earlier))
}

/// `TURN_STATE`'s row: the session's state and what counts against the
/// tenant's budgets today.
fn state_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TurnStateRow, CountedRow)> {
    let state = TurnStateRow {
        session: TurnSessionRow {
            owner: row.get(0)?,
            status: row.get(1)?,
            latest_seq: row.get(2)?,
            context: row.get(3)?,
        },
        check: TurnCheckRow { duplicate_seq: row.get(4)?, streaming: row.get(5)? },
    };
    let counted = CountedRow {
        tenant_tokens: row.get(6)?,
        tenant_cost_micro_usd: row.get(7)?,
        subject_tokens: row.get(8)?,
    };
    Ok((state, counted))
}
