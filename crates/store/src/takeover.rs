//! Takeover writes (SPEC §12): an agent taking a session over or giving it
//! back, with its `system` note, and an agent's messages. Each is one
//! transaction that locks the session row (on PostgreSQL; SQLite's one
//! writer already serialises), takes the next seq from `latest_seq` like
//! `begin_turn`, and writes the message with the session's change, so a turn
//! starting at the same moment either sees the new status or comes first.
//! Content is encrypted inside the transaction, because its seq (part of the
//! associated data) is only known there.

use crate::crypto::{Aad, Cipher};
use crate::db::Conn;
use crate::rows::{crypto_err, session_columns, SessionRow, CONTENT};
use crate::store::SqlStore;
use crate::write::WriteError;
use std::sync::Arc;
use switchboard_core::model::{Message, MessageStatus, Role, SessionStatus, Takeover};
use switchboard_core::store::takeover::{
    decide, AgentMessage, AgentMessageOutcome, HoldChange, HoldDecision, HoldOutcome,
};
use switchboard_core::store::StoreError;
use uuid::Uuid;

/// `$1` session id, `$2` tenant id → `(status, latest_seq, takeover)`. The
/// one writer of SQLite is the lock.
const LOCK_SESSION: &str =
    "SELECT status, latest_seq, takeover FROM sessions WHERE id = $1 AND tenant_id = $2";
/// On PostgreSQL, turns (`begin_turn`) lock the same row, so they queue
/// behind this.
const LOCK_SESSION_FOR_UPDATE: &str =
    "SELECT status, latest_seq, takeover FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE";

/// In a statement of its own after the lock: on PostgreSQL a later
/// statement sees an answer finished while this transaction waited.
const STREAMING: &str =
    "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming')";

/// `$1` status, `$2` takeover JSON, `$3` whether an agent takes it (sets
/// `admin_assisted`, which never goes back), `$4` latest_seq, `$5` now, `$6`
/// session id, `$7` tenant id, `$8` how many messages `PURGE` deleted.
const SET_HOLD: &str = concat!(
    "UPDATE sessions SET status = $1, takeover = $2, admin_assisted = (admin_assisted OR $3), \
     latest_seq = $4, message_count = message_count + 1 - $8, \
     last_activity_at = CASE WHEN last_activity_at < $5 THEN $5 ELSE last_activity_at END \
     WHERE id = $6 AND tenant_id = $7 RETURNING ",
    session_columns!()
);

/// `$1` latest_seq, `$2` now, `$3` session id, `$4` tenant id, `$5` how many
/// messages `PURGE` deleted.
const ADVANCE: &str = "UPDATE sessions SET latest_seq = $1, message_count = message_count + 1 - $5, \
     last_activity_at = CASE WHEN last_activity_at < $2 THEN $2 ELSE last_activity_at END \
     WHERE id = $3 AND tenant_id = $4";

/// The session's cap (SPEC §11.6) before one more message: `$1` session id,
/// `$2` the highest seq to delete (`turn::purge_bound`).
const PURGE: &str = "DELETE FROM messages WHERE session_id = $1 AND seq <= $2 AND status <> 'streaming'";

/// `$1` session id, `$2` seq, `$3` tenant, `$4` role, `$5` content, `$6`
/// author, `$7` created_at, `$8` token count.
const INSERT_MESSAGE: &str = "INSERT INTO messages (session_id, seq, tenant_id, role, content, author, \
     status, created_at, token_count) VALUES ($1, $2, $3, $4, $5, $6, 'complete', $7, $8)";

/// The locked session's state: `(status, latest_seq, takeover)`.
type Locked = (String, i64, Option<String>);

/// Locks the session row and reads whether an answer streams; `None` when
/// there is no such session in the tenant.
async fn lock_session(
    conn: &mut Conn<'_>,
    id: &str,
    tenant_id: &str,
) -> Result<Option<(Locked, bool)>, sqlx::Error> {
    let lock = conn.dialect().pick(LOCK_SESSION, LOCK_SESSION_FOR_UPDATE);
    let Some(locked) = conn.optional::<Locked>(lock, &[id.into(), tenant_id.into()]).await? else {
        return Ok(None);
    };
    let (streaming,): (bool,) = conn.one(STREAMING, &[id.into()]).await?;
    Ok(Some((locked, streaming)))
}

fn status_of(locked: &Locked) -> Result<SessionStatus, WriteError> {
    Ok(crate::rows::status_of(&locked.0)?)
}

fn takeover_of(locked: &Locked) -> Result<Option<Takeover>, WriteError> {
    locked
        .2
        .as_deref()
        .map(|t| {
            serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("stored takeover: {e}")).into())
        })
        .transpose()
}

/// A complete message written by an agent or the system, at `seq`, with its
/// content encrypted for that seq.
fn new_message(
    cipher: &Cipher,
    tenant_id: &str,
    session_id: Uuid,
    seq: i64,
    role: Role,
    (author, content, token_count): (Option<String>, &str, i64),
    now: switchboard_core::time::Timestamp,
) -> Result<(Message, Vec<u8>), WriteError> {
    let at = Aad { tenant_id, session_id, seq, column: CONTENT };
    let sealed = cipher.encrypt_str(&at, content).map_err(crypto_err)?;
    let message = Message {
        tool_calls: Vec::new(),
        session_id,
        seq,
        role,
        content: content.to_owned(),
        author,
        status: MessageStatus::Complete,
        created_at: now,
        token_count,
        client_message_id: None,
        tools: Vec::new(),
        turn_id: None,
        meta: None,
    };
    Ok((message, sealed))
}

/// Runs [`PURGE`] for one message about to follow `latest_seq` under a cap
/// of `max_messages`; returns how many messages it deleted.
async fn purge_for_one(
    conn: &mut Conn<'_>,
    id: &str,
    max_messages: u32,
    latest_seq: i64,
) -> Result<i64, sqlx::Error> {
    let bound = crate::turn::purge_bound(max_messages, latest_seq, 1);
    let deleted = conn.execute(PURGE, &[id.into(), bound.into()]).await?;
    Ok(i64::try_from(deleted).unwrap_or(i64::MAX))
}

async fn insert_message(
    conn: &mut Conn<'_>,
    tenant_id: &str,
    message: &Message,
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    let params = [
        message.session_id.into(),
        message.seq.into(),
        tenant_id.into(),
        message.role.as_str().into(),
        sealed.into(),
        (&message.author).into(),
        (&message.created_at).into(),
        message.token_count.into(),
    ];
    conn.execute(INSERT_MESSAGE, &params).await?;
    Ok(())
}

/// An agent takes the session over or gives it back, with its system note.
pub async fn set(store: &SqlStore, change: &HoldChange) -> Result<HoldOutcome, StoreError> {
    let takeover = change.takeover.as_ref().map(crate::rows::to_json).transpose()?;
    let event = crate::outbox::seal_opt(store, change.event.as_ref())?;
    let shared = Arc::new((change.clone(), takeover, store.cipher.clone(), event));
    store
        .write(move |mut conn: Conn<'_>| {
            let shared = shared.clone();
            Box::pin(async move {
                let (change, takeover, cipher, event) = &*shared;
                let id = change.session_id.to_string();
                let Some((locked, streaming)) = lock_session(&mut conn, &id, &change.tenant_id).await? else {
                    return Ok(HoldOutcome::NotFound);
                };
                let current = takeover_of(&locked)?;
                match decide(status_of(&locked)?, current.as_ref(), streaming, change) {
                    HoldDecision::Refuse(refusal) => return Ok(refusal.into()),
                    HoldDecision::Unchanged => {
                        let params = [(&id).into(), (&change.tenant_id).into()];
                        return match conn.optional::<SessionRow>(crate::sessions::GET, &params).await? {
                            Some(row) => Ok(HoldOutcome::Unchanged { session: row.decode()? }),
                            None => Ok(HoldOutcome::NotFound),
                        };
                    }
                    HoldDecision::Write => {}
                }
                let seq = locked.1 + 1;
                let (note, sealed) = new_message(
                    cipher,
                    &change.tenant_id,
                    change.session_id,
                    seq,
                    Role::System,
                    (None, &change.note, 0),
                    change.now,
                )?;
                let removed = purge_for_one(&mut conn, &id, change.max_messages, locked.1).await?;
                let taking = change.takeover.is_some();
                let status = change.status();
                let params = [
                    status.as_str().into(),
                    takeover.as_deref().into(),
                    taking.into(),
                    seq.into(),
                    (&change.now).into(),
                    (&id).into(),
                    (&change.tenant_id).into(),
                    removed.into(),
                ];
                let row: SessionRow = conn.one(SET_HOLD, &params).await?;
                insert_message(&mut conn, &change.tenant_id, &note, &sealed).await?;
                if let Some(event) = event {
                    let (sql, params) = crate::outbox::insert(event);
                    conn.execute(sql, &params).await?;
                }
                Ok(HoldOutcome::Changed { session: row.decode()?, note })
            })
        })
        .await
}

/// An agent's message in a session it holds.
pub async fn add_agent_message(
    store: &SqlStore,
    message: &AgentMessage,
) -> Result<AgentMessageOutcome, StoreError> {
    let shared = Arc::new((message.clone(), store.cipher.clone()));
    store
        .write(move |mut conn: Conn<'_>| {
            let shared = shared.clone();
            Box::pin(async move {
                let (m, cipher) = &*shared;
                let id = m.session_id.to_string();
                let Some((locked, _)) = lock_session(&mut conn, &id, &m.tenant_id).await? else {
                    return Ok(AgentMessageOutcome::NotFound);
                };
                match status_of(&locked)? {
                    SessionStatus::Closed => return Ok(AgentMessageOutcome::Closed),
                    SessionStatus::Active | SessionStatus::Waiting => {
                        return Ok(AgentMessageOutcome::NotHuman)
                    }
                    SessionStatus::Human => {}
                }
                let seq = locked.1 + 1;
                let (stored, sealed) = new_message(
                    cipher,
                    &m.tenant_id,
                    m.session_id,
                    seq,
                    Role::Agent,
                    (Some(m.author.clone()), &m.content, m.token_count),
                    m.now,
                )?;
                let removed = purge_for_one(&mut conn, &id, m.max_messages, locked.1).await?;
                let params =
                    [seq.into(), (&m.now).into(), (&id).into(), (&m.tenant_id).into(), removed.into()];
                conn.execute(ADVANCE, &params).await?;
                insert_message(&mut conn, &m.tenant_id, &stored, &sealed).await?;
                Ok(AgentMessageOutcome::Stored(stored))
            })
        })
        .await
}
