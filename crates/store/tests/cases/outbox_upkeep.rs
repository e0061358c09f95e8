//! Cases about the outbox's upkeep and reads (SPEC §19): the admin list's
//! pages and filters, idle sessions marked once per quiet stretch, bodies
//! encrypted at rest, the purge of old deliveries, a delivery put off by a
//! node that cannot send it.

use super::outbox::*;
use super::*;
use crate::common::Harness;
use serde_json::json;
use switchboard_core::outbound::{DeliveryStatus, EventType, NewEvent};
use switchboard_core::store::outbox::{Delivery, IdleSession, Settle};

pub async fn list_pages_and_filters(h: &mut Harness) {
    let store = h.store.clone();
    let one = new_session(&store).await;
    let two = new_session(&store).await;
    let elsewhere = new_session_for(&store, OTHER, OWNER, at(0)).await;
    let events: Vec<NewEvent> = (0..5)
        .map(|n| {
            let session = if n % 2 == 0 { &one } else { &two };
            event(EventType::TurnCompleted, session, at(n), json!({ "n": n }))
        })
        .collect();
    store.enqueue_events(&events).await.unwrap();
    let theirs = event(EventType::TurnCompleted, &elsewhere, at(9), json!({}));
    store.enqueue_events(std::slice::from_ref(&theirs)).await.unwrap();
    let [e1, e2, e3, e4, e5] = [0, 1, 2, 3, 4].map(|n| events[n].id);

    // Pages of two, newest first, each after the last one's id.
    let all = None;
    assert_eq!(listed(&store, &query(TENANT, all, None, 2)).await, [e5, e4]);
    assert_eq!(listed(&store, &query(TENANT, all, Some(e4), 2)).await, [e3, e2]);
    assert_eq!(listed(&store, &query(TENANT, all, Some(e2), 2)).await, [e1]);
    assert!(listed(&store, &query(TENANT, all, Some(e1), 2)).await.is_empty());
    assert_eq!(listed(&store, &query(TENANT, all, None, 10)).await, [e5, e4, e3, e2, e1]);
    let sessions: Vec<Uuid> = store
        .list_deliveries(&query(TENANT, all, None, 10))
        .await
        .unwrap()
        .iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(sessions, [one.id, two.id, one.id, two.id, one.id]);
    // Each tenant sees its own.
    assert_eq!(listed(&store, &query(OTHER, all, None, 10)).await, [theirs.id]);
    assert!(listed(&store, &query("nobody", all, None, 10)).await.is_empty());

    // By status.
    assert_eq!(lease(&store, NODE, 10, 10).await.len(), 6);
    assert!(settle(&store, e2, NODE, Settle::Delivered { status: 200 }, 20).await);
    assert!(settle(&store, e4, NODE, Settle::Dead { status: Some(404), error: "HTTP 404".into() }, 20).await);
    let by = |status| query(TENANT, Some(status), None, 10);
    assert_eq!(listed(&store, &by(DeliveryStatus::Delivered)).await, [e2]);
    assert_eq!(listed(&store, &by(DeliveryStatus::Dead)).await, [e4]);
    assert_eq!(listed(&store, &by(DeliveryStatus::Pending)).await, [e5, e3, e1]);
    assert!(listed(&store, &by(DeliveryStatus::Held)).await.is_empty());
    assert!(listed(&store, &by(DeliveryStatus::Gone)).await.is_empty());
    // Status, cursor and limit together.
    let pending = Some(DeliveryStatus::Pending);
    assert_eq!(listed(&store, &query(TENANT, pending, None, 1)).await, [e5]);
    assert_eq!(listed(&store, &query(TENANT, pending, Some(e5), 1)).await, [e3]);
    assert_eq!(listed(&store, &query(TENANT, pending, Some(e3), 5)).await, [e1]);
    assert_eq!(listed(&store, &query(TENANT, pending, Some(e4), 5)).await, [e3, e1]);
    assert!(listed(&store, &query(OTHER, Some(DeliveryStatus::Delivered), None, 10)).await.is_empty());
    assert_eq!(listed(&store, &query(OTHER, pending, None, 10)).await, [theirs.id]);

    // A deleted session's events go with it, sent or not.
    assert!(store.delete_session(TENANT, two.id).await.unwrap());
    assert_eq!(listed(&store, &query(TENANT, all, None, 10)).await, [e5, e3, e1]);
    assert_eq!(listed(&store, &query(OTHER, all, None, 10)).await, [theirs.id]);
}

pub async fn idle_sessions_once_per_quiet_stretch(h: &mut Harness) {
    let store = h.store.clone();
    let early = new_session_for(&store, TENANT, OWNER, at(-1)).await;
    let a = new_session_for(&store, TENANT, OWNER, at(0)).await;
    let closed = new_session_for(&store, TENANT, OWNER, at(500)).await;
    let b = new_session_for(&store, TENANT, "user:bob", at(1_000)).await;
    let c = new_session_for(&store, TENANT, OWNER, at(5_000)).await;
    let elsewhere = new_session_for(&store, OTHER, OWNER, at(100)).await;
    store.close_session(TENANT, closed.id, None).await.unwrap().unwrap();
    let idle =
        |s: &Session, ms| IdleSession { session_id: s.id, owner: s.owner.clone(), last_activity_at: at(ms) };
    let quiet = |s: &Session, ms| event(EventType::SessionIdle, s, at(ms), json!({}));
    let idle_ids = |found: Vec<IdleSession>| found.into_iter().map(|i| i.session_id).collect::<Vec<_>>();

    // Last active in [since, before), not closed, oldest activity first.
    let found = store.idle_sessions(TENANT, at(0), at(5_000), 10).await.unwrap();
    assert_eq!(found, [idle(&a, 0), idle(&b, 1_000)]);
    assert_eq!(store.idle_sessions(TENANT, at(0), at(5_000), 1).await.unwrap(), [idle(&a, 0)]);
    let wide = store.idle_sessions(TENANT, at(-1), at(5_001), 10).await.unwrap();
    assert_eq!(idle_ids(wide), [early.id, a.id, b.id, c.id]);
    assert_eq!(store.idle_sessions(OTHER, at(0), at(5_000), 10).await.unwrap(), [idle(&elsewhere, 100)]);

    // Marked once for its quiet stretch, with its event.
    let first = quiet(&a, 6_000);
    assert!(store.mark_idle(&idle(&a, 0), &first).await.unwrap());
    assert!(!store.mark_idle(&idle(&a, 0), &quiet(&a, 6_001)).await.unwrap());
    assert_eq!(store.idle_sessions(TENANT, at(0), at(5_000), 10).await.unwrap(), [idle(&b, 1_000)]);
    // Marking with an activity that is not the session's last writes
    // nothing.
    assert!(!store.mark_idle(&idle(&b, 999), &quiet(&b, 6_002)).await.unwrap());
    assert!(!store.mark_idle(&idle(&b, 1_001), &quiet(&b, 6_003)).await.unwrap());
    // Nor does a session that is not there, or not the event's tenant's.
    let ghost = IdleSession { session_id: Uuid::new_v4(), owner: OWNER.into(), last_activity_at: at(0) };
    let ghost_event = NewEvent::new(EventType::SessionIdle, TENANT, ghost.session_id, at(6_004), json!({}));
    assert!(!store.mark_idle(&ghost, &ghost_event).await.unwrap());
    let misplaced = NewEvent::new(EventType::SessionIdle, TENANT, elsewhere.id, at(6_005), json!({}));
    assert!(!store.mark_idle(&idle(&elsewhere, 100), &misplaced).await.unwrap());
    assert_eq!(store.idle_sessions(OTHER, at(0), at(5_000), 10).await.unwrap(), [idle(&elsewhere, 100)]);
    let records = store.list_deliveries(&query(TENANT, None, None, 10)).await.unwrap();
    assert_eq!(records, [pending_record(&first)]);
    assert!(store.list_deliveries(&query(OTHER, None, None, 10)).await.unwrap().is_empty());

    // New activity starts a new quiet stretch: idle again, once more.
    complete_turn(&store, &a, "back again", at(7_000)).await;
    assert_eq!(session_of(&store, &a).await.last_activity_at, at(7_000));
    let found = store.idle_sessions(TENANT, at(0), at(8_000), 10).await.unwrap();
    assert_eq!(found, [idle(&b, 1_000), idle(&c, 5_000), idle(&a, 7_000)]);
    // The stretch it was marked for is over.
    assert!(!store.mark_idle(&idle(&a, 0), &quiet(&a, 8_000)).await.unwrap());
    let second = quiet(&a, 8_001);
    assert!(store.mark_idle(&idle(&a, 7_000), &second).await.unwrap());
    assert!(!store.mark_idle(&idle(&a, 7_000), &quiet(&a, 8_002)).await.unwrap());
    let found = store.idle_sessions(TENANT, at(0), at(8_000), 10).await.unwrap();
    assert_eq!(found, [idle(&b, 1_000), idle(&c, 5_000)]);
    // Closing takes a session out.
    store.close_session(TENANT, c.id, None).await.unwrap().unwrap();
    assert_eq!(store.idle_sessions(TENANT, at(0), at(8_000), 10).await.unwrap(), [idle(&b, 1_000)]);

    let records = store.list_deliveries(&query(TENANT, None, None, 10)).await.unwrap();
    assert_eq!(records, [pending_record(&second), pending_record(&first)]);
    assert!(records.iter().all(|r| r.kind == "session.idle" && r.session_id == a.id));
}

pub async fn outbox_bodies_are_encrypted_at_rest(h: &mut Harness) {
    let store = h.store.clone();
    let marker = format!("MARKER-{}", Uuid::new_v4().simple());
    let session = new_session(&store).await;
    let events: Vec<NewEvent> = (0..3)
        .map(|n| {
            event(EventType::TurnCompleted, &session, at(n), json!({ "answer": format!("{marker} {n}") }))
        })
        .collect();
    store.enqueue_events(&events).await.unwrap();
    let (new, created) = session_with_event(at(5), json!({ "note": marker.as_str() }));
    store.create_session(&new).await.unwrap();

    let (contains_marker, contains_type) = if h.is_sqlite() {
        (
            format!("SELECT count(*) FROM outbox WHERE instr(body, CAST('{marker}' AS BLOB)) > 0"),
            "SELECT count(*) FROM outbox WHERE instr(CAST(type AS BLOB), CAST('completed' AS BLOB)) > 0"
                .to_owned(),
        )
    } else {
        (
            format!("SELECT count(*) FROM outbox WHERE position(convert_to('{marker}', 'UTF8') in body) > 0"),
            "SELECT count(*) FROM outbox WHERE position(convert_to('completed', 'UTF8') in convert_to(type, 'UTF8')) > 0"
                .to_owned(),
        )
    };
    // The memory store keeps nothing at rest.
    let Some(found) = h.count(&contains_marker).await else { return };
    assert_eq!(found, 0, "plaintext body found at rest");
    // The same search does find what is stored in plaintext.
    assert_eq!(h.count(&contains_type).await, Some(3));
    assert_eq!(h.count("SELECT count(*) FROM outbox").await, Some(4));
    for needle in ["MARKER", "session_id", "occurred_at"] {
        let query = contains_marker.replace(&marker, needle);
        assert_eq!(h.count(&query).await, Some(0), "{needle} found at rest");
    }

    // Read back after a restart, exactly as given.
    h.reopen().await;
    let store = h.store.clone();
    let leased = lease(&store, NODE, 10, 10).await;
    let expected: Vec<Delivery> = events.iter().chain([&created]).map(delivery_of).collect();
    assert_eq!(leased, by_id(expected));
}

pub async fn purge_deletes_only_what_was_kept_long_enough(h: &mut Harness) {
    let store = h.store.clone();
    let session = new_session(&store).await;
    let events: Vec<NewEvent> =
        (0..5).map(|i| event(EventType::TurnCompleted, &session, at(i), json!({"seq": i}))).collect();
    store.enqueue_events(&events).await.unwrap();
    let leased = lease(&store, NODE, 10, 10).await;
    assert_eq!(leased.len(), 5);
    // 0 and 1 delivered at 100 and 200, 2 dead, 3 gone (4 held then), 4 held.
    let settle = |id, s: Settle, t| {
        let store = store.clone();
        async move { assert!(store.settle_delivery(id, NODE, &s, at(t)).await.unwrap()) }
    };
    settle(events[0].id, Settle::Delivered { status: 200 }, 100).await;
    settle(events[1].id, Settle::Delivered { status: 204 }, 200).await;
    settle(events[2].id, Settle::Dead { status: Some(500), error: "HTTP 500".into() }, 300).await;
    settle(events[3].id, Settle::Gone, 400).await;
    // Delivered before 150: only the first; ended (created) before 3: the dead one.
    assert_eq!(store.purge_deliveries(at(150), at(3), 100).await.unwrap(), 2);
    let left: Vec<Uuid> =
        store.list_deliveries(&query(TENANT, None, None, 10)).await.unwrap().iter().map(|d| d.id).collect();
    assert_eq!(sorted(&[&events[1], &events[3], &events[4]]), {
        let mut l = left.clone();
        l.sort();
        l
    });
    // The limit holds; held ones are never purged.
    assert_eq!(store.purge_deliveries(at(10_000), at(10_000), 1).await.unwrap(), 1);
    assert_eq!(store.purge_deliveries(at(10_000), at(10_000), 100).await.unwrap(), 1);
    let left = store.list_deliveries(&query(TENANT, None, None, 10)).await.unwrap();
    assert_eq!(
        left.iter().map(|d| (d.id, d.status)).collect::<Vec<_>>(),
        [(events[4].id, DeliveryStatus::Held)]
    );
}

pub async fn a_postponed_delivery_is_not_a_try_and_any_node_takes_it_later(h: &mut Harness) {
    let store = h.store.clone();
    let session = new_session(&store).await;
    let e = event(EventType::SessionCreated, &session, at(0), json!({}));
    store.enqueue_events(std::slice::from_ref(&e)).await.unwrap();
    assert_eq!(ids_of(&lease(&store, NODE, 10, 10).await), [e.id]);
    let later = Settle::Postpone { at: at(5_000), why: "not served here".into() };
    assert!(store.settle_delivery(e.id, NODE, &later, at(20)).await.unwrap());
    let record = store.list_deliveries(&query(TENANT, None, None, 10)).await.unwrap().remove(0);
    assert_eq!((record.status, record.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(
        (record.next_attempt_at, record.last_error.as_deref()),
        (Some(at(5_000)), Some("not served here"))
    );
    assert!(lease(&store, NODE_B, 4_999, 10).await.is_empty(), "not due before its time");
    assert_eq!(ids_of(&lease(&store, NODE_B, 5_000, 10).await), [e.id]);
}
