//! The history of sessions whose last turn this store wrote: that turn's
//! history, its user message and its answer as this store finished it. A
//! new turn whose transaction finds the session's `latest_seq` where that
//! turn left it (nothing was written to the session since; the writer is
//! the only one writing) takes its history from here, leaving out alike
//! what the history query would (past retention, purged by the cap), so it
//! reads and decrypts none.

use crate::turn;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use switchboard_core::model::Message;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Finish};
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

/// The history a new turn in a known session starts from, if the session's
/// `latest_seq` is still this.
pub struct Guess {
    pub latest_seq: i64,
    /// The messages before the new one, oldest first.
    pub messages: Vec<Message>,
}

impl KnownSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Known once the last answer is final, for a window no wider. Taken
    /// out, not copied: whatever the new turn decides, [`Self::started`]
    /// replaces or forgets the session.
    pub fn guess(&self, turn: &BeginTurn) -> Option<Guess> {
        let mut known = self.lock();
        let session = known.sessions.get(&turn.session_id)?;
        if !session.finished || turn.history_limit > session.window {
            return None;
        }
        let session = known.sessions.remove(&turn.session_id)?;
        known.chars = known.chars.saturating_sub(chars(&session.messages));
        Some(Guess { latest_seq: session.latest_seq, messages: session.messages })
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
pub fn history(turn: &BeginTurn, known: Vec<Message>, purge: i64, user: &Message) -> Vec<Message> {
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
