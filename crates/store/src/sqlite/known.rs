//! A turn in a session whose `latest_seq` this store saw last, started in
//! one round trip to the writer instead of two: the rows are encrypted with
//! their seq before the write, and the write itself checks (in SQL, under
//! the writer's transaction) everything the two round trip way would have
//! decided on. When any check fails nothing is written and that way runs.
//! The writer is the only one writing, so the guess is right whenever the
//! session's last write was a turn here; a wrong guess costs one round trip.
//!
//! Such a session's history is known too: the last turn's history, its user
//! message and its answer as this store finished it. The check proves that
//! nothing was written to the session since (`latest_seq` is unchanged), and
//! what the history query would leave out (past retention, purged by the
//! cap) is left out here alike, so the new turn reads and decrypts none.

use super::writer::Bracket;
use super::SqliteStore;
use crate::rows::{message_rows_from_json, millis};
use crate::sql::sqlite as dialect;
use crate::turn::{self, bind_reservation, bind_turn_writes, RawTurn};
use sqlx::SqliteConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use switchboard_core::model::Message;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Finish, StoreError};
use switchboard_core::usage::Limits;
use uuid::Uuid;

/// Sessions remembered at most, and characters of their messages; past
/// either the memory starts over (a miss only costs the other way).
const SESSIONS: usize = 100_000;
const CHARS: usize = 16 << 20;

/// What this store knows of sessions whose last turn it wrote.
#[derive(Debug, Default)]
pub struct KnownSessions(Mutex<Known>);

#[derive(Debug, Default)]
struct Known {
    sessions: HashMap<Uuid, Session>,
    chars: usize,
}

#[derive(Debug)]
struct Session {
    /// The session's `latest_seq` after its last turn here (its answer's).
    latest_seq: i64,
    /// That turn's history and answer, oldest first: the newest `window`
    /// messages the session kept. The answer is final once `finished`.
    messages: Vec<Message>,
    window: u32,
    finished: bool,
}

/// What a new turn in a known session can start from.
pub struct Guess {
    pub latest_seq: i64,
    /// The messages before the new one, oldest first, when they are known
    /// (the last answer is final and the window is wide enough).
    pub messages: Option<Vec<Message>>,
}

impl KnownSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn guess(&self, turn: &BeginTurn) -> Option<Guess> {
        let known = self.lock();
        let session = known.sessions.get(&turn.session_id)?;
        let messages =
            (session.finished && turn.history_limit <= session.window).then(|| session.messages.clone());
        Some(Guess { latest_seq: session.latest_seq, messages })
    }

    /// Notes what a turn started; forgets the session for anything else.
    pub fn started(&self, turn: &BeginTurn, outcome: &BeginTurnOutcome) {
        let mut known = self.lock();
        let old = known.sessions.remove(&turn.session_id);
        known.chars = known.chars.saturating_sub(old.map_or(0, |s| chars(&s.messages)));
        let BeginTurnOutcome::Started { assistant, history, .. } = outcome else { return };
        let window = turn.history_limit;
        let keep = usize::try_from(window).unwrap_or(usize::MAX);
        let mut messages: Vec<Message> = history.iter().chain([assistant]).cloned().collect();
        messages.drain(..messages.len().saturating_sub(keep));
        if known.sessions.len() >= SESSIONS || known.chars + chars(&messages) > CHARS {
            *known = Known::default();
        }
        known.chars += chars(&messages);
        let session = Session { latest_seq: assistant.seq, messages, window, finished: false };
        known.sessions.insert(turn.session_id, session);
    }

    /// Notes an answer's final text, once this store wrote it (`done`);
    /// an answer finished by anyone else (a reaper) is not known.
    pub fn finished(&self, finish: &Finish, done: bool) {
        let mut known = self.lock();
        let Known { sessions, chars } = &mut *known;
        let Some(session) = sessions.get_mut(&finish.session_id) else { return };
        let answer = session.messages.last_mut().filter(|m| m.seq == finish.seq && done);
        let Some(answer) = answer.filter(|_| session.latest_seq == finish.seq) else {
            *chars = chars.saturating_sub(self::chars(&session.messages));
            sessions.remove(&finish.session_id);
            return;
        };
        *chars += finish.content.len();
        answer.content.clone_from(&finish.content);
        answer.status = finish.status;
        answer.token_count = finish.token_count;
        session.finished = true;
    }
}

fn chars(messages: &[Message]) -> usize {
    messages.iter().map(|m| m.content.len()).sum()
}

/// The history of a turn from the messages known before it: what the
/// history query would read (none past retention or the cap's purge, at
/// most `history_limit - 1`), then the user message.
fn history(turn: &BeginTurn, known: Vec<Message>, purge: i64, user: &Message) -> Vec<Message> {
    if turn.history_limit == 0 {
        return Vec::new();
    }
    let mut earlier: Vec<Message> =
        known.into_iter().filter(|m| m.seq > purge && m.created_at >= turn.retained_since).collect();
    let needed = usize::try_from(turn::earlier_needed(turn)).unwrap_or(usize::MAX);
    earlier.drain(..earlier.len().saturating_sub(needed));
    earlier.push(user.clone());
    earlier
}

/// The turn started, or `None` when the two round trip way must decide.
pub async fn start(
    store: &SqliteStore,
    turn: &BeginTurn,
    guess: Guess,
) -> Result<Option<BeginTurnOutcome>, StoreError> {
    let latest_seq = guess.latest_seq;
    let written = turn::new_messages(turn, latest_seq, true, &store.cipher)?;
    let messages: Vec<_> = written.iter().map(|w| w.message.clone()).collect();
    let purge = turn::purge_bound(turn, latest_seq, written.len());
    // With the history known, the statement reads none.
    let read = if guess.messages.is_some() { 0 } else { turn::earlier_needed(turn) };
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
                let writes = bind_turn_writes!(sqlx::query_as(sql), latest_seq, &session_id, turn, written)
                    .bind(read)
                    .bind(millis(&turn.retained_since))
                    .bind(purge);
                let mut rows: Vec<(i64, Option<String>)> = bind_reservation!(writes, budget)
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
    if let Some(known) = guess.messages {
        let history = history(turn, known, purge, &user);
        return Ok(Some(BeginTurnOutcome::Started { user, assistant, history }));
    }
    let earlier = match earlier {
        Some(json) => message_rows_from_json(&json, &turn.session_id.to_string(), &turn.tenant_id)?,
        None => Vec::new(),
    };
    RawTurn::Started { user, assistant }.decode(turn, earlier, &store.cipher).map(Some)
}
