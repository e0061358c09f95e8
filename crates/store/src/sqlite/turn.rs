//! `begin_turn` on SQLite, the hot path of every chat turn: one direct write
//! (`direct.rs`) reads the session's state and the tenant's budget counts,
//! decides, encrypts and writes the turn's rows and its budget reservation,
//! and reads the history its provider call needs, all before the commit
//! that must precede that call. A session whose last turn was written here
//! needs no history read at all (`known.rs`).

use super::direct::{message_row, Numbered};
use super::SqliteStore;
use crate::crypto::Cipher;
use crate::rows::{message_rows_from_json, millis, CountedRow, TurnCheckRow, TurnSessionRow, TurnStateRow};
use crate::sql::{self, sqlite as dialect};
use crate::turn::{self, bind_reservation, bind_turn_writes, Decision, RawTurn};
use crate::write::WriteError;
use std::sync::Arc;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, StoreError};

pub use super::known::KnownSessions;

pub async fn begin_turn(store: &SqliteStore, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
    let known = store.known.guess(turn);
    let known_seq = known.as_ref().map(|k| k.latest_seq);
    let shared = Arc::new(turn.clone());
    let cipher = store.cipher.clone();
    let (raw, earlier) =
        store.writer.write_direct(move |db| begin_turn_in(db, &shared, &cipher, known_seq)).await?;
    let outcome = match (raw, earlier, known) {
        (RawTurn::Started { user, assistant }, Earlier::Known, Some(known)) => {
            let purge = turn::purge_bound(turn.max_messages, assistant.seq - 2, 2);
            let history = super::known::history(turn, known.messages, purge, &user);
            BeginTurnOutcome::Started { user, assistant, history }
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
    store.known.started(turn, &outcome);
    Ok(outcome)
}

/// The messages before a started turn's user message.
enum Earlier {
    None,
    /// The caller knows them: nothing was written to the session since the
    /// turn the known history comes from.
    Known,
    /// Newest first, packed as JSON (`sql::sqlite::EARLIER`).
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
    let row = Numbered::new()
        .bind(&session_id)
        .bind(&turn.tenant_id)
        .bind(turn.client_message_id.as_deref())
        .bind(budget.map(|r| r.day))
        .bind(budget.map(|r| r.subject.as_str()))
        .bind(budget.map(|r| millis(&r.now)))
        .row(db, dialect::TURN_STATE, state_row)?;
    let (state, counted) = row.unzip();
    let (latest_seq, human) = match turn::decide(state, &turn.owner)? {
        Decision::Refused(raw) => return Ok((raw, Earlier::None)),
        Decision::Duplicate => {
            let found = Numbered::new().bind(&session_id).bind(turn.client_message_id.as_deref()).rows(
                db,
                sql::FIND_DUPLICATE,
                message_row,
            )?;
            return Ok((RawTurn::Duplicate { found }, Earlier::None));
        }
        Decision::Write { latest_seq, human } => (latest_seq, human),
    };
    // Only a turn with an answer spends anything.
    if let Some(refused) = counted.filter(|_| !human).and_then(|c| turn::over_budget(turn, c.into())) {
        return Ok((refused, Earlier::None));
    }
    let written = turn::new_messages(turn, latest_seq, !human, cipher)?;
    let purge = turn::purge_bound(turn.max_messages, latest_seq, written.len());
    let writes = bind_turn_writes!(Numbered::new(), latest_seq, &session_id, turn, &written);
    if human {
        writes.bind(purge).execute_all(db, dialect::WRITE_USER)?;
        return Ok((turn::written(written, true)?, Earlier::None));
    }
    let writes = writes.bind(turn::earlier_needed(turn)).bind(millis(&turn.retained_since)).bind(purge);
    writes.execute_all(db, dialect::WRITE_TURN)?;
    if budget.is_some() {
        bind_reservation!(Numbered::new(), budget).execute_all(db, dialect::RESERVE)?;
    }
    let earlier = if known_seq == Some(latest_seq) {
        Earlier::Known
    } else {
        let json = writes.row(db, dialect::EARLIER, |row| row.get(0))?;
        Earlier::Read(json.unwrap_or_default())
    };
    Ok((turn::written(written, false)?, earlier))
}

/// `TURN_STATE`'s row: the session's state and what counts against the
/// tenant's budgets today.
fn state_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TurnStateRow, CountedRow)> {
    let state = TurnStateRow {
        session: TurnSessionRow { owner: row.get(0)?, status: row.get(1)?, latest_seq: row.get(2)? },
        check: TurnCheckRow { duplicate_seq: row.get(3)?, streaming: row.get(4)? },
    };
    let counted = CountedRow {
        tenant_tokens: row.get(5)?,
        tenant_cost_micro_usd: row.get(6)?,
        subject_tokens: row.get(7)?,
    };
    Ok((state, counted))
}
