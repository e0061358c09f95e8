//! A session's lifecycle (SPEC §4, §12): the owner deleting it; an agent
//! closing it, taking it over, writing in it and giving it back. Whatever
//! must come after a running answer goes through one primitive,
//! [`TurnEngine::stop_answer`]: stop the session's answer wherever it runs
//! and wait, at most [`STOP_WAIT`], for its end. Changes are published to
//! every connection of the session (every node) after they are committed.
//! Nothing here knows HTTP, who may call what, or the audit log: the server
//! checks the caller first and records admin actions after.
//!
//! | call            | a running answer                     | then                           |
//! |-----------------|--------------------------------------|--------------------------------|
//! | `delete`        | stopped and waited for               | session and messages wiped     |
//! | `close`         | stopped and waited for               | status `closed`                |
//! | `take_over`     | stopped and waited for, else refused | `human`, note, `takeover` event|
//! | `release`       | (none runs while an agent holds it)  | `active`, note, `takeover` event|
//! | `agent_message` | (none runs while an agent holds it)  | an `agent` message             |
//! | `erase_subject` | every session's: stopped, waited for | every row of the subject wiped |
//!
//! A handoff (SPEC §16, not built yet) is the next row: the model asks for a
//! person from inside its own turn, so nothing is stopped; the session goes
//! `waiting` with a note in one transaction (a hold change like the ones
//! below) and a `handoff` event. Its place is a `request_handoff` here, with
//! `SessionStatus::Waiting` in the model and `store::takeover::decide`
//! letting `take_over` and `release` start from `waiting` as they do from
//! `active` and `human`.

use crate::events::SessionEvent;
use crate::ids::Subject;
use crate::model::{estimate_tokens, AgentRef, Message, Session, SessionStatus, Takeover};
use crate::outbound::EventType;
use crate::store::takeover::{AgentMessage, AgentMessageOutcome, HoldChange, HoldOutcome};
use crate::store::{EraseSubject, Erased, SessionCursor, Store, StoreError};
use crate::tenant::Tenant;
use crate::turn::{StopReason, Stopped, TurnEngine};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a lifecycle change waits for a running answer to end.
pub const STOP_WAIT: Duration = Duration::from_secs(5);
/// Sessions an erase stops answers in at once.
const ERASE_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No such session in the tenant (or not the caller's).
    #[error("session not found")]
    NotFound,
    #[error("session closed")]
    Closed,
    /// No agent holds the session (a release, an agent message).
    #[error("no agent holds the session")]
    NotHuman,
    /// The running answer did not end within [`STOP_WAIT`]; nothing changed.
    #[error("the session's answer is still streaming")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a takeover or a release did.
#[derive(Debug, Clone)]
pub enum Hold {
    /// Written and announced; `agent` is the one the note and event name.
    Changed { session: Session, agent: AgentRef },
    /// Nothing to do: the same agent already holds it (a retried takeover).
    Unchanged(Session),
}

/// A closed session, and its status before.
#[derive(Debug, Clone)]
pub struct Closed {
    pub session: Session,
    pub status_before: SessionStatus,
}

/// The lifecycle service. Cheap to clone (a handle on the engine).
#[derive(Clone)]
pub struct SessionLifecycle {
    engine: TurnEngine,
}

impl SessionLifecycle {
    pub fn new(engine: TurnEngine) -> Self {
        Self { engine }
    }

    /// Wipes the owner's session and all its messages. A running answer is
    /// stopped first, on whichever node runs it, and waited for, so nothing
    /// of it is written after the wipe. One that has not ended within
    /// [`STOP_WAIT`] (its node is gone) cannot write either: its final
    /// write finds no row.
    pub async fn delete(
        &self,
        tenant_id: &str,
        owner: &Subject,
        session_id: Uuid,
    ) -> Result<(), LifecycleError> {
        // Someone else's session is "not found" too: nobody learns it exists.
        let session = self.store().get_session(tenant_id, session_id).await?;
        session.filter(|s| s.owner == owner.to_string()).ok_or(LifecycleError::NotFound)?;
        self.stop(tenant_id, session_id, StopReason::SessionDeleted).await?;
        self.store().delete_session(tenant_id, session_id).await?;
        Ok(())
    }

    /// Erases everything stored about `subject` in the tenant (SPEC §18).
    /// The answers running in its sessions are stopped first, all at once
    /// and on whichever nodes run them, and waited for (at most
    /// [`STOP_WAIT`] in all); then one transaction wipes every row. An
    /// answer that has not ended by then cannot write back: its writes find
    /// no row. A turn the subject starts meanwhile is wiped with the rest.
    pub async fn erase_subject(
        &self,
        tenant_id: &str,
        subject: &Subject,
        now: crate::time::Timestamp,
    ) -> Result<Erased, LifecycleError> {
        let owner = subject.to_string();
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        let mut after = None;
        loop {
            let page = self.store().list_sessions(tenant_id, &owner, ERASE_PAGE, after.as_ref()).await?;
            let stops = page
                .iter()
                .map(|s| self.engine.stop_answer(tenant_id, s.id, StopReason::SessionDeleted, deadline));
            for stopped in futures_util::future::join_all(stops).await {
                if stopped? == Stopped::StillRunning {
                    tracing::warn!("an answer of an erased subject did not end in time; erasing anyway");
                }
            }
            match page.last() {
                Some(last) if page.len() == ERASE_PAGE as usize => {
                    after = Some(SessionCursor { last_activity_at: last.last_activity_at, id: last.id });
                }
                _ => break,
            }
        }
        let erase = EraseSubject { tenant_id: tenant_id.to_owned(), subject: owner, now };
        Ok(self.store().erase_subject(&erase).await?)
    }

    /// Closes the session: a running answer is stopped first and waited for
    /// (kept as `aborted`), then the status is `closed` and later messages
    /// are refused. After [`STOP_WAIT`] the close goes ahead all the same.
    /// Closing a closed session answers the same.
    /// `by` is who closed it, as `session.closed` tells (`{kind, name?}`).
    pub async fn close(
        &self,
        tenant: &Tenant,
        session_id: Uuid,
        by: Value,
    ) -> Result<Closed, LifecycleError> {
        let tenant_id = tenant.id.as_str();
        let before = self.store().get_session(tenant_id, session_id).await?;
        let before = before.ok_or(LifecycleError::NotFound)?;
        self.stop(tenant_id, session_id, StopReason::SessionDeleted).await?;
        let now = self.engine.clock().now();
        let event = tenant.event(EventType::SessionClosed, session_id, now, || json!({"by": by}));
        let session = self.store().close_session(tenant_id, session_id, event.as_ref()).await?;
        let session = session.ok_or(LifecycleError::NotFound)?;
        Ok(Closed { session, status_before: before.status })
    }

    /// `agent` takes the session over: status `human`, a note "<name>
    /// joined the conversation" and a `takeover` event. A running answer is
    /// stopped first; if it has not ended within [`STOP_WAIT`] nothing
    /// changes (`InProgress`). A session another agent holds is handed over.
    pub async fn take_over(
        &self,
        tenant: &Tenant,
        session_id: Uuid,
        agent: AgentRef,
    ) -> Result<Hold, LifecycleError> {
        let now = self.engine.clock().now();
        let change = HoldChange {
            tenant_id: tenant.id.clone(),
            session_id,
            note: format!("{} joined the conversation", agent.name),
            takeover: Some(Takeover { agent: agent.clone(), since: now }),
            waiting: false,
            max_messages: tenant.max_messages_per_session,
            now,
            event: tenant.event(EventType::TakeoverStarted, session_id, now, || agent_data(&agent.name)),
        };
        self.change_hold(&change, true, agent).await
    }

    /// Back to the AI: status `active`, a note "<name> left the
    /// conversation" and a `takeover` event, naming the agent who held the
    /// session (the one the visitor knows), whoever releases it. A session
    /// only waiting for an agent (a handoff no one took) had no one join:
    /// its note says "<releaser> handed the conversation back to the
    /// assistant".
    pub async fn release(
        &self,
        tenant: &Tenant,
        session_id: Uuid,
        releaser: &str,
    ) -> Result<Hold, LifecycleError> {
        let session = self.store().get_session(&tenant.id, session_id).await?;
        let session = session.ok_or(LifecycleError::NotFound)?;
        let (holder, note) = match session.takeover {
            Some(t) => (t.agent.name.clone(), format!("{} left the conversation", t.agent.name)),
            None => {
                (releaser.to_owned(), format!("{releaser} handed the conversation back to the assistant"))
            }
        };
        let now = self.engine.clock().now();
        let change = HoldChange {
            tenant_id: tenant.id.clone(),
            session_id,
            takeover: None,
            waiting: false,
            note,
            max_messages: tenant.max_messages_per_session,
            now,
            event: tenant.event(EventType::TakeoverEnded, session_id, now, || agent_data(&holder)),
        };
        self.change_hold(&change, false, AgentRef { name: holder }).await
    }

    /// An `agent` message by `author` (already validated content), while an
    /// agent holds the session; delivered live and kept in the history.
    pub async fn agent_message(
        &self,
        tenant: &Tenant,
        session_id: Uuid,
        author: &str,
        content: String,
    ) -> Result<Message, LifecycleError> {
        let new = AgentMessage {
            tenant_id: tenant.id.clone(),
            session_id,
            author: author.to_owned(),
            token_count: i64::from(estimate_tokens(&content)),
            content,
            max_messages: tenant.max_messages_per_session,
            now: self.engine.clock().now(),
        };
        match self.store().add_agent_message(&new).await? {
            AgentMessageOutcome::Stored(message) => {
                self.publish(session_id, SessionEvent::Message(message.clone()));
                Ok(message)
            }
            AgentMessageOutcome::NotFound => Err(LifecycleError::NotFound),
            AgentMessageOutcome::Closed => Err(LifecycleError::Closed),
            AgentMessageOutcome::NotHuman => Err(LifecycleError::NotHuman),
        }
    }

    /// Writes the change, after the answer the store says still streams has
    /// ended (the note must not take a seq before the answer's end), then
    /// publishes the note and a `takeover` event `{active, agent}`.
    async fn change_hold(
        &self,
        change: &HoldChange,
        active: bool,
        agent: AgentRef,
    ) -> Result<Hold, LifecycleError> {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        let mut looked_once = false;
        let (session, note) = loop {
            match self.store().set_takeover(change).await? {
                HoldOutcome::Changed { session, note } => break (session, note),
                HoldOutcome::Unchanged { session } => return Ok(Hold::Unchanged(session)),
                HoldOutcome::NotFound => return Err(LifecycleError::NotFound),
                HoldOutcome::Closed => return Err(LifecycleError::Closed),
                HoldOutcome::NotHuman => return Err(LifecycleError::NotHuman),
                HoldOutcome::InProgress => {}
            }
            let stopped = self
                .engine
                .stop_answer(&change.tenant_id, change.session_id, StopReason::Takeover, deadline)
                .await?;
            match stopped {
                // Ended: the change goes through now (or another answer began meanwhile).
                Stopped::Ended => looked_once = false,
                // It ended between the store's refusal and the look: once more.
                Stopped::Nothing if !looked_once => looked_once = true,
                Stopped::Nothing | Stopped::StillRunning => return Err(LifecycleError::InProgress),
            }
        };
        self.publish(change.session_id, SessionEvent::Message(note));
        self.publish(change.session_id, SessionEvent::Takeover { active, agent: agent.clone() });
        Ok(Hold::Changed { session, agent })
    }

    /// The primitive with the lifecycle's bound, for changes that go ahead
    /// whatever it came to (a close, a delete).
    async fn stop(&self, tenant_id: &str, session_id: Uuid, reason: StopReason) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        let stopped = self.engine.stop_answer(tenant_id, session_id, reason, deadline).await?;
        if stopped == Stopped::StillRunning {
            tracing::warn!(%session_id, ?reason, "the session's answer did not end in time; going ahead");
        }
        Ok(())
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    fn publish(&self, session_id: Uuid, event: SessionEvent) {
        self.engine.bus().publish(session_id, Arc::new(event));
    }
}

/// `takeover.started` / `takeover.ended`'s data: the agent, by name.
fn agent_data(name: &str) -> Value {
    json!({"agent": {"name": name}})
}
