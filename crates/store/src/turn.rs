//! The backend-independent part of `begin_turn`: which rows a new turn writes
//! (already encrypted) and how its history is assembled. The backends only add
//! the transaction, the locking and the SQL.

use crate::crypto::{Aad, Cipher, SessionKeys};
use crate::rows::{crypto_err, decode_messages, millis, status_of, MessageRow, TurnStateRow, CONTENT};
use switchboard_core::model::{Message, MessageStatus, Role, SessionStatus};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, StoreError};
use switchboard_core::usage::{Counted, Spent};

/// What `begin_turn` found or wrote, with rows still encrypted: the caller
/// decrypts them (and reads the history) after the transaction, so the
/// writer (on SQLite, one for the whole process) spends no time on it.
// One lives per call, moved once: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RawTurn {
    Started {
        user: Message,
        assistant: Message,
    },
    /// The user message with that `client_message_id` and its turn's answer.
    Duplicate {
        found: Vec<MessageRow>,
    },
    Human {
        user: Message,
    },
    NotFound,
    Closed,
    InProgress,
    QuotaExceeded(Spent),
}

impl RawTurn {
    /// `earlier`: the messages before the user message, newest first.
    pub fn decode(
        self,
        turn: &BeginTurn,
        earlier: Vec<MessageRow>,
        cipher: &Cipher,
    ) -> Result<BeginTurnOutcome, StoreError> {
        Ok(match self {
            Self::Started { user, assistant } => {
                let history = history(decode_messages(earlier, cipher)?, &user, turn.history_limit);
                BeginTurnOutcome::Started { user, assistant, history }
            }
            Self::Duplicate { found } => {
                let client_message_id = turn.client_message_id.as_deref().unwrap_or_default();
                duplicate(decode_messages(found, cipher)?, client_message_id)
            }
            Self::Human { user } => BeginTurnOutcome::Human { user },
            Self::NotFound => BeginTurnOutcome::NotFound,
            Self::Closed => BeginTurnOutcome::Closed,
            Self::InProgress => BeginTurnOutcome::InProgress,
            Self::QuotaExceeded(spent) => BeginTurnOutcome::QuotaExceeded(spent),
        })
    }
}

/// What the session's state says a new turn does, in the order the `Store`
/// trait documents: ownership, then duplicates, then closed, in progress and
/// human.
// One lives per call, moved once; the refusals hold no message anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// Nothing to write.
    Refused(RawTurn),
    /// The `client_message_id` is known: read that turn's messages.
    Duplicate,
    /// Write the user message at `latest_seq + 1`, and its answer unless
    /// `human`.
    Write { latest_seq: i64, human: bool },
}

pub fn decide(state: Option<TurnStateRow>, owner: &str) -> Result<Decision, StoreError> {
    let Some(state) = state.filter(|s| s.session.owner == owner) else {
        return Ok(Decision::Refused(RawTurn::NotFound));
    };
    if state.check.duplicate_seq.is_some() {
        return Ok(Decision::Duplicate);
    }
    let status = status_of(&state.session.status)?;
    if status == SessionStatus::Closed {
        return Ok(Decision::Refused(RawTurn::Closed));
    }
    if state.check.streaming {
        return Ok(Decision::Refused(RawTurn::InProgress));
    }
    Ok(Decision::Write { latest_seq: state.session.latest_seq, human: status == SessionStatus::Human })
}

/// The refusal of a turn with an answer whose budget reservation does not
/// fit on top of what is `counted` today (the last check of all).
pub fn over_budget(turn: &BeginTurn, counted: Counted) -> Option<RawTurn> {
    turn.budget.as_ref()?.refused_by(&counted).map(RawTurn::QuotaExceeded)
}

/// Binds a turn's writes (`advance_session!` then `insert_messages!` and,
/// with an answer, `second_row!`) to a query of either backend.
macro_rules! bind_turn_writes {
    ($query:expr, $latest_seq:expr, $session_id:expr, $turn:expr, $written:expr) => {{
        let added = i64::try_from($written.len()).unwrap_or(i64::MAX);
        let mut query = $query
            .bind($latest_seq + added)
            .bind(added)
            .bind($crate::rows::millis(&$turn.now))
            .bind($session_id);
        for new in $written {
            query = query
                .bind(&new.session_id)
                .bind(new.message.seq)
                .bind(&new.tenant_id)
                .bind(new.role())
                .bind(&new.content)
                .bind(new.status())
                .bind(new.created_at)
                .bind(new.message.token_count)
                .bind(&new.message.client_message_id)
                .bind(&new.turn_id)
                .bind(&new.lease_node)
                .bind(new.lease_until);
        }
        query
    }};
}
pub(crate) use bind_turn_writes;

/// Binds a turn's budget reservation (`usage::INSERT_RESERVATION`'s seven
/// parameters, all NULL without one).
macro_rules! bind_reservation {
    ($query:expr, $budget:expr) => {{
        let budget: Option<&switchboard_core::usage::Reserve> = $budget;
        $query
            .bind(budget.map(|r| r.id.to_string()))
            .bind(budget.map(|r| r.tenant_id.as_str()))
            .bind(budget.map(|r| r.subject.as_str()))
            .bind(budget.map(|r| r.day))
            .bind(budget.map(|r| r.tokens))
            .bind(budget.map(|r| r.cost_micro_usd))
            .bind(budget.map(|r| $crate::rows::millis(&r.expires_at)))
    }};
}
pub(crate) use bind_reservation;

/// Binds the end of an answer (`finish_message!` and `touch_session!`:
/// `$1` content, `$2` status, `$3` token count, `$4` meta, `$5` session id,
/// `$6` seq, `$7` tenant id, `$8` now).
macro_rules! bind_finish {
    ($query:expr, $finish:expr, $content:expr, $meta:expr) => {{
        let f: &switchboard_core::store::Finish = $finish;
        $query
            .bind($content)
            .bind(f.status.as_str())
            .bind(f.token_count)
            .bind($meta)
            .bind(f.session_id.to_string())
            .bind(f.seq)
            .bind(&f.tenant_id)
            .bind($crate::rows::millis(&f.now))
    }};
}
pub(crate) use bind_finish;

/// Binds a checkpoint (`sql::CHECKPOINT`: `$1` content, `$2` node, `$3`
/// lease, `$4` session id, `$5` seq, `$6` tenant id).
macro_rules! bind_checkpoint {
    ($query:expr, $checkpoint:expr, $content:expr) => {{
        let c: &switchboard_core::store::Checkpoint = $checkpoint;
        $query
            .bind($content)
            .bind(&c.node_id)
            .bind($crate::rows::millis(&c.lease_until))
            .bind(c.session_id.to_string())
            .bind(c.seq)
            .bind(&c.tenant_id)
    }};
}
pub(crate) use bind_checkpoint;

/// The outcome of the rows `new_messages` made, once they are written.
pub fn written(mut written: Vec<NewMessage>, human: bool) -> Result<RawTurn, StoreError> {
    let assistant = if human { None } else { written.pop().map(|w| w.message) };
    let user = written
        .pop()
        .map(|w| w.message)
        .ok_or_else(|| StoreError::Corrupt("turn wrote no user message".into()))?;
    Ok(match assistant {
        None => RawTurn::Human { user },
        Some(assistant) => RawTurn::Started { user, assistant },
    })
}

/// The earlier turn found by its `client_message_id`: its user message and the
/// assistant message of the same turn, if it had one.
fn duplicate(found: Vec<Message>, client_message_id: &str) -> BeginTurnOutcome {
    let mut user = None;
    let mut assistant = None;
    for message in found {
        if message.client_message_id.as_deref() == Some(client_message_id) {
            user = Some(message);
        } else if message.role == Role::Assistant {
            assistant = Some(message);
        }
    }
    match user {
        Some(user) => BeginTurnOutcome::Duplicate { user, assistant },
        // Rows are only read when the user message exists.
        None => BeginTurnOutcome::NotFound,
    }
}

/// One message row to insert, with the plaintext message it stands for.
#[derive(Debug)]
pub struct NewMessage {
    pub message: Message,
    pub session_id: String,
    pub tenant_id: String,
    pub content: Vec<u8>,
    pub created_at: i64,
    pub turn_id: String,
    pub lease_node: Option<String>,
    pub lease_until: Option<i64>,
}

impl NewMessage {
    pub fn role(&self) -> &'static str {
        self.message.role.as_str()
    }

    pub fn status(&self) -> &'static str {
        self.message.status.as_str()
    }
}

/// The user message at `latest_seq + 1` and, unless an agent holds the
/// session, the streaming assistant message after it.
pub fn new_messages(
    turn: &BeginTurn,
    latest_seq: i64,
    with_assistant: bool,
    cipher: &Cipher,
) -> Result<Vec<NewMessage>, StoreError> {
    let user = Message {
        session_id: turn.session_id,
        seq: latest_seq + 1,
        role: Role::User,
        content: turn.content.clone(),
        author: None,
        status: MessageStatus::Complete,
        created_at: turn.now,
        token_count: turn.user_token_count,
        client_message_id: turn.client_message_id.clone(),
        tools: Vec::new(),
        turn_id: Some(turn.turn_id),
        meta: None,
    };
    let mut keys = cipher.keys();
    let mut out = vec![row(turn, user, None, &mut keys)?];
    if with_assistant {
        let assistant = Message {
            session_id: turn.session_id,
            seq: latest_seq + 2,
            role: Role::Assistant,
            content: String::new(),
            author: None,
            status: MessageStatus::Streaming,
            created_at: turn.now,
            token_count: 0,
            client_message_id: None,
            tools: Vec::new(),
            turn_id: Some(turn.turn_id),
            meta: None,
        };
        let lease = (turn.node_id.clone(), millis(&turn.lease_until));
        out.push(row(turn, assistant, Some(lease), &mut keys)?);
    }
    Ok(out)
}

fn row(
    turn: &BeginTurn,
    message: Message,
    lease: Option<(String, i64)>,
    keys: &mut SessionKeys<'_>,
) -> Result<NewMessage, StoreError> {
    let at =
        Aad { tenant_id: &turn.tenant_id, session_id: turn.session_id, seq: message.seq, column: CONTENT };
    let content = keys.encrypt_str(&at, &message.content).map_err(crypto_err)?;
    let (lease_node, lease_until) = lease.map_or((None, None), |(node, until)| (Some(node), Some(until)));
    Ok(NewMessage {
        session_id: turn.session_id.to_string(),
        tenant_id: turn.tenant_id.clone(),
        content,
        created_at: millis(&turn.now),
        turn_id: turn.turn_id.to_string(),
        lease_node,
        lease_until,
        message,
    })
}

/// The highest seq the cap's purge deletes (`purge_over_cap!`) when a write
/// adds `added` messages after `latest_seq`: what falls beyond the newest
/// `max_messages`, but never one of the new messages (a cap of 1 still keeps
/// a whole turn). Zero or less deletes nothing.
pub fn purge_bound(max_messages: u32, latest_seq: i64, added: usize) -> i64 {
    let added = i64::try_from(added).unwrap_or(i64::MAX);
    let keep = i64::from(max_messages.max(1));
    latest_seq.saturating_add(added).saturating_sub(keep).min(latest_seq)
}

/// How many messages before the new user message the history needs.
pub fn earlier_needed(turn: &BeginTurn) -> i64 {
    i64::from(turn.history_limit.saturating_sub(1))
}

/// `earlier` newest first (as read) → oldest first, ending with `user`.
fn history(mut earlier: Vec<Message>, user: &Message, limit: u32) -> Vec<Message> {
    if limit == 0 {
        return Vec::new();
    }
    earlier.reverse();
    earlier.push(user.clone());
    earlier
}
