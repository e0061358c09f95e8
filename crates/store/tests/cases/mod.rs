//! The cases of the conformance suite, written once against `Harness` and
//! the `Store` trait, and helpers they share.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

mod admin;
mod audit;
mod conversations;
mod erase;
mod handoff;
mod keys;
mod leases;
mod links;
mod lists;
mod memory;
mod outbox;
mod outbox_upkeep;
mod retention;
mod takeover;
mod turns;
mod usage;

pub use admin::*;
pub use audit::*;
pub use conversations::*;
pub use erase::*;
pub use handoff::*;
pub use keys::*;
pub use leases::*;
pub use links::*;
pub use lists::*;
pub use memory::*;
pub use outbox::*;
pub use outbox_upkeep::*;
pub use retention::*;
pub use takeover::*;
pub use turns::*;
pub use usage::*;

use std::sync::Arc;
use switchboard_core::model::{Message, MessageStatus, Session, TurnMeta};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, NewSession, Store};
use switchboard_core::time::{from_millis, Timestamp};
use uuid::Uuid;

pub const TENANT: &str = "acme";
pub const OWNER: &str = "visitor:00000000-0000-4000-8000-000000000001";
pub const NODE: &str = "node-a";
pub const T0: i64 = 1_700_000_000_000;

pub fn at(ms_after_t0: i64) -> Timestamp {
    from_millis(T0 + ms_after_t0).unwrap()
}

pub async fn new_session(store: &Arc<dyn Store>) -> Session {
    new_session_for(store, TENANT, OWNER, at(0)).await
}

pub async fn new_session_for(store: &Arc<dyn Store>, tenant: &str, owner: &str, now: Timestamp) -> Session {
    let new = NewSession {
        event: None,
        id: Uuid::new_v4(),
        tenant_id: tenant.into(),
        owner: owner.into(),
        metadata: None,
        now,
    };
    store.create_session(&new).await.unwrap()
}

/// A turn in `session` sent at `now` (lease: ten seconds).
pub fn turn(session: &Session, content: &str, now: Timestamp) -> BeginTurn {
    BeginTurn {
        context: None,
        tenant_id: session.tenant_id.clone(),
        session_id: session.id,
        owner: session.owner.clone(),
        turn_id: Uuid::new_v4(),
        content: content.into(),
        client_message_id: None,
        user_token_count: 3,
        node_id: NODE.into(),
        lease_until: now + chrono::Duration::seconds(10),
        now,
        history_limit: 20,
        max_messages: 1000,
        retained_since: from_millis(0).unwrap(),
        budget: None,
    }
}

pub fn with_client_id(mut turn: BeginTurn, id: &str) -> BeginTurn {
    turn.client_message_id = Some(id.into());
    turn
}

/// Begins a turn that must start; returns (user, assistant, history).
pub async fn start(store: &Arc<dyn Store>, turn: &BeginTurn) -> (Message, Message, Vec<Message>) {
    match store.begin_turn(turn).await.unwrap() {
        BeginTurnOutcome::Started { user, assistant, history, .. } => (user, assistant, history),
        other => panic!("expected Started, got {other:?}"),
    }
}

pub fn finish_of(message: &Message, tenant: &str, content: &str, now: Timestamp) -> Finish {
    Finish {
        event: None,
        tools: Vec::new(),
        tenant_id: tenant.into(),
        session_id: message.session_id,
        seq: message.seq,
        content: content.into(),
        status: MessageStatus::Complete,
        token_count: 7,
        meta: TurnMeta { provider: Some("demo".into()), model: Some("demo-1".into()), ..TurnMeta::default() },
        now,
        usage: None,
    }
}

/// Starts and completes one turn; returns the assistant message as finished.
pub async fn complete_turn(
    store: &Arc<dyn Store>,
    session: &Session,
    content: &str,
    now: Timestamp,
) -> Message {
    let (_, assistant, _) = start(store, &turn(session, content, now)).await;
    let answer = format!("answer to {content}");
    assert!(store.finish_message(&finish_of(&assistant, &session.tenant_id, &answer, now)).await.unwrap());
    assistant
}

pub fn seqs(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

pub async fn session_of(store: &Arc<dyn Store>, session: &Session) -> Session {
    store.get_session(&session.tenant_id, session.id).await.unwrap().unwrap()
}
