//! Cases about erasing a subject (SPEC §18): every row of theirs goes in
//! one call — sessions of every device, messages, a still-streaming answer,
//! vendor conversation ids, usage rows, reservations, memory, the user side
//! of visitor links — and nothing of anyone else; a visitor erased stays
//! revoked.

use super::*;
use crate::common::Harness;
use serde_json::json;
use switchboard_core::memory::MAX_KEYS;
use switchboard_core::model::Usage;
use switchboard_core::outbound::{EventType, NewEvent};
use switchboard_core::store::memory::PutMemory;
use switchboard_core::store::outbox::DeliveryQuery;
use switchboard_core::store::{EraseSubject, Erased};
use switchboard_core::usage::{day_of, Limits, Reserve, UsageRecord};

const ALICE: &str = "user:alice";
const BOB: &str = "user:bob";
const GUEST: &str = "visitor:00000000-0000-4000-8000-0000000000aa";

async fn remember(store: &Arc<dyn Store>, tenant: &str, owner: &str, key: &str) {
    let put = PutMemory {
        tenant_id: tenant.into(),
        owner: owner.into(),
        key: key.into(),
        value: "v".into(),
        max_keys: MAX_KEYS,
        now: at(0),
    };
    store.put_memory(&put).await.unwrap();
}

/// A completed turn whose usage is recorded under the session's owner.
async fn used_turn(store: &Arc<dyn Store>, session: &Session, now: Timestamp) {
    let limits = Limits { daily_tokens: Some(10_000), ..Limits::default() };
    let reserve = Reserve {
        id: Uuid::now_v7(),
        tenant_id: session.tenant_id.clone(),
        subject: session.owner.clone(),
        day: day_of(&now),
        tokens: 40,
        cost_micro_usd: 400,
        limits,
        now,
        expires_at: now + chrono::Duration::minutes(5),
    };
    let mut begin = turn(session, "q", now);
    begin.budget = Some(reserve.clone());
    let (_, assistant, _) = start(store, &begin).await;
    let mut finish = finish_of(&assistant, &session.tenant_id, "a", now);
    finish.usage = Some(UsageRecord {
        subject: session.owner.clone(),
        provider: "openai".into(),
        model: "gpt-test".into(),
        usage: Usage::new(5, 10, false),
        cost_micro_usd: 150,
        first_token_ms: Some(12),
        total_ms: 40,
        reservation: Some(reserve.id),
    });
    assert!(store.finish_message(&finish).await.unwrap());
}

fn erase(tenant: &str, subject: &str, now: Timestamp) -> EraseSubject {
    EraseSubject { tenant_id: tenant.into(), subject: subject.into(), now }
}

pub async fn erase_wipes_every_row_of_the_subject_and_nothing_else(h: &mut Harness) {
    let store = h.store.clone();
    // Alice: a phone, a laptop, and the sessions of the guest she was.
    let phone = new_session_for(&store, TENANT, ALICE, at(0)).await;
    let laptop = new_session_for(&store, TENANT, ALICE, at(1)).await;
    let guest = new_session_for(&store, TENANT, GUEST, at(2)).await;
    used_turn(&store, &phone, at(10)).await;
    used_turn(&store, &guest, at(11)).await;
    complete_turn(&store, &laptop, "hello", at(12)).await;
    store.link_visitor(TENANT, GUEST, ALICE, at(20)).await.unwrap();
    store.set_conversation_id(TENANT, phone.id, "dify", "conv-1").await.unwrap();
    remember(&store, TENANT, ALICE, "size").await;
    remember(&store, TENANT, ALICE, "likes").await;
    // An answer still streaming in the laptop's session.
    let (_, streaming, _) = start(&store, &turn(&laptop, "still going", at(30))).await;
    // Others: Bob here, and an Alice of another tenant.
    let bobs = new_session_for(&store, TENANT, BOB, at(3)).await;
    used_turn(&store, &bobs, at(13)).await;
    remember(&store, TENANT, BOB, "size").await;
    let elsewhere = new_session_for(&store, "other", ALICE, at(4)).await;
    complete_turn(&store, &elsewhere, "hi", at(14)).await;
    remember(&store, "other", ALICE, "size").await;
    // Events about her sessions, and one about Bob's.
    let about = |s: &Session| NewEvent::new(EventType::SessionCreated, TENANT, s.id, at(5), json!({}));
    store.enqueue_events(&[about(&phone), about(&guest), about(&bobs)]).await.unwrap();
    let day = day_of(&at(0));
    let totals = store.daily_usage(TENANT, day, day).await.unwrap();

    let erased = store.erase_subject(&erase(TENANT, ALICE, at(40))).await.unwrap();
    assert_eq!(erased, Erased { sessions: 3, messages: 8, memory: 2, links: 1 });

    assert!(store.list_sessions(TENANT, ALICE, 10, None).await.unwrap().is_empty());
    for s in [&phone, &laptop, &guest] {
        assert_eq!(store.get_session(TENANT, s.id).await.unwrap(), None);
        assert!(store.messages_after(TENANT, s.id, 0, 10).await.unwrap().is_empty());
    }
    assert_eq!(store.conversation_id(TENANT, phone.id, "dify").await.unwrap(), None);
    assert!(store.list_memory(TENANT, ALICE).await.unwrap().is_empty());
    // The answer that was streaming cannot write back.
    let late = finish_of(&streaming, TENANT, "written after the erase", at(50));
    assert!(!store.finish_message(&late).await.unwrap());
    assert!(store.messages_after(TENANT, laptop.id, 0, 10).await.unwrap().is_empty());
    // The link keeps only its visitor side: the guest stays revoked.
    let links = store.linked_visitors(at(0)).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!((links[0].visitor.as_str(), links[0].user.as_str()), (GUEST, ""));
    // The tenant's daily totals name nobody and stay.
    assert_eq!(store.daily_usage(TENANT, day, day).await.unwrap(), totals);

    // Her events went with her sessions; Bob's stays.
    let query = DeliveryQuery { tenant_id: TENANT.into(), status: None, before: None, limit: 10 };
    let left: Vec<Uuid> = store.list_deliveries(&query).await.unwrap().iter().map(|d| d.session_id).collect();
    assert_eq!(left, [bobs.id]);
    // Nothing of anyone else went.
    assert_eq!(seqs(&store.messages_after(TENANT, bobs.id, 0, 10).await.unwrap()), [1, 2]);
    assert_eq!(store.list_memory(TENANT, BOB).await.unwrap().len(), 1);
    assert_eq!(seqs(&store.messages_after("other", elsewhere.id, 0, 10).await.unwrap()), [1, 2]);
    assert_eq!(store.list_memory("other", ALICE).await.unwrap().len(), 1);

    // In SQL, no row names her or one of her sessions.
    let ids = format!("'{}', '{}', '{}'", phone.id, laptop.id, guest.id);
    for query in [
        format!("SELECT count(*) FROM sessions WHERE owner = '{ALICE}' AND tenant_id = '{TENANT}'"),
        format!("SELECT count(*) FROM messages WHERE session_id IN ({ids})"),
        format!("SELECT count(*) FROM provider_conversations WHERE session_id IN ({ids})"),
        format!("SELECT count(*) FROM usage_events WHERE session_id IN ({ids}) OR subject IN ('{ALICE}', '{GUEST}')"),
        format!("SELECT count(*) FROM usage_subject_daily WHERE subject = '{ALICE}' AND tenant_id = '{TENANT}'"),
        format!("SELECT count(*) FROM memory WHERE subject = '{ALICE}' AND tenant_id = '{TENANT}'"),
        format!("SELECT count(*) FROM visitor_links WHERE user_subject = '{ALICE}'"),
    ] {
        assert!(matches!(h.count(&query).await, None | Some(0)), "{query}");
    }
    // On SQLite reservations live in the writer's own temporary table.
    if !h.is_sqlite() {
        let reserved = format!("SELECT count(*) FROM budget_reservations WHERE subject = '{ALICE}'");
        assert!(matches!(h.count(&reserved).await, None | Some(0)));
    }
    // Bob's usage rows are still there.
    let bobs_usage = format!("SELECT count(*) FROM usage_events WHERE subject = '{BOB}'");
    assert!(matches!(h.count(&bobs_usage).await, None | Some(1)));
}

pub async fn erasing_a_visitor_revokes_it(h: &mut Harness) {
    let store = h.store.clone();
    let session = new_session_for(&store, TENANT, GUEST, at(0)).await;
    complete_turn(&store, &session, "hello", at(1)).await;

    let erased = store.erase_subject(&erase(TENANT, GUEST, at(500))).await.unwrap();
    assert_eq!(erased, Erased { sessions: 1, messages: 2, memory: 0, links: 0 });
    assert_eq!(store.get_session(TENANT, session.id).await.unwrap(), None);
    // Recorded as revoked at the erase, for every node to read.
    let links = store.linked_visitors(at(500)).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!((links[0].visitor.as_str(), links[0].user.as_str(), links[0].linked_at), (GUEST, "", at(500)));
    // Erasing again finds nothing and changes nothing.
    let again = store.erase_subject(&erase(TENANT, GUEST, at(600))).await.unwrap();
    assert_eq!(again, Erased::default());
    assert_eq!(store.linked_visitors(at(0)).await.unwrap()[0].linked_at, at(500));
}
