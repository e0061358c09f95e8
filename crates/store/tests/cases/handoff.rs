//! Cases about events handed to this node's delivery worker by the writes
//! that commit them (SQL stores; the memory store hands nothing over):
//! written leased to the node and handed as a lease would return them,
//! never when held or not written, and written unleased when the worker
//! has no room, for any node's look.

use super::outbox::{
    delivery_of, event, ids_of, lease, record, session_with_event, settle, LEASE_MS, NODE_B,
};
use super::*;
use crate::common::Harness;
use serde_json::json;
use std::time::Duration;
use switchboard_core::outbound::{DeliveryStatus, EventType};
use switchboard_core::store::outbox::{Handoff, Settle};
use tokio::sync::mpsc;

pub async fn events_written_here_are_handed_over_leased(h: &mut Harness) {
    let store = h.store.clone();
    let (tx, mut handed) = mpsc::channel(2);
    let lease_for = Duration::from_millis(LEASE_MS as u64);
    assert!(store.hand_off_deliveries(Handoff { node: NODE.into(), lease: lease_for, tx: tx.clone() }));
    // Once per store: a second worker is refused.
    assert!(!store.hand_off_deliveries(Handoff { node: NODE_B.into(), lease: lease_for, tx }));

    // session.created and turn.completed, each handed after its write, as
    // a lease would return it; an answer no longer streaming writes none.
    let (new, created) = session_with_event(at(0), json!({}));
    let session = store.create_session(&new).await.unwrap();
    assert_eq!(handed.try_recv().unwrap(), delivery_of(&created));
    let (_, assistant, _) = start(&store, &turn(&session, "hi", at(10))).await;
    let completed = event(EventType::TurnCompleted, &session, at(20), json!({}));
    let finish = Finish { event: Some(completed.clone()), ..finish_of(&assistant, TENANT, "hello", at(20)) };
    assert!(store.finish_message(&finish).await.unwrap());
    let late = Finish {
        event: Some(event(EventType::TurnFailed, &session, at(21), json!({}))),
        ..finish_of(&assistant, TENANT, "again", at(21))
    };
    assert!(!store.finish_message(&late).await.unwrap());
    assert_eq!(handed.try_recv().unwrap(), delivery_of(&completed));
    assert!(handed.try_recv().is_err());

    // Both pending, leased to this node: no look takes them before the
    // lease ends, no other node settles them, this node does.
    assert_eq!(record(&store, TENANT, completed.id).await.status, DeliveryStatus::Pending);
    assert!(lease(&store, NODE, 100, 10).await.is_empty());
    assert!(lease(&store, NODE_B, LEASE_MS - 1, 10).await.is_empty());
    assert!(!settle(&store, created.id, NODE_B, Settle::Delivered { status: 200 }, 30).await);
    assert!(settle(&store, created.id, NODE, Settle::Delivered { status: 200 }, 30).await);
    // This node stopped mid-try: the other is due at once, for any node.
    assert_eq!(store.release_deliveries(NODE).await.unwrap(), 1);
    assert_eq!(ids_of(&lease(&store, NODE_B, 100, 10).await), [completed.id]);

    // No room (two wait already): the third is written unleased, and any
    // node's look takes it.
    let (first, first_event) = session_with_event(at(200), json!({}));
    let (second, second_event) = session_with_event(at(201), json!({}));
    let (third, unleased) = session_with_event(at(202), json!({}));
    for new in [&first, &second, &third] {
        store.create_session(new).await.unwrap();
    }
    assert_eq!(ids_of(&lease(&store, NODE_B, 300, 10).await), [unleased.id]);
    let waiting = [handed.try_recv().unwrap(), handed.try_recv().unwrap()];
    assert_eq!(waiting, [delivery_of(&first_event), delivery_of(&second_event)]);
    assert!(handed.try_recv().is_err());

    // Held (the endpoint answered 410): written held, never handed.
    assert!(settle(&store, unleased.id, NODE_B, Settle::Gone, 400).await);
    let (new, held) = session_with_event(at(500), json!({}));
    store.create_session(&new).await.unwrap();
    assert!(handed.try_recv().is_err());
    let r = record(&store, TENANT, held.id).await;
    assert_eq!((r.status, r.next_attempt_at), (DeliveryStatus::Held, None));
    // Held too: the pending ones (the two handed over among them). Its
    // place was given back: the next event after a resume is handed.
    assert_eq!(store.resume_deliveries(TENANT, at(600)).await.unwrap(), 4);
    let (new, resumed) = session_with_event(at(700), json!({}));
    store.create_session(&new).await.unwrap();
    assert_eq!(handed.try_recv().unwrap(), delivery_of(&resumed));
}
