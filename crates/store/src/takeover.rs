//! Takeover writes (SPEC §12): an agent taking a session over or giving it
//! back, with its `system` note, and an agent's messages. Each is one
//! transaction that locks the session row (on PostgreSQL; SQLite's one
//! writer already serialises), takes the next seq from `latest_seq` like
//! `begin_turn`, and writes the message with the session's change, so a turn
//! starting at the same moment either sees the new status or comes first.
//! Content is encrypted inside the transaction, because its seq (part of the
//! associated data) is only known there. `impl_takeover!` expands the SQL
//! for each backend, as `impl_admin!` does.

use crate::crypto::{Aad, Cipher};
use crate::rows::{crypto_err, millis, session_columns, CONTENT};
use crate::write::WriteError;
use switchboard_core::model::{Message, MessageStatus, Role, SessionStatus, Takeover};
use switchboard_core::store::StoreError;
use uuid::Uuid;

/// How each backend locks the session row for the rest of the transaction.
pub trait SessionLock {
    /// `$1` session id, `$2` tenant id → `(status, latest_seq, takeover)`.
    const LOCK_SESSION: &'static str;
}

impl SessionLock for crate::sqlite::SqliteStore {
    /// The one writer is the lock.
    const LOCK_SESSION: &'static str =
        "SELECT status, latest_seq, takeover FROM sessions WHERE id = $1 AND tenant_id = $2";
}

impl SessionLock for crate::postgres::PgStore {
    /// Turns (`begin_turn`) lock the same row, so they queue behind this.
    const LOCK_SESSION: &'static str =
        "SELECT status, latest_seq, takeover FROM sessions WHERE id = $1 AND tenant_id = $2 FOR UPDATE";
}

/// In a statement of its own after the lock: on PostgreSQL a later
/// statement sees an answer finished while this transaction waited.
pub const STREAMING: &str =
    "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND status = 'streaming')";

/// `$1` status, `$2` takeover JSON, `$3` whether an agent takes it (sets
/// `admin_assisted`, which never goes back), `$4` latest_seq, `$5` now, `$6`
/// session id, `$7` tenant id.
pub const SET_HOLD: &str = concat!(
    "UPDATE sessions SET status = $1, takeover = $2, admin_assisted = (admin_assisted OR $3), \
     latest_seq = $4, message_count = message_count + 1 - $8, \
     last_activity_at = CASE WHEN last_activity_at < $5 THEN $5 ELSE last_activity_at END \
     WHERE id = $6 AND tenant_id = $7 RETURNING ",
    session_columns!()
);

/// `$1` latest_seq, `$2` now, `$3` session id, `$4` tenant id, `$5` how many
/// messages `PURGE` deleted.
pub const ADVANCE: &str = "UPDATE sessions SET latest_seq = $1, message_count = message_count + 1 - $5, \
     last_activity_at = CASE WHEN last_activity_at < $2 THEN $2 ELSE last_activity_at END \
     WHERE id = $3 AND tenant_id = $4";

/// The session's cap (SPEC §11.6) before one more message: `$1` session id,
/// `$2` the highest seq to delete (`turn::purge_bound`).
pub const PURGE: &str = "DELETE FROM messages WHERE session_id = $1 AND seq <= $2 AND status <> 'streaming'";

pub const INSERT_MESSAGE: &str = "INSERT INTO messages (session_id, seq, tenant_id, role, content, author, \
     status, created_at, token_count) VALUES ($1, $2, $3, $4, $5, $6, 'complete', $7, $8)";

/// The locked session's state.
pub type Locked = (String, i64, Option<String>);

pub fn status_of(locked: &Locked) -> Result<SessionStatus, WriteError> {
    Ok(crate::rows::status_of(&locked.0)?)
}

pub fn takeover_of(locked: &Locked) -> Result<Option<Takeover>, WriteError> {
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
pub fn new_message(
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

/// Binds [`INSERT_MESSAGE`] for `message`.
macro_rules! insert_message {
    ($conn:expr, $tenant_id:expr, $message:expr, $sealed:expr) => {
        sqlx::query($crate::takeover::INSERT_MESSAGE)
            .bind($message.session_id.to_string())
            .bind($message.seq)
            .bind($tenant_id)
            .bind($message.role.as_str())
            .bind($sealed)
            .bind(&$message.author)
            .bind($crate::rows::millis(&$message.created_at))
            .bind($message.token_count)
            .execute(&mut *$conn)
            .await?
    };
}
pub(crate) use insert_message;

/// Runs [`PURGE`] for one message about to follow `latest_seq` under a cap
/// of `max_messages`; evaluates to how many messages it deleted.
macro_rules! purge {
    ($conn:expr, $session_id:expr, $max_messages:expr, $latest_seq:expr) => {{
        let bound = $crate::turn::purge_bound($max_messages, $latest_seq, 1);
        let done =
            sqlx::query($crate::takeover::PURGE).bind($session_id).bind(bound).execute(&mut *$conn).await?;
        i64::try_from(done.rows_affected()).unwrap_or(i64::MAX)
    }};
}
pub(crate) use purge;

/// Locks the session row and reads whether an answer streams; `None` when
/// there is no such session in the tenant.
macro_rules! lock_session {
    ($store:ty, $conn:expr, $session_id:expr, $tenant_id:expr) => {{
        let locked: Option<$crate::takeover::Locked> =
            sqlx::query_as(<$store as $crate::takeover::SessionLock>::LOCK_SESSION)
                .bind($session_id)
                .bind($tenant_id)
                .fetch_optional(&mut *$conn)
                .await?;
        match locked {
            None => None,
            Some(locked) => {
                let streaming: bool = sqlx::query_scalar($crate::takeover::STREAMING)
                    .bind($session_id)
                    .fetch_one(&mut *$conn)
                    .await?;
                Some((locked, streaming))
            }
        }
    }};
}
pub(crate) use lock_session;

/// The stored form of the session's `takeover` field.
pub fn takeover_json(takeover: Option<&Takeover>) -> Result<Option<String>, StoreError> {
    takeover.map(crate::rows::to_json).transpose()
}

/// Milliseconds of `now`, for binding.
pub fn at(now: &switchboard_core::time::Timestamp) -> i64 {
    millis(now)
}

/// `impl_takeover!(Type, conn = Connection)`: inherent `set_takeover_in_db`
/// and `add_agent_message_in_db`, which the `Store` impl calls.
macro_rules! impl_takeover {
    ($store:ty, conn = $conn:ty) => {
        impl $store {
            async fn set_takeover_in_db(
                &self,
                change: &switchboard_core::store::takeover::HoldChange,
            ) -> Result<switchboard_core::store::takeover::HoldOutcome, switchboard_core::store::StoreError>
            {
                use switchboard_core::model::{Role, SessionStatus};
                use switchboard_core::store::takeover::{decide, HoldDecision, HoldOutcome};
                let takeover = $crate::takeover::takeover_json(change.takeover.as_ref())?;
                let shared = std::sync::Arc::new((change.clone(), takeover, self.cipher.clone()));
                self.write(move |conn: &mut $conn| {
                    let shared = shared.clone();
                    Box::pin(async move {
                        let (change, takeover, cipher) = &*shared;
                        let id = change.session_id.to_string();
                        let Some((locked, streaming)) =
                            $crate::takeover::lock_session!($store, conn, &id, &change.tenant_id)
                        else {
                            return Ok(HoldOutcome::NotFound);
                        };
                        let status = $crate::takeover::status_of(&locked)?;
                        let current = $crate::takeover::takeover_of(&locked)?;
                        match decide(status, current.as_ref(), streaming, change) {
                            HoldDecision::Refuse(refusal) => return Ok(refusal.into()),
                            HoldDecision::Unchanged => {
                                let session: Option<$crate::rows::SessionRow> =
                                    sqlx::query_as($crate::sql::GET_SESSION)
                                        .bind(&id)
                                        .bind(&change.tenant_id)
                                        .fetch_optional(&mut *conn)
                                        .await?;
                                return match session {
                                    Some(row) => Ok(HoldOutcome::Unchanged { session: row.decode()? }),
                                    None => Ok(HoldOutcome::NotFound),
                                };
                            }
                            HoldDecision::Write => {}
                        }
                        let seq = locked.1 + 1;
                        let (note, sealed) = $crate::takeover::new_message(
                            cipher,
                            &change.tenant_id,
                            change.session_id,
                            seq,
                            Role::System,
                            (None, &change.note, 0),
                            change.now,
                        )?;
                        let removed = $crate::takeover::purge!(conn, &id, change.max_messages, locked.1);
                        let taking = change.takeover.is_some();
                        let status = if taking { SessionStatus::Human } else { SessionStatus::Active };
                        let row: $crate::rows::SessionRow = sqlx::query_as($crate::takeover::SET_HOLD)
                            .bind(status.as_str())
                            .bind(takeover)
                            .bind(taking)
                            .bind(seq)
                            .bind($crate::takeover::at(&change.now))
                            .bind(&id)
                            .bind(&change.tenant_id)
                            .bind(removed)
                            .fetch_one(&mut *conn)
                            .await?;
                        $crate::takeover::insert_message!(conn, &change.tenant_id, note, &sealed);
                        Ok(HoldOutcome::Changed { session: row.decode()?, note })
                    })
                })
                .await
            }

            async fn add_agent_message_in_db(
                &self,
                message: &switchboard_core::store::takeover::AgentMessage,
            ) -> Result<
                switchboard_core::store::takeover::AgentMessageOutcome,
                switchboard_core::store::StoreError,
            > {
                use switchboard_core::model::{Role, SessionStatus};
                use switchboard_core::store::takeover::AgentMessageOutcome;
                let shared = std::sync::Arc::new((message.clone(), self.cipher.clone()));
                self.write(move |conn: &mut $conn| {
                    let shared = shared.clone();
                    Box::pin(async move {
                        let (m, cipher) = &*shared;
                        let id = m.session_id.to_string();
                        let Some((locked, _)) =
                            $crate::takeover::lock_session!($store, conn, &id, &m.tenant_id)
                        else {
                            return Ok(AgentMessageOutcome::NotFound);
                        };
                        match $crate::takeover::status_of(&locked)? {
                            SessionStatus::Closed => return Ok(AgentMessageOutcome::Closed),
                            SessionStatus::Active => return Ok(AgentMessageOutcome::NotHuman),
                            SessionStatus::Human => {}
                        }
                        let seq = locked.1 + 1;
                        let (stored, sealed) = $crate::takeover::new_message(
                            cipher,
                            &m.tenant_id,
                            m.session_id,
                            seq,
                            Role::Agent,
                            (Some(m.author.clone()), &m.content, m.token_count),
                            m.now,
                        )?;
                        let removed = $crate::takeover::purge!(conn, &id, m.max_messages, locked.1);
                        sqlx::query($crate::takeover::ADVANCE)
                            .bind(seq)
                            .bind($crate::takeover::at(&m.now))
                            .bind(&id)
                            .bind(&m.tenant_id)
                            .bind(removed)
                            .execute(&mut *conn)
                            .await?;
                        $crate::takeover::insert_message!(conn, &m.tenant_id, stored, &sealed);
                        Ok(AgentMessageOutcome::Stored(stored))
                    })
                })
                .await
            }
        }
    };
}
pub(crate) use impl_takeover;
