//! The turn engine: starts a turn durably (user message and assistant
//! placeholder committed before any provider call), runs it as its own
//! tracked task, and lets any number of subscribers follow it. The request that
//! started a turn is only one of those subscribers.

mod attempts;
mod budget;
mod live;
mod memory;
mod observe;
mod reaper;
mod replay;
mod run;
mod snapshots;
mod stop;
mod stream;
mod tools;
mod verify;

pub use memory::{MEMORY_EMPTY, MEMORY_HEADING};

pub use live::{LiveText, LiveTurn, LiveTurns, StopReason};
pub use observe::{AfterFailure, Checkpointed, TurnObserver, TurnReport};
pub use replay::finished_turn_events;
pub use run::error_body;
pub use stop::Stopped;
pub use stream::TurnStream;

use crate::bus::Bus;
use crate::ids::Subject;
use crate::model::{estimate_tokens, Message, MessageStatus};
use crate::store::{BeginTurn, BeginTurnOutcome, Store, StoreError};
use crate::tenant::{OnDisconnect, Tenant};
use crate::time::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Engine timings; the defaults are SPEC §11's.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's id, written into the leases of the turns it runs.
    pub node_id: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often a streaming answer is checkpointed (and its lease renewed).
    pub checkpoint_every: Duration,
    /// How often expired leases are looked for.
    pub reap_every: Duration,
    /// Told when turns start and end (metrics); none by default.
    pub observer: Option<Arc<dyn TurnObserver>>,
    /// Prices per model (`[prices]`), for usage costs and budget reservations.
    pub prices: Arc<HashMap<String, crate::usage::Price>>,
    /// A tenant's outbound events by tenant id (for the reaper's
    /// `turn.failed`); none by default.
    pub outbound_of: Option<Arc<dyn OutboundOf>>,
}

/// Looks up a tenant's outbound events (`None`: it has none, or is gone).
pub trait OutboundOf: Send + Sync + std::fmt::Debug {
    fn outbound(&self, tenant_id: &str) -> Option<Arc<crate::outbound::Outbound>>;
}

impl EngineConfig {
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            lease: Duration::from_secs(10),
            checkpoint_every: Duration::from_secs(1),
            reap_every: Duration::from_secs(2),
            observer: None,
            prices: Arc::default(),
            outbound_of: None,
        }
    }
}

/// A user message to send into a session.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub tenant: Arc<Tenant>,
    pub subject: Subject,
    pub session_id: Uuid,
    /// Already validated and trimmed.
    pub content: String,
    pub client_message_id: Option<String>,
    pub trace_id: String,
    /// The page context sent with the message (SPEC §16), for its tools;
    /// once the turn starts, the session's latest when the message had none.
    pub context: Option<serde_json::Value>,
}

/// What sending a message led to.
// Returned once per request and consumed at once: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum SendOutcome {
    /// A turn is running: the new one, or the earlier one with this
    /// `client_message_id`, still streaming on this node.
    Streaming(TurnStream),
    /// The earlier turn with this `client_message_id` has already ended.
    Finished { user: Message, assistant: Option<Message> },
    /// An agent holds the session: the message was stored for them.
    HandledByAgent { user: Message },
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("session not found")]
    NotFound,
    #[error("session closed")]
    Closed,
    #[error("a turn is in progress")]
    InProgress,
    /// The `client_message_id` was used before with a different message.
    #[error("client_message_id reused with a different message")]
    ReusedClientMessageId,
    /// A daily budget is spent until `reset_at` (the next UTC midnight).
    #[error("budget spent")]
    QuotaExceeded { reset_at: crate::time::Timestamp },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A moment the turn needed lies beyond the range of timestamps.
    #[error(transparent)]
    Time(#[from] crate::time::OutOfRange),
}

/// Starts, follows and stops turns. Cheap to clone.
#[derive(Clone)]
pub struct TurnEngine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    tracker: TaskTracker,
    live: LiveTurns,
    config: EngineConfig,
    /// Stops background work (the reaper) at shutdown.
    stop: tokio_util::sync::CancellationToken,
    /// Turns being written but not yet registered as live, by turn id, so a
    /// retry racing the original waits for it instead of missing it.
    starting: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

impl TurnEngine {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Self {
        let inner = Inner {
            store,
            bus,
            clock,
            tracker: TaskTracker::new(),
            live: LiveTurns::default(),
            config,
            stop: Default::default(),
            starting: Default::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Stores the user message and, unless an agent holds the session, starts
    /// the answer.
    pub async fn send(&self, mut msg: SendMessage) -> Result<SendOutcome, SendError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let turn_id = Uuid::now_v7();
        let begin = BeginTurn {
            tenant_id: msg.tenant.id.clone(),
            session_id: msg.session_id,
            owner: msg.subject.to_string(),
            turn_id,
            content: msg.content.clone(),
            client_message_id: msg.client_message_id.clone(),
            user_token_count: i64::from(estimate_tokens(&msg.content)),
            node_id: inner.config.node_id.clone(),
            lease_until: now + inner.config.lease,
            now,
            history_limit: msg.tenant.primary.settings.history_messages,
            max_messages: msg.tenant.max_messages_per_session,
            retained_since: crate::retention::retained_since(now, msg.tenant.retention_days),
            budget: budget::reservation(inner, &msg, now),
            context: msg.context.clone(),
        };
        let reservation = begin.budget.as_ref().map(|r| r.id);
        let starting = Starting::new(inner, turn_id);
        let (user, assistant, history) = match inner.store.begin_turn(&begin).await? {
            BeginTurnOutcome::Started { user, assistant, history, context } => {
                // Without a context of its own, the message's tools are told
                // the session's latest.
                if msg.context.is_none() {
                    msg.context = context;
                }
                (user, assistant, history)
            }
            BeginTurnOutcome::QuotaExceeded(spent) => return Err(budget::spent(&msg, &now, spent)),
            other => return self.not_started(&msg, other).await,
        };
        let live = Arc::new(
            LiveTurn::new(turn_id, msg.session_id, assistant.seq, user.seq).for_tenant(&msg.tenant.id),
        );
        // Subscribe before the task runs so this caller misses nothing.
        let events = inner.bus.subscribe(msg.session_id);
        inner.live.insert(live.clone());
        drop(starting);
        let stream = TurnStream::new(events, live.clone(), user.clone(), abort_on_drop(&msg.tenant));
        let task = run::TurnTask {
            inner: self.inner.clone(),
            msg,
            live,
            user,
            assistant,
            history,
            reservation,
            tools: Default::default(),
            checks: Default::default(),
            handoff: Default::default(),
        };
        // What the turn logs names the request that started it, its tenant,
        // session and turn.
        let span = tracing::info_span!(
            "turn",
            trace_id = %task.msg.trace_id,
            tenant = %task.msg.tenant.id,
            session = %task.msg.session_id,
            turn = %task.live.turn_id
        );
        inner.tracker.spawn(tracing::Instrument::instrument(task.run(), span));
        Ok(SendOutcome::Streaming(stream))
    }

    /// What a message that started no turn led to.
    async fn not_started(
        &self,
        msg: &SendMessage,
        outcome: BeginTurnOutcome,
    ) -> Result<SendOutcome, SendError> {
        let inner = &self.inner;
        match outcome {
            BeginTurnOutcome::NotFound => Err(SendError::NotFound),
            BeginTurnOutcome::Closed => Err(SendError::Closed),
            BeginTurnOutcome::InProgress => Err(SendError::InProgress),
            BeginTurnOutcome::Human { user } => {
                inner
                    .bus
                    .publish(msg.session_id, Arc::new(crate::events::SessionEvent::Message(user.clone())));
                Ok(SendOutcome::HandledByAgent { user })
            }
            BeginTurnOutcome::Duplicate { user, assistant } => self.duplicate(msg, user, assistant).await,
            // Taken apart by the caller.
            BeginTurnOutcome::Started { .. } | BeginTurnOutcome::QuotaExceeded(_) => {
                Err(SendError::InProgress)
            }
        }
    }

    /// A retry with a known `client_message_id`: the earlier outcome, or the
    /// earlier turn's stream if it is still running here.
    async fn duplicate(
        &self,
        msg: &SendMessage,
        user: Message,
        assistant: Option<Message>,
    ) -> Result<SendOutcome, SendError> {
        if user.content != msg.content {
            return Err(SendError::ReusedClientMessageId);
        }
        // Only a message sent while an agent held the session has no answer:
        // its retry gets the same `handled_by: agent` as the first time.
        if assistant.is_none() {
            return Ok(SendOutcome::HandledByAgent { user });
        }
        if !assistant.as_ref().is_some_and(|a| a.status == MessageStatus::Streaming) {
            return Ok(SendOutcome::Finished { user, assistant });
        }
        // Subscribe before looking the turn up: a turn leaves the registry
        // before it publishes its end, so either we find it and will see
        // that end, or it is over and the store has the outcome.
        let events = self.inner.bus.subscribe(msg.session_id);
        if let Some(turn_id) = user.turn_id {
            self.wait_started(turn_id).await;
        }
        if let Some(live) = self.inner.live.get(msg.session_id).filter(|t| Some(t.turn_id) == user.turn_id) {
            // A retry is a new connection; the original one owns the abort rule.
            return Ok(SendOutcome::Streaming(TurnStream::attach(events, live, user)));
        }
        let answer_seq = user.seq + 1;
        let stored =
            self.inner.store.list_messages(&msg.tenant.id, msg.session_id, 1, Some(answer_seq + 1)).await?;
        match stored.into_iter().find(|m| m.seq == answer_seq) {
            Some(answer) if answer.status != MessageStatus::Streaming => {
                Ok(SendOutcome::Finished { user, assistant: Some(answer) })
            }
            // Still streaming on another node: following it there is the bus's job.
            _ => Err(SendError::InProgress),
        }
    }

    /// Waits (briefly) until a turn this node is writing becomes live.
    async fn wait_started(&self, turn_id: Uuid) {
        let Some(notify) = self.inner.starting_lock().get(&turn_id).cloned() else { return };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.inner.starting_lock().contains_key(&turn_id) {
            let _ = tokio::time::timeout(Duration::from_secs(5), notified).await;
        }
    }

    /// Stops the session's turn if it runs on this node, without waiting for
    /// its end. A session's lifecycle uses [`TurnEngine::stop_answer`]
    /// instead, which reaches every node and waits.
    pub fn stop_session_turn(&self, session_id: Uuid, reason: StopReason) {
        if let Some(turn) = self.inner.live.get(session_id) {
            turn.stop(reason);
        }
    }

    /// Stops every running turn of the tenant (a kill switch was turned on);
    /// returns how many were asked to stop.
    pub fn stop_tenant_turns(&self, tenant_id: &str, reason: StopReason) -> usize {
        self.inner.live.stop_tenant(tenant_id, reason)
    }

    /// Number of turns running on this node.
    pub fn running(&self) -> usize {
        self.inner.live.len()
    }

    /// Marks this node's leftover streaming messages `interrupted` (run at
    /// startup, before serving) and returns how many there were.
    pub async fn reap_own_leases(&self) -> Result<usize, StoreError> {
        reaper::reap_own(&self.inner).await
    }

    /// Runs the lease reaper, and answers other nodes' requests for the
    /// live text of turns running here, until shutdown.
    pub fn spawn_background(&self) {
        self.inner.tracker.spawn(reaper::run(self.inner.clone()));
        self.inner.tracker.spawn(snapshots::answer(self.inner.clone()));
    }

    /// Runs the retention sweeper (SPEC §11.6) until shutdown; `policies`
    /// names the tenants served at each sweep.
    pub fn spawn_sweeper(
        &self,
        every: Duration,
        policies: impl Fn() -> Vec<crate::retention::Policy> + Send + 'static,
    ) {
        let inner = &self.inner;
        let sweeper = crate::retention::Sweeper::new(inner.store.clone(), inner.clock.clone());
        inner.tracker.spawn(sweeper.run(every, policies, inner.stop.clone()));
    }

    /// The engine's source of "now".
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The turn running on this node in the session, if any.
    pub fn live_turn(&self, session_id: Uuid) -> Option<Arc<LiveTurn>> {
        self.inner.live.get(session_id)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }

    /// Lets running turns finish for up to `grace`, then stops the rest (they
    /// are saved as `interrupted`) and waits for them to be written.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stop.cancel();
        inner.tracker.close();
        if tokio::time::timeout(grace, inner.tracker.wait()).await.is_err() {
            tracing::warn!(running = inner.live.len(), "grace period over; interrupting running turns");
            inner.live.stop_all(StopReason::Shutdown);
            let _ = tokio::time::timeout(Duration::from_secs(10), inner.tracker.wait()).await;
        }
    }
}

impl Inner {
    fn starting_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Notify>>> {
        self.starting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks a turn as being written; dropping it (once the turn is live, or
/// was refused) wakes whoever waits for it.
struct Starting<'a> {
    inner: &'a Inner,
    turn_id: Uuid,
}

impl<'a> Starting<'a> {
    fn new(inner: &'a Inner, turn_id: Uuid) -> Self {
        inner.starting_lock().insert(turn_id, Arc::new(Notify::new()));
        Self { inner, turn_id }
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if let Some(notify) = self.inner.starting_lock().remove(&self.turn_id) {
            notify.notify_waiters();
        }
    }
}

fn abort_on_drop(tenant: &Tenant) -> bool {
    tenant.on_disconnect == OnDisconnect::Abort
}
