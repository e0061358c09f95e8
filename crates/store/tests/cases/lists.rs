//! Cases about reading lists back, deleting, tenants, and persistence.

use super::*;
use crate::common::Harness;
use switchboard_core::store::{SessionCursor, TenantRecord};

pub async fn list_messages_order_limit_before_seq(h: &mut Harness) {
    let s = new_session(&h.store).await;
    for i in 0..3 {
        complete_turn(&h.store, &s, &format!("q{i}"), at(i)).await;
    }
    let all = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    assert_eq!(seqs(&all), vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(all[5].content, "q0");
    assert_eq!(all[0].content, "answer to q2");
    assert_eq!(seqs(&h.store.list_messages(TENANT, s.id, 2, None).await.unwrap()), vec![6, 5]);
    assert_eq!(seqs(&h.store.list_messages(TENANT, s.id, 2, Some(5)).await.unwrap()), vec![4, 3]);
    assert_eq!(seqs(&h.store.list_messages(TENANT, s.id, 10, Some(2)).await.unwrap()), vec![1]);
    assert!(h.store.list_messages(TENANT, s.id, 10, Some(1)).await.unwrap().is_empty());
    assert!(h.store.list_messages(TENANT, s.id, 0, None).await.unwrap().is_empty());
    assert!(h.store.list_messages("other", s.id, 10, None).await.unwrap().is_empty());
}

pub async fn messages_after_oldest_first_from_a_cursor(h: &mut Harness) {
    let s = new_session(&h.store).await;
    for i in 0..3 {
        complete_turn(&h.store, &s, &format!("q{i}"), at(i)).await;
    }
    let all = h.store.messages_after(TENANT, s.id, 0, 100).await.unwrap();
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(all[0].content, "q0");
    assert_eq!(seqs(&h.store.messages_after(TENANT, s.id, 4, 100).await.unwrap()), vec![5, 6]);
    assert_eq!(seqs(&h.store.messages_after(TENANT, s.id, 1, 2).await.unwrap()), vec![2, 3]);
    assert!(h.store.messages_after(TENANT, s.id, 6, 100).await.unwrap().is_empty());
    assert!(h.store.messages_after("other", s.id, 0, 100).await.unwrap().is_empty());
}

pub async fn list_sessions_keyset_paging_with_ties(h: &mut Harness) {
    // Seven sessions, four of them sharing one activity time.
    let mut mine = Vec::new();
    for ms in [100, 300, 300, 300, 300, 200, 400] {
        mine.push(new_session_for(&h.store, TENANT, OWNER, at(ms)).await);
    }
    new_session_for(&h.store, TENANT, "user:someone-else", at(350)).await;
    new_session_for(&h.store, "other", OWNER, at(350)).await;
    let mut expected = mine.clone();
    expected.sort_by_key(|s| std::cmp::Reverse((s.last_activity_at, s.id)));

    let everything = h.store.list_sessions(TENANT, OWNER, 50, None).await.unwrap();
    assert_eq!(everything, expected);
    let mut paged = Vec::new();
    let mut cursor: Option<SessionCursor> = None;
    loop {
        let page = h.store.list_sessions(TENANT, OWNER, 2, cursor.as_ref()).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(SessionCursor { last_activity_at: last.last_activity_at, id: last.id });
        paged.extend(page);
    }
    assert_eq!(paged, expected);

    // A turn moves its session to the front.
    let oldest = expected.last().unwrap().clone();
    complete_turn(&h.store, &oldest, "bump", at(1_000)).await;
    let first = h.store.list_sessions(TENANT, OWNER, 1, None).await.unwrap();
    assert_eq!(first[0].id, oldest.id);
    assert_eq!(first[0].message_count, 2);
}

pub async fn delete_session_removes_messages(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let keep = new_session(&h.store).await;
    complete_turn(&h.store, &s, "q", at(0)).await;
    complete_turn(&h.store, &keep, "q", at(0)).await;
    assert!(!h.store.delete_session("other", s.id).await.unwrap());
    assert!(h.store.delete_session(TENANT, s.id).await.unwrap());
    assert_eq!(h.store.get_session(TENANT, s.id).await.unwrap(), None);
    assert!(h.store.list_messages(TENANT, s.id, 10, None).await.unwrap().is_empty());
    assert!(!h.store.delete_session(TENANT, s.id).await.unwrap());
    assert!(matches!(h.store.begin_turn(&turn(&s, "q", at(1))).await.unwrap(), BeginTurnOutcome::NotFound));
    assert_eq!(h.store.list_messages(TENANT, keep.id, 10, None).await.unwrap().len(), 2);
}

fn tenant(id: &str, name: &str, now: Timestamp) -> TenantRecord {
    TenantRecord {
        id: id.into(),
        name: name.into(),
        source: "db".into(),
        config: serde_json::json!({"allowed_origins": ["https://shop.example"], "retention_days": 30}),
        kill_switch: false,
        created_at: now,
        updated_at: now,
    }
}

pub async fn tenants_crud(h: &mut Harness) {
    assert_eq!(h.store.get_tenant("acme").await.unwrap(), None);
    let acme = tenant("acme", "Acme", at(0));
    let beta = TenantRecord { source: "config".into(), ..tenant("beta", "Beta", at(1)) };
    h.store.upsert_tenant(&beta).await.unwrap();
    h.store.upsert_tenant(&acme).await.unwrap();
    assert_eq!(h.store.get_tenant("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(h.store.list_tenants().await.unwrap(), vec![acme.clone(), beta.clone()]);

    let changed = TenantRecord {
        name: "Acme Shop".into(),
        kill_switch: true,
        config: serde_json::json!({"allowed_origins": []}),
        created_at: at(50),
        updated_at: at(60),
        ..acme.clone()
    };
    h.store.upsert_tenant(&changed).await.unwrap();
    let read = h.store.get_tenant("acme").await.unwrap().unwrap();
    // An update keeps when the tenant was created.
    assert_eq!(read, TenantRecord { created_at: at(0), ..changed });

    assert!(h.store.delete_tenant("acme").await.unwrap());
    assert!(!h.store.delete_tenant("acme").await.unwrap());
    assert_eq!(h.store.get_tenant("acme").await.unwrap(), None);
    assert_eq!(h.store.list_tenants().await.unwrap(), vec![beta]);
}

pub async fn restart_keeps_everything(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "remember me", at(0)).await;
    let (_, streaming, _) = start(&h.store, &turn(&s, "still going", at(10))).await;
    h.store.upsert_tenant(&tenant("acme", "Acme", at(0))).await.unwrap();
    let before = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    let session = session_of(&h.store, &s).await;

    h.reopen().await;
    assert_eq!(session_of(&h.store, &s).await, session);
    assert_eq!(h.store.list_messages(TENANT, s.id, 10, None).await.unwrap(), before);
    assert_eq!(before[3].content, "remember me");
    assert!(h.store.get_tenant("acme").await.unwrap().is_some());
    // A restarted node reaps its own leases at once.
    let reaped = h.store.reap_node_leases(NODE, at(20)).await.unwrap();
    assert_eq!(reaped.iter().map(|r| r.message.seq).collect::<Vec<_>>(), vec![streaming.seq]);
}
