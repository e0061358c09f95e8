//! `begin_turn` on SQLite, the hot path of every chat turn, in two round
//! trips to the writer's connection: one reads the session's state and the
//! tenant's budget counts, the other writes the turn and its budget
//! reservation and reads its history (packed into one value). Run
//! alone, the first also begins the transaction and the second also commits
//! it (see `writer::Bracket`). Every round trip here comes before the
//! provider call; so does every message of history decoded. A session whose
//! last turn was written here usually takes one round trip (`known.rs`).

use super::writer::Bracket;
use super::SqliteStore;
use crate::crypto::Cipher;
use crate::rows::{message_rows_from_json, millis, CountedRow, MessageRow, TurnStateRow};
use crate::sql::{self, sqlite as dialect};
use crate::turn::{self, bind_reservation, bind_turn_writes, Decision, RawTurn};
use crate::write::WriteError;
use sqlx::SqliteConnection;
use std::sync::Arc;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, StoreError};

pub use super::known::KnownSessions;

pub async fn begin_turn(store: &SqliteStore, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
    if let Some(guess) = store.known.guess(turn) {
        if let Some(started) = super::known::start(store, turn, guess).await? {
            store.known.started(turn, &started);
            return Ok(started);
        }
    }
    let outcome = decide_and_start(store, turn).await?;
    store.known.started(turn, &outcome);
    Ok(outcome)
}

/// The two round trip way, which decides every case.
async fn decide_and_start(store: &SqliteStore, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
    let shared = Arc::new(turn.clone());
    let cipher = store.cipher.clone();
    let (raw, earlier) = store
        .writer
        .write_bracketed(move |conn: &mut SqliteConnection, bracket: &mut Bracket| {
            let (turn, cipher) = (shared.clone(), cipher.clone());
            Box::pin(async move { begin_turn_in(conn, bracket, &turn, &cipher).await })
        })
        .await?;
    // Unpacked here, not in the writer, which every write waits for.
    let earlier = match earlier {
        Some(json) => message_rows_from_json(&json, &turn.session_id.to_string(), &turn.tenant_id)?,
        None => Vec::new(),
    };
    raw.decode(turn, earlier, &store.cipher)
}

/// The session's state and what counts against the tenant's budgets today.
#[derive(sqlx::FromRow)]
struct StateRow {
    #[sqlx(flatten)]
    state: TurnStateRow,
    #[sqlx(flatten)]
    counted: CountedRow,
}

/// The outcome and, for a started turn, the messages before its user message
/// (newest first, packed as JSON). The writer is the only one, so nothing
/// changes between the read and the writes.
async fn begin_turn_in(
    conn: &mut SqliteConnection,
    bracket: &mut Bracket,
    turn: &BeginTurn,
    cipher: &Cipher,
) -> Result<(RawTurn, Option<String>), WriteError> {
    let session_id = turn.session_id.to_string();
    let budget = turn.budget.as_ref();
    let row: Option<StateRow> =
        sqlx::query_as(bracket.opening(dialect::TURN_STATE, dialect::BEGIN_TURN_STATE))
            .bind(&session_id)
            .bind(&turn.tenant_id)
            .bind(turn.client_message_id.as_deref())
            .bind(budget.map(|r| r.day))
            .bind(budget.map(|r| r.subject.as_str()))
            .bind(budget.map(|r| millis(&r.now)))
            .fetch_optional(&mut *conn)
            .await?;
    let (state, counted) = row.map(|r| (r.state, r.counted)).unzip();
    let (latest_seq, human) = match turn::decide(state, &turn.owner)? {
        // The writer commits (or, after a failure, rolls back) what is open.
        Decision::Refused(raw) => return Ok((raw, None)),
        Decision::Duplicate => {
            let found: Vec<MessageRow> = sqlx::query_as(sql::FIND_DUPLICATE)
                .bind(&session_id)
                .bind(&turn.client_message_id)
                .fetch_all(&mut *conn)
                .await?;
            return Ok((RawTurn::Duplicate { found }, None));
        }
        Decision::Write { latest_seq, human } => (latest_seq, human),
    };
    // Only a turn with an answer spends anything.
    if let Some(refused) = counted.filter(|_| !human).and_then(|c| turn::over_budget(turn, c.into())) {
        return Ok((refused, None));
    }
    let written = turn::new_messages(turn, latest_seq, !human, cipher)?;
    let purge = turn::purge_bound(turn, latest_seq, written.len());
    let earlier = if human {
        let sql = bracket.closing(dialect::ADVANCE_AND_INSERT_USER, dialect::ADVANCE_AND_INSERT_USER_COMMIT);
        bind_turn_writes!(sqlx::query(sql), latest_seq, &session_id, turn, &written)
            .bind(purge)
            .execute(&mut *conn)
            .await?;
        None
    } else {
        let sql = bracket.closing(dialect::START_TURN, dialect::START_TURN_COMMIT);
        // `fetch_all`, never `fetch_optional`: sqlx stops a query text at
        // the first row `fetch_optional` wants, which would skip the COMMIT.
        let writes = bind_turn_writes!(sqlx::query_scalar(sql), latest_seq, &session_id, turn, &written)
            .bind(turn::earlier_needed(turn))
            .bind(millis(&turn.retained_since))
            .bind(purge);
        let mut packed: Vec<String> = bind_reservation!(writes, budget).fetch_all(&mut *conn).await?;
        packed.pop()
    };
    Ok((turn::written(written, human)?, earlier))
}
