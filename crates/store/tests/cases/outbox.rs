//! Cases about the outbox of outbound events (SPEC §19): events written in
//! the same write as the change that causes them (and only when it
//! changed something), leased by one node at a time, settled by the node
//! holding the lease, retried, held while the tenant's endpoint is disabled
//! and resumed. The helpers here serve `outbox_upkeep` too.

use super::*;
use crate::common::Harness;
use serde_json::json;
use std::collections::BTreeMap;
use switchboard_core::model::SessionStatus;
use switchboard_core::outbound::{DeliveryStatus, EventType, NewEvent};
use switchboard_core::store::outbox::{Delivery, DeliveryQuery, DeliveryRecord, RetryOutcome, Settle};
use switchboard_core::store::takeover::{HoldChange, HoldOutcome};

pub(super) const OTHER: &str = "other";
pub(super) const NODE_B: &str = "node-b";
/// How long a lease lasts in these cases.
pub(super) const LEASE_MS: i64 = 30_000;

pub(super) fn event(kind: EventType, session: &Session, now: Timestamp, data: serde_json::Value) -> NewEvent {
    NewEvent::new(kind, &session.tenant_id, session.id, now, data)
}

/// Leases up to `limit` deliveries for `node` at `now`, sorted by id.
/// A new session of the tenant whose `session.created` event (with `data`)
/// is written with it: the session to create and its event.
pub(super) fn session_with_event(now: Timestamp, data: serde_json::Value) -> (NewSession, NewEvent) {
    let id = Uuid::new_v4();
    let created = NewEvent::new(EventType::SessionCreated, TENANT, id, now, data);
    let new = NewSession {
        event: Some(created.clone()),
        id,
        tenant_id: TENANT.into(),
        owner: OWNER.into(),
        metadata: None,
        now,
    };
    (new, created)
}

pub(super) async fn lease(store: &Arc<dyn Store>, node: &str, now_ms: i64, limit: u32) -> Vec<Delivery> {
    let mut leased = store.lease_deliveries(node, at(now_ms), at(now_ms + LEASE_MS), limit).await.unwrap();
    leased.sort_by_key(|d| d.id);
    leased
}

/// Deliveries sorted by id, as [`lease`] returns them.
pub(super) fn by_id(mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries.sort_by_key(|d| d.id);
    deliveries
}

pub(super) fn ids_of(leased: &[Delivery]) -> Vec<Uuid> {
    leased.iter().map(|d| d.id).collect()
}

pub(super) fn sorted(events: &[&NewEvent]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    ids.sort();
    ids
}

/// The delivery as a lease returns it, before any try.
pub(super) fn delivery_of(event: &NewEvent) -> Delivery {
    Delivery {
        id: event.id,
        tenant_id: event.tenant_id.clone(),
        kind: event.kind.as_str().into(),
        body: event.body.clone(),
        attempts: 0,
        created_at: event.at,
    }
}

/// The record of an event just written, pending and due at its time.
pub(super) fn pending_record(event: &NewEvent) -> DeliveryRecord {
    DeliveryRecord {
        id: event.id,
        kind: event.kind.as_str().into(),
        session_id: event.session_id,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(event.at),
        last_status: None,
        last_error: None,
        created_at: event.at,
        delivered_at: None,
    }
}

pub(super) fn query(
    tenant: &str,
    status: Option<DeliveryStatus>,
    before: Option<Uuid>,
    limit: u32,
) -> DeliveryQuery {
    DeliveryQuery { tenant_id: tenant.into(), status, before, limit }
}

pub(super) async fn listed(store: &Arc<dyn Store>, q: &DeliveryQuery) -> Vec<Uuid> {
    store.list_deliveries(q).await.unwrap().into_iter().map(|r| r.id).collect()
}

/// The tenant's record of one delivery.
pub(super) async fn record(store: &Arc<dyn Store>, tenant: &str, id: Uuid) -> DeliveryRecord {
    let all = store.list_deliveries(&query(tenant, None, None, 1000)).await.unwrap();
    all.into_iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no delivery {id} in {tenant}"))
}

pub(super) async fn counts(store: &Arc<dyn Store>) -> BTreeMap<&'static str, u64> {
    let counts = store.delivery_counts().await.unwrap();
    let map: BTreeMap<&'static str, u64> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(map.len(), counts.len(), "one count per status: {counts:?}");
    map.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// The counts of every status but `delivered` (which is not counted).
pub(super) fn count_map(list: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    list.iter().copied().collect()
}

pub(super) async fn settle(
    store: &Arc<dyn Store>,
    id: Uuid,
    node: &str,
    settle: Settle,
    now_ms: i64,
) -> bool {
    store.settle_delivery(id, node, &settle, at(now_ms)).await.unwrap()
}

pub async fn outbox_events_written_with_their_changes_are_pending_and_leased_once(h: &mut Harness) {
    let store = h.store.clone();
    // session.created, with the session.
    let (new, created) = session_with_event(at(0), json!({"note": "Größe ✓ \"quoted\"\n"}));
    let session = store.create_session(&new).await.unwrap();

    // turn.completed, with the answer's end; finishing it again (it no
    // longer streams) writes no event.
    let (_, assistant, _) = start(&store, &turn(&session, "hi", at(10))).await;
    let completed = event(EventType::TurnCompleted, &session, at(20), json!({"seq": assistant.seq}));
    let finish = Finish { event: Some(completed.clone()), ..finish_of(&assistant, TENANT, "hello", at(20)) };
    assert!(store.finish_message(&finish).await.unwrap());
    let failed = event(EventType::TurnFailed, &session, at(21), json!({}));
    let late = Finish { event: Some(failed), ..finish_of(&assistant, TENANT, "again", at(21)) };
    assert!(!store.finish_message(&late).await.unwrap());

    // takeover.started, with the hold; the same agent again is Unchanged
    // and writes none.
    let started = event(EventType::TakeoverStarted, &session, at(30), json!({"agent": "Ada"}));
    let change = HoldChange { event: Some(started.clone()), ..hold(&session, Some("Ada"), at(30)) };
    assert!(matches!(store.set_takeover(&change).await.unwrap(), HoldOutcome::Changed { .. }));
    let same = event(EventType::TakeoverStarted, &session, at(31), json!({"agent": "Ada"}));
    let again = HoldChange { event: Some(same), ..hold(&session, Some("Ada"), at(31)) };
    assert!(matches!(store.set_takeover(&again).await.unwrap(), HoldOutcome::Unchanged { .. }));

    // session.closed, with the close; closing again writes none, nor does
    // closing a session that is not there.
    let closed = event(EventType::SessionClosed, &session, at(40), json!({}));
    let s = store.close_session(TENANT, session.id, Some(&closed)).await.unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Closed);
    let twice = event(EventType::SessionClosed, &session, at(41), json!({}));
    let s = store.close_session(TENANT, session.id, Some(&twice)).await.unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Closed);
    let missing = NewEvent::new(EventType::SessionClosed, TENANT, Uuid::new_v4(), at(42), json!({}));
    assert_eq!(store.close_session(TENANT, missing.session_id, Some(&missing)).await.unwrap(), None);
    // A hold refused (the session is closed) writes none either.
    let refused_event = event(EventType::TakeoverStarted, &session, at(50), json!({"agent": "Bob"}));
    let refused = HoldChange { event: Some(refused_event), ..hold(&session, Some("Bob"), at(50)) };
    assert_eq!(store.set_takeover(&refused).await.unwrap(), HoldOutcome::Closed);

    // Four events, pending and due at their time, newest first.
    let written = [&closed, &started, &completed, &created];
    let records = store.list_deliveries(&query(TENANT, None, None, 50)).await.unwrap();
    let expected: Vec<DeliveryRecord> = written.iter().map(|e| pending_record(e)).collect();
    assert_eq!(records, expected);
    assert!(records.iter().all(|r| r.session_id == session.id));
    assert!(store.list_deliveries(&query(OTHER, None, None, 50)).await.unwrap().is_empty());
    assert_eq!(counts(&store).await, count_map(&[("pending", 4)]));

    // Nothing is due before its time.
    assert!(lease(&store, NODE, -1, 10).await.is_empty());
    // node-a leases each once, the earliest due first, bodies as given.
    let first = lease(&store, NODE, 100, 2).await;
    assert_eq!(first, by_id(vec![delivery_of(&created), delivery_of(&completed)]));
    let rest = lease(&store, NODE, 100, 10).await;
    assert_eq!(rest, by_id(vec![delivery_of(&started), delivery_of(&closed)]));
    assert!(lease(&store, NODE, 100, 10).await.is_empty());
    assert!(lease(&store, NODE_B, 100, 10).await.is_empty());
    // Still leased until the lease ends…
    assert!(lease(&store, NODE_B, 100 + LEASE_MS - 1, 10).await.is_empty());
    // …then another node leases them, as they were (a lease that ran out
    // is no try).
    let taken = lease(&store, NODE_B, 100 + LEASE_MS, 10).await;
    let all: Vec<Delivery> = written.iter().map(|e| delivery_of(e)).collect();
    assert_eq!(taken, by_id(all));
    // Leasing writes no status: they are still pending.
    let records = store.list_deliveries(&query(TENANT, None, None, 50)).await.unwrap();
    assert_eq!(records, expected);
}

pub async fn settles_follow_the_lease(h: &mut Harness) {
    let store = h.store.clone();
    let session = new_session(&store).await;
    let events: Vec<NewEvent> =
        (0..4).map(|n| event(EventType::TurnCompleted, &session, at(n), json!({ "n": n }))).collect();
    store.enqueue_events(&events).await.unwrap();
    let [a, b, c, d] = [0, 1, 2, 3].map(|n| events[n].id);
    assert_eq!(ids_of(&lease(&store, NODE, 10, 10).await), sorted(&events.iter().collect::<Vec<_>>()));

    // Delivered.
    assert!(settle(&store, a, NODE, Settle::Delivered { status: 204 }, 20).await);
    let delivered = record(&store, TENANT, a).await;
    assert_eq!(
        delivered,
        DeliveryRecord {
            status: DeliveryStatus::Delivered,
            attempts: 1,
            next_attempt_at: None,
            last_status: Some(204),
            delivered_at: Some(at(20)),
            ..pending_record(&events[0])
        }
    );
    // Its lease ended with the try: settling it again changes nothing.
    let dead = Settle::Dead { status: None, error: "late".into() };
    assert!(!settle(&store, a, NODE, dead, 21).await);
    assert_eq!(record(&store, TENANT, a).await, delivered);

    // Retry: pending, due at the time given, the failure counted.
    let retry = Settle::Retry { at: at(60_000), status: Some(503), error: "HTTP 503".into() };
    assert!(settle(&store, b, NODE, retry, 20).await);
    assert_eq!(
        record(&store, TENANT, b).await,
        DeliveryRecord {
            attempts: 1,
            next_attempt_at: Some(at(60_000)),
            last_status: Some(503),
            last_error: Some("HTTP 503".into()),
            ..pending_record(&events[1])
        }
    );

    // Dead.
    let dead = Settle::Dead { status: None, error: "address refused".into() };
    assert!(settle(&store, c, NODE, dead, 20).await);
    assert_eq!(
        record(&store, TENANT, c).await,
        DeliveryRecord {
            status: DeliveryStatus::Dead,
            attempts: 1,
            next_attempt_at: None,
            last_error: Some("address refused".into()),
            ..pending_record(&events[2])
        }
    );

    // A node that does not hold the lease settles nothing; nor does
    // anyone settle an unknown delivery.
    assert!(!settle(&store, d, NODE_B, Settle::Delivered { status: 200 }, 20).await);
    assert_eq!(record(&store, TENANT, d).await, pending_record(&events[3]));
    assert!(!settle(&store, Uuid::now_v7(), NODE, Settle::Delivered { status: 200 }, 20).await);

    // Neither b (not due) nor d (leased) is leased again yet.
    assert!(lease(&store, NODE_B, 1_000, 10).await.is_empty());
    // node-a restarts: its leases end at once and d is due again.
    assert_eq!(store.release_deliveries(NODE_B).await.unwrap(), 0);
    assert_eq!(store.release_deliveries(NODE).await.unwrap(), 1);
    assert_eq!(store.release_deliveries(NODE).await.unwrap(), 0);
    assert_eq!(record(&store, TENANT, d).await, pending_record(&events[3]));
    assert_eq!(lease(&store, NODE_B, 1_000, 10).await, vec![delivery_of(&events[3])]);
    // node-a lost the lease: its settle is refused, node-b's counts.
    assert!(!settle(&store, d, NODE, Settle::Delivered { status: 200 }, 1_001).await);
    assert_eq!(record(&store, TENANT, d).await, pending_record(&events[3]));
    assert!(settle(&store, d, NODE_B, Settle::Delivered { status: 200 }, 1_002).await);
    assert_eq!(record(&store, TENANT, d).await.delivered_at, Some(at(1_002)));

    // b is due at its time, not before, with its failed try counted.
    assert!(lease(&store, NODE, 59_999, 10).await.is_empty());
    let again = lease(&store, NODE, 60_000, 10).await;
    assert_eq!(again, vec![Delivery { attempts: 1, ..delivery_of(&events[1]) }]);
    // A node that ran past its lease, which no one took since, still
    // settles; the failures add up.
    let retry = Settle::Retry { at: at(200_000), status: None, error: "timed out".into() };
    assert!(settle(&store, b, NODE, retry, 60_000 + LEASE_MS + 5).await);
    let b_now = record(&store, TENANT, b).await;
    assert_eq!(
        (b_now.attempts, b_now.last_status, b_now.last_error.as_deref()),
        (2, None, Some("timed out"))
    );
    assert_eq!(b_now.next_attempt_at, Some(at(200_000)));

    // Settled rows are no one's lease to release.
    assert_eq!(store.release_deliveries(NODE).await.unwrap(), 0);
    assert_eq!(store.release_deliveries(NODE_B).await.unwrap(), 0);
    assert_eq!(counts(&store).await, count_map(&[("dead", 1), ("pending", 1)]));
}

pub async fn gone_disables_holds_and_resume_restores(h: &mut Harness) {
    let store = h.store.clone();
    let session = new_session(&store).await;
    let elsewhere = new_session_for(&store, OTHER, OWNER, at(0)).await;
    let ours: Vec<NewEvent> =
        (0..3).map(|n| event(EventType::TurnCompleted, &session, at(n), json!({ "n": n }))).collect();
    let theirs = event(EventType::TurnCompleted, &elsewhere, at(3), json!({}));
    store.enqueue_events(&ours).await.unwrap();
    store.enqueue_events(std::slice::from_ref(&theirs)).await.unwrap();
    let [delivered, gone, waiting] = [0, 1, 2].map(|n| ours[n].id);
    assert_eq!(lease(&store, NODE, 10, 10).await.len(), 4);

    assert!(settle(&store, delivered, NODE, Settle::Delivered { status: 200 }, 20).await);
    // 410: this one is gone, the tenant's other pending ones held (their
    // leases end), the delivered one stays delivered.
    assert!(settle(&store, gone, NODE, Settle::Gone, 30).await);
    assert_eq!(
        record(&store, TENANT, gone).await,
        DeliveryRecord {
            status: DeliveryStatus::Gone,
            attempts: 1,
            next_attempt_at: None,
            last_status: Some(410),
            ..pending_record(&ours[1])
        }
    );
    let held =
        DeliveryRecord { status: DeliveryStatus::Held, next_attempt_at: None, ..pending_record(&ours[2]) };
    assert_eq!(record(&store, TENANT, waiting).await, held);
    assert_eq!(record(&store, TENANT, delivered).await.status, DeliveryStatus::Delivered);
    // Held, the row's lease is over: its try cannot settle it.
    assert!(!settle(&store, waiting, NODE, Settle::Delivered { status: 200 }, 31).await);
    assert_eq!(record(&store, TENANT, waiting).await, held);
    // Another tenant's delivery is not held.
    assert_eq!(record(&store, OTHER, theirs.id).await, pending_record(&theirs));

    // New events of the tenant are written held, by every write; the
    // other tenant's pending.
    let enqueued = event(EventType::TurnFailed, &session, at(40), json!({}));
    store.enqueue_events(std::slice::from_ref(&enqueued)).await.unwrap();
    let (new, created) = session_with_event(at(41), json!({}));
    store.create_session(&new).await.unwrap();
    let theirs_too = event(EventType::TurnFailed, &elsewhere, at(42), json!({}));
    store.enqueue_events(std::slice::from_ref(&theirs_too)).await.unwrap();
    for e in [&enqueued, &created] {
        let r = record(&store, TENANT, e.id).await;
        assert_eq!((r.status, r.next_attempt_at), (DeliveryStatus::Held, None));
    }
    assert_eq!(record(&store, OTHER, theirs_too.id).await, pending_record(&theirs_too));
    let held_ids = listed(&store, &query(TENANT, Some(DeliveryStatus::Held), None, 10)).await;
    assert_eq!(held_ids, [created.id, enqueued.id, waiting]);

    // Held rows are not leased; the other tenant's are.
    let leased = lease(&store, NODE_B, 100 + LEASE_MS, 10).await;
    assert_eq!(ids_of(&leased), sorted(&[&theirs, &theirs_too]));
    assert_eq!(counts(&store).await, count_map(&[("gone", 1), ("held", 3), ("pending", 2)]));

    // While disabled, a retry is refused, and changes nothing.
    for id in [gone, delivered, waiting] {
        assert_eq!(store.retry_delivery(TENANT, id, at(50)).await.unwrap(), RetryOutcome::Disabled);
    }
    assert_eq!(record(&store, TENANT, waiting).await, held);
    // An unknown id, or another tenant's, is not found even then.
    let unknown = store.retry_delivery(TENANT, Uuid::now_v7(), at(50)).await.unwrap();
    assert_eq!(unknown, RetryOutcome::NotFound);
    assert_eq!(store.retry_delivery(TENANT, theirs.id, at(50)).await.unwrap(), RetryOutcome::NotFound);
    // The other tenant's endpoint is not disabled.
    assert_eq!(store.retry_delivery(OTHER, theirs.id, at(50)).await.unwrap(), RetryOutcome::Queued);

    // Resumed: every held row is pending, due now, with a fresh schedule.
    assert_eq!(store.resume_deliveries(TENANT, at(60_000)).await.unwrap(), 3);
    for e in [&ours[2], &enqueued, &created] {
        let r = record(&store, TENANT, e.id).await;
        assert_eq!(r, DeliveryRecord { next_attempt_at: Some(at(60_000)), ..pending_record(e) });
    }
    assert_eq!(record(&store, TENANT, gone).await.status, DeliveryStatus::Gone);
    assert_eq!(store.resume_deliveries(TENANT, at(60_001)).await.unwrap(), 0);
    assert_eq!(store.resume_deliveries(OTHER, at(60_001)).await.unwrap(), 0);
    // New events are pending again.
    let after = event(EventType::TurnCompleted, &session, at(60_002), json!({}));
    store.enqueue_events(std::slice::from_ref(&after)).await.unwrap();
    assert_eq!(record(&store, TENANT, after.id).await, pending_record(&after));
    let due = lease(&store, NODE, 60_002, 10).await;
    assert_eq!(ids_of(&due), sorted(&[&ours[2], &enqueued, &created, &after]));

    // Retries now: the gone one and a dead one are queued again, from no
    // attempts, due at once.
    assert!(
        settle(&store, waiting, NODE, Settle::Dead { status: Some(400), error: "bad".into() }, 60_010).await
    );
    assert_eq!(record(&store, TENANT, waiting).await.attempts, 1);
    for (id, source) in [(gone, &ours[1]), (waiting, &ours[2])] {
        assert_eq!(store.retry_delivery(TENANT, id, at(70_000)).await.unwrap(), RetryOutcome::Queued);
        let r = record(&store, TENANT, id).await;
        assert_eq!(
            (r.status, r.attempts, r.next_attempt_at, r.delivered_at),
            (DeliveryStatus::Pending, 0, Some(at(70_000)), None),
            "{source:?}"
        );
    }
    // A delivered one too (sent again on request).
    assert_eq!(store.retry_delivery(TENANT, delivered, at(70_000)).await.unwrap(), RetryOutcome::Queued);
    let r = record(&store, TENANT, delivered).await;
    assert_eq!((r.status, r.attempts, r.delivered_at), (DeliveryStatus::Pending, 0, None));
    // (The other tenant's leases by node-b ran out at 60.1 s.)
    let retried = lease(&store, NODE_B, 70_000, 10).await;
    assert_eq!(ids_of(&retried), sorted(&[&ours[0], &ours[1], &ours[2], &theirs, &theirs_too]));
    assert!(retried.iter().all(|d| d.attempts == 0));

    // Unknown, or another tenant's: not found, nothing changed.
    assert_eq!(
        store.retry_delivery(TENANT, Uuid::now_v7(), at(70_000)).await.unwrap(),
        RetryOutcome::NotFound
    );
    assert_eq!(
        store.retry_delivery(TENANT, theirs_too.id, at(70_000)).await.unwrap(),
        RetryOutcome::NotFound
    );
    assert_eq!(store.retry_delivery(OTHER, delivered, at(70_000)).await.unwrap(), RetryOutcome::NotFound);
    assert_eq!(record(&store, OTHER, theirs_too.id).await, pending_record(&theirs_too));

    assert_eq!(counts(&store).await, count_map(&[("pending", 8)]));
}
