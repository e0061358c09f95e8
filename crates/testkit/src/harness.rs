//! A `TurnEngine` on the test doubles: the memory store, the in-process bus,
//! a clock on tokio's time and a tenant whose routes are scripted providers.
//! Run it on a paused runtime (`#[tokio::test(start_paused = true)]`): the
//! engine's timers and its `Clock` then move only as the test lets time pass.

use crate::{MemoryStore, TokioClock};
use std::sync::Arc;
use switchboard_bus::LocalBus;
use switchboard_core::events::SessionEvent;
use switchboard_core::ids::Subject;
use switchboard_core::model::Message;
use switchboard_core::store::{NewSession, Store, StoreError};
use switchboard_core::tenant::{OnDisconnect, ProviderKind, ProviderSettings, RateLimits, Tenant};
use switchboard_core::time::Clock;
use switchboard_core::turn::{EngineConfig, SendError, SendMessage, SendOutcome, TurnEngine, TurnStream};
use switchboard_core::upstream::Route;
use uuid::Uuid;

/// The node id of a harness's engine (and of the leases its turns hold).
pub const NODE: &str = "node-test";

/// Settings of an OpenAI-kind provider for `model`, every other value the
/// default (SPEC §11's timeouts, 3 attempts, a breaker of 5 failures/60 s).
pub fn settings(model: &str) -> ProviderSettings {
    ProviderSettings::new(ProviderKind::Openai, model)
}

/// A tenant `id` calling `primary`, then `fallbacks` in order; no budget,
/// answers continue when their client leaves.
pub fn tenant(id: &str, primary: Route, fallbacks: Vec<Route>) -> Tenant {
    Tenant {
        events: None,
        id: id.to_owned(),
        name: id.to_owned(),
        allowed_origins: Vec::new(),
        allow_no_origin: true,
        on_disconnect: OnDisconnect::Continue,
        retention_days: 30,
        max_messages_per_session: 1000,
        max_connections_per_subject: 10,
        require_user: false,
        kill_switch: false,
        jwt: None,
        rate_limits: RateLimits::default(),
        budget: None,
        source: "config".to_owned(),
        primary: Arc::new(primary),
        fallbacks: fallbacks.into(),
        tools: None,
    }
}

pub struct Harness {
    pub engine: TurnEngine,
    pub store: Arc<MemoryStore>,
    pub bus: Arc<LocalBus>,
    pub clock: Arc<TokioClock>,
    pub tenant: Arc<Tenant>,
}

impl Harness {
    /// An engine with SPEC §11's timings (lease 10 s, checkpoint every 1 s,
    /// reaper every 2 s) as node [`NODE`]. Make it inside the runtime.
    pub fn new(tenant: Tenant) -> Self {
        Self::with_config(tenant, EngineConfig::new(NODE))
    }

    pub fn with_config(tenant: Tenant, config: EngineConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let bus = Arc::new(LocalBus::new());
        let clock = Arc::new(TokioClock::new());
        let engine = TurnEngine::new(store.clone(), bus.clone(), clock.clone(), config);
        Self { engine, store, bus, clock, tenant: Arc::new(tenant) }
    }

    /// A new session of a new visitor of the tenant.
    pub async fn session(&self) -> Result<(Uuid, Subject), StoreError> {
        let subject = Subject::Visitor(Uuid::new_v4());
        let new = NewSession {
            event: None,
            id: Uuid::new_v4(),
            tenant_id: self.tenant.id.clone(),
            owner: subject.to_string(),
            metadata: None,
            now: self.clock.now(),
        };
        let session = self.store.create_session(&new).await?;
        Ok((session.id, subject))
    }

    /// What `send` sends: `content` into the session, as `subject`.
    pub fn message(&self, session_id: Uuid, subject: &Subject, content: &str) -> SendMessage {
        SendMessage {
            tenant: self.tenant.clone(),
            subject: subject.clone(),
            session_id,
            content: content.to_owned(),
            client_message_id: None,
            trace_id: "trace-test".to_owned(),
            context: None,
        }
    }

    pub async fn send(
        &self,
        session_id: Uuid,
        subject: &Subject,
        content: &str,
    ) -> Result<SendOutcome, SendError> {
        self.engine.send(self.message(session_id, subject, content)).await
    }

    /// A message as the store holds it now.
    pub fn stored(&self, session_id: Uuid, seq: i64) -> Option<Message> {
        self.store.message(session_id, seq)
    }
}

/// Every event of a turn, to its last.
pub async fn drain(mut stream: TurnStream) -> Vec<Arc<SessionEvent>> {
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event);
    }
    events
}

/// The answer text the events spell (deltas in order, a replace starting
/// over).
pub fn text_of(events: &[Arc<SessionEvent>]) -> String {
    let mut text = String::new();
    for event in events {
        match &**event {
            SessionEvent::StreamDelta { text: t, .. } => text.push_str(t),
            SessionEvent::StreamReplace { text: t, .. } => t.clone_into(&mut text),
            _ => {}
        }
    }
    text
}
