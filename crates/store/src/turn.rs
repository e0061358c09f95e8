//! The backend-independent part of `begin_turn`: which rows a new turn writes
//! (already encrypted) and how its history is assembled. The backends only add
//! the transaction, the locking and the SQL.

use crate::crypto::{Aad, Cipher, SessionKeys};
use crate::db::Param;
use crate::rows::{
    crypto_err, decode_messages, message_columns, millis, status_of, to_json, MessageRow, TurnStateRow,
    CONTENT, CONTEXT,
};
use switchboard_core::model::{Message, MessageStatus, Role, SessionStatus};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, StoreError};
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
        /// The session's page context from before (sealed), when the
        /// turn's message carried none.
        context: Option<Vec<u8>>,
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
            Self::Started { user, assistant, context } => {
                let history = history(decode_messages(earlier, cipher)?, &user, turn.history_limit);
                let context = open_context(turn, context.as_deref(), cipher);
                BeginTurnOutcome::Started { user, assistant, history, context }
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
    /// `human`; `context`: the session's sealed page context, kept for a
    /// turn whose message carries none.
    Write { latest_seq: i64, human: bool, context: Option<Vec<u8>> },
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
    Ok(Decision::Write {
        latest_seq: state.session.latest_seq,
        human: status.for_agents(),
        context: state.session.context,
    })
}

/// The refusal of a turn with an answer whose budget reservation does not
/// fit on top of what is `counted` today (the last check of all).
pub fn over_budget(turn: &BeginTurn, counted: Counted) -> Option<RawTurn> {
    turn.budget.as_ref()?.refused_by(&counted).map(RawTurn::QuotaExceeded)
}

/// A user message sent again with the same `client_message_id` (`$2`) in
/// session `$1`, and its turn's answer.
pub const FIND_DUPLICATE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE session_id = $1 AND (client_message_id = $2 OR (role = 'assistant' AND turn_id = \
     (SELECT turn_id FROM messages WHERE session_id = $1 AND client_message_id = $2))) ORDER BY seq"
);

/// A streaming answer's text so far and its renewed lease
/// ([`checkpoint_params`]).
pub const CHECKPOINT: &str =
    "UPDATE messages SET content = $1, lease_node = $2, lease_until = $3, tools = $7 \
     WHERE session_id = $4 AND seq = $5 AND tenant_id = $6 AND status = 'streaming'";

/// The cap's purge (SPEC §11.6), in the transaction that adds a turn's
/// messages: session `$4`'s messages up to seq `$5`, which the caller keeps
/// below the new ones ([`purge_bound`]), never one still streaming. A seek on
/// the primary key that finds nothing until the session reaches its cap.
pub const PURGE_OVER_CAP: &str =
    "DELETE FROM messages WHERE session_id = $4 AND seq <= $5 AND status <> 'streaming'";

/// An insert of message rows with the given `VALUES` rows.
macro_rules! insert_messages {
    ($($row:literal),+) => {
        concat!(
            "INSERT INTO messages (session_id, seq, tenant_id, role, content, author, status, created_at, \
             token_count, client_message_id, turn_id, meta, lease_node, lease_until) VALUES ",
            $($row),+
        )
    };
}

/// A turn's user message (`$6`..`$17`).
pub const INSERT_USER: &str =
    insert_messages!("($6, $7, $8, $9, $10, NULL, $11, $12, $13, $14, $15, NULL, $16, $17)");

/// A turn's answer alone (`$18`..`$29`). SQLite inserts a turn's two rows
/// with [`INSERT_USER`] and this: a statement that writes several rows
/// must be able to undo its first on a conflict in its second, so SQLite
/// copies every page it touches to a statement journal first.
pub const INSERT_ANSWER: &str =
    insert_messages!("($18, $19, $20, $21, $22, NULL, $23, $24, $25, $26, $27, NULL, $28, $29)");

/// A turn's user message and its answer (`$6`..`$29`), in one statement:
/// one round trip to PostgreSQL.
pub const INSERT_BOTH: &str = insert_messages!(
    "($6, $7, $8, $9, $10, NULL, $11, $12, $13, $14, $15, NULL, $16, $17), ",
    "($18, $19, $20, $21, $22, NULL, $23, $24, $25, $26, $27, NULL, $28, $29)"
);

/// The parameters of a turn's writes (each backend runs them its own way;
/// see `sqlite/turn.rs` and `postgres/turn.rs`): `$1` the session's new
/// `latest_seq`, `$2` how many messages were added, `$3` now, `$4` the
/// session id, `$5` the cap's purge bound; then twelve per message row, the
/// user message's at `$6`..`$17` and its answer's at `$18`..`$29`: session id,
/// seq, tenant, role, content, status, created_at, token count,
/// `client_message_id`, turn id, lease node, lease expiry.
pub fn turn_params<'q>(
    latest_seq: i64,
    session_id: &'q str,
    turn: &BeginTurn,
    written: &'q [NewMessage],
) -> Vec<Param<'q>> {
    let added = i64::try_from(written.len()).unwrap_or(i64::MAX);
    let purge = purge_bound(turn.max_messages, latest_seq, written.len());
    let mut params = Vec::with_capacity(5 + 12 * written.len() + 2);
    params.extend([
        (latest_seq + added).into(),
        added.into(),
        (&turn.now).into(),
        session_id.into(),
        purge.into(),
    ]);
    for new in written {
        params.extend([
            (&new.session_id).into(),
            new.message.seq.into(),
            (&new.tenant_id).into(),
            new.role().into(),
            (&new.content).into(),
            new.status().into(),
            new.created_at.into(),
            new.message.token_count.into(),
            (&new.message.client_message_id).into(),
            (&new.turn_id).into(),
            (&new.lease_node).into(),
            new.lease_until.into(),
        ]);
    }
    params
}

/// [`CHECKPOINT`]'s parameters: `$1` content, `$2` node, `$3` lease, `$4`
/// session id, `$5` seq, `$6` tenant id, `$7` the tool calls so far
/// (encrypted).
pub fn checkpoint_params<'q>(
    c: &'q Checkpoint,
    content: &'q [u8],
    tools: &'q Option<Vec<u8>>,
) -> [Param<'q>; 7] {
    [
        content.into(),
        (&c.node_id).into(),
        (&c.lease_until).into(),
        c.session_id.into(),
        c.seq.into(),
        (&c.tenant_id).into(),
        tools.into(),
    ]
}

/// Ends a streaming answer: `$1` content, `$2` status, `$3` token count,
/// `$4` meta, `$5` session id, `$6` seq, `$7` tenant id, `$9` tool calls
/// ([`finish_params`]).
pub const FINISH: &str = "UPDATE messages SET content = $1, status = $2, token_count = $3, meta = $4, \
     tools = $9, lease_node = NULL, lease_until = NULL \
     WHERE session_id = $5 AND seq = $6 AND tenant_id = $7 AND status = 'streaming'";

/// The session's activity after its answer ended (`$8` now); it only moves
/// forward, whatever order concurrent writers commit in.
pub const TOUCH_SESSION: &str = "UPDATE sessions SET \
     last_activity_at = CASE WHEN last_activity_at < $8 THEN $8 ELSE last_activity_at END \
     WHERE id = $5 AND tenant_id = $7";

/// The end of an answer, for each backend's finish statements: `$1`
/// content, `$2` status, `$3` token count, `$4` meta, `$5` session id, `$6`
/// seq, `$7` tenant id, `$8` now, `$9` tool calls (encrypted).
pub fn finish_params<'q>(
    f: &'q Finish,
    content: &'q [u8],
    meta: &'q str,
    tools: &'q Option<Vec<u8>>,
) -> [Param<'q>; 9] {
    [
        content.into(),
        f.status.as_str().into(),
        f.token_count.into(),
        meta.into(),
        f.session_id.into(),
        f.seq.into(),
        (&f.tenant_id).into(),
        (&f.now).into(),
        tools.into(),
    ]
}

/// The outcome of the rows `new_messages` made, once they are written.
/// `context`: the session's sealed page context from before the turn.
pub fn written(
    mut written: Vec<NewMessage>,
    human: bool,
    context: Option<Vec<u8>>,
) -> Result<RawTurn, StoreError> {
    let assistant = if human { None } else { written.pop().map(|w| w.message) };
    let user = written
        .pop()
        .map(|w| w.message)
        .ok_or_else(|| StoreError::Corrupt("turn wrote no user message".into()))?;
    Ok(match assistant {
        None => RawTurn::Human { user },
        Some(assistant) => RawTurn::Started { user, assistant, context },
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

/// Keeps the page context a turn's message carried as the session's latest
/// (SPEC §16): `$1` the context (encrypted), `$2` the session. In the turn's
/// transaction, and only when the message had one.
pub const SET_CONTEXT: &str = "UPDATE sessions SET context = $1 WHERE id = $2";

/// The turn's page context, encrypted for [`SET_CONTEXT`] (sealed like a
/// session's metadata: seq 0, its own column name).
pub fn sealed_context(turn: &BeginTurn, cipher: &Cipher) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(context) = &turn.context else { return Ok(None) };
    let at = Aad { tenant_id: &turn.tenant_id, session_id: turn.session_id, seq: 0, column: CONTEXT };
    Ok(Some(cipher.encrypt_str(&at, &to_json(context)?).map_err(crypto_err)?))
}

/// The page context a started turn's tools are told when its message
/// carried none: the session's latest. Only advisory, and read after the
/// turn's commit: one that does not open is logged and left out, never a
/// failed turn.
pub fn open_context(turn: &BeginTurn, sealed: Option<&[u8]>, cipher: &Cipher) -> Option<serde_json::Value> {
    let sealed = sealed.filter(|_| turn.context.is_none())?;
    match crate::rows::open_context(cipher, &turn.tenant_id, turn.session_id, sealed) {
        Ok(context) => Some(context),
        Err(e) => {
            tracing::warn!(session_id = %turn.session_id, error = %e, "the session's page context does not open");
            None
        }
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
        tool_calls: Vec::new(),
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
            tool_calls: Vec::new(),
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

/// The highest seq the cap's purge deletes when a write
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
