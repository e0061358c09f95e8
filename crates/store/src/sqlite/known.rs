//! A turn in a session whose `latest_seq` this store saw last, started in
//! one round trip to the writer instead of two: the rows are encrypted with
//! their seq before the write, and the write itself checks (in SQL, under
//! the writer's transaction) everything the two round trip way would have
//! decided on. When any check fails nothing is written and that way runs.
//! The writer is the only one writing, so the guess is right whenever the
//! session's last write was a turn here; a wrong guess costs one round trip.

use super::writer::Bracket;
use super::SqliteStore;
use crate::rows::{message_rows_from_json, millis};
use crate::sql::sqlite as dialect;
use crate::turn::{self, bind_turn_writes, RawTurn};
use sqlx::SqliteConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, StoreError};
use switchboard_core::usage::Limits;
use uuid::Uuid;

/// Sessions remembered at most; past it the memory starts over (a miss only
/// costs the other way).
const REMEMBERED: usize = 100_000;

/// The `latest_seq` each session had after its last turn here.
#[derive(Debug, Default)]
pub struct KnownSeqs(Mutex<HashMap<Uuid, i64>>);

impl KnownSeqs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, i64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, session_id: Uuid) -> Option<i64> {
        self.lock().get(&session_id).copied()
    }

    /// Notes what a turn left; forgets the session for anything else.
    pub fn note(&self, session_id: Uuid, outcome: &BeginTurnOutcome) {
        let mut seqs = self.lock();
        match outcome {
            BeginTurnOutcome::Started { assistant, .. } => {
                if seqs.len() >= REMEMBERED {
                    seqs.clear();
                }
                seqs.insert(session_id, assistant.seq);
            }
            _ => {
                seqs.remove(&session_id);
            }
        }
    }
}

/// The turn started, or `None` when the two round trip way must decide.
pub async fn start(
    store: &SqliteStore,
    turn: &BeginTurn,
    latest_seq: i64,
) -> Result<Option<BeginTurnOutcome>, StoreError> {
    let written = turn::new_messages(turn, latest_seq, true, &store.cipher)?;
    let messages: Vec<_> = written.iter().map(|w| w.message.clone()).collect();
    let purge = turn::purge_bound(turn, latest_seq, written.len());
    let shared = Arc::new((turn.clone(), written));
    let (ran, earlier): (i64, Option<String>) = store
        .writer
        .write_bracketed(move |conn: &mut SqliteConnection, bracket: &mut Bracket| {
            let shared = shared.clone();
            Box::pin(async move {
                let (turn, written) = &*shared;
                let sql = bracket.only(dialect::START_KNOWN, dialect::BEGIN_START_KNOWN_COMMIT);
                let session_id = turn.session_id.to_string();
                let budget = turn.budget.as_ref();
                let limits = budget.map(|r| r.limits).unwrap_or_else(Limits::default);
                let mut rows: Vec<(i64, Option<String>)> =
                    bind_turn_writes!(sqlx::query_as(sql), latest_seq, &session_id, turn, written)
                        .bind(turn::earlier_needed(turn))
                        .bind(millis(&turn.retained_since))
                        .bind(purge)
                        .bind(budget.map(|r| r.id.to_string()))
                        .bind(budget.map(|r| r.tenant_id.as_str()))
                        .bind(budget.map(|r| r.subject.as_str()))
                        .bind(budget.map(|r| r.day))
                        .bind(budget.map(|r| r.tokens))
                        .bind(budget.map(|r| r.cost_micro_usd))
                        .bind(budget.map(|r| millis(&r.expires_at)))
                        .bind(&turn.tenant_id)
                        .bind(&turn.owner)
                        .bind(latest_seq)
                        .bind(turn.client_message_id.as_deref())
                        .bind(limits.daily_tokens)
                        .bind(budget.map(|r| millis(&r.now)))
                        .bind(limits.daily_cost_micro_usd)
                        .bind(limits.subject_daily_tokens)
                        // `fetch_all`: a text is cut at the first row otherwise.
                        .fetch_all(&mut *conn)
                        .await?;
                Ok(rows.pop().unwrap_or((0, None)))
            })
        })
        .await?;
    if ran != 1 {
        return Ok(None);
    }
    let mut messages = messages.into_iter();
    let (Some(user), Some(assistant)) = (messages.next(), messages.next()) else {
        return Err(StoreError::Corrupt("a turn wrote no answer".into()));
    };
    let earlier = match earlier {
        Some(json) => message_rows_from_json(&json, &turn.session_id.to_string(), &turn.tenant_id)?,
        None => Vec::new(),
    };
    RawTurn::Started { user, assistant }.decode(turn, earlier, &store.cipher).map(Some)
}
