//! Cases about what the admin API asks of the store: the tenant-wide session
//! list (filters, sort keys, order, keyset paging with ties), closing a
//! session, and runtime settings.

use super::*;
use crate::common::Harness;
use switchboard_core::store::admin::{AdminSessionQuery, RuntimeSetting, SessionKey, SessionSort};
use switchboard_core::SessionStatus;

fn query(sort: SessionSort, descending: bool) -> AdminSessionQuery {
    AdminSessionQuery { sort, descending, limit: 100, ..AdminSessionQuery::new(TENANT) }
}

/// Every page of `q`, `page` at a time, following the keyset.
async fn paged(h: &Harness, mut q: AdminSessionQuery, page: u32) -> Vec<Session> {
    q.limit = page;
    let mut out: Vec<Session> = Vec::new();
    loop {
        let got = h.store.admin_list_sessions(&q).await.unwrap();
        assert!(got.len() <= page as usize);
        let Some(last) = got.last() else { return out };
        q.after = Some(SessionKey { key: q.sort.key_of(last), id: last.id });
        out.extend(got);
    }
}

pub async fn admin_list_filters_sorts_and_pages(h: &mut Harness) {
    let owners = [OWNER, "user:alice", "user:bob"];
    let mut all = Vec::new();
    // Nine sessions on three creation times (ties), with 0..2 turns each.
    for i in 0..9_i64 {
        let s = new_session_for(&h.store, TENANT, owners[i as usize % 3], at(100 * (i % 3))).await;
        for t in 0..(i % 3) {
            complete_turn(&h.store, &s, &format!("q{t}"), at(1000 + 10 * i)).await;
        }
        all.push(session_of(&h.store, &s).await);
    }
    new_session_for(&h.store, "other", "user:alice", at(50)).await;
    h.store.close_session(TENANT, all[4].id, None).await.unwrap().unwrap();
    all[4] = session_of(&h.store, &all[4]).await;

    for sort in [SessionSort::CreatedAt, SessionSort::LastActivityAt, SessionSort::MessageCount] {
        for descending in [false, true] {
            let mut want = all.clone();
            want.sort_by_key(|s| (sort.key_of(s), s.id));
            if descending {
                want.reverse();
            }
            let q = query(sort, descending);
            assert_eq!(h.store.admin_list_sessions(&q).await.unwrap(), want, "{sort:?} {descending}");
            assert_eq!(paged(h, q.clone(), 2).await, want, "paged {sort:?} {descending}");
            let alice = AdminSessionQuery { owner: Some("user:alice".into()), ..q.clone() };
            let want_alice: Vec<_> = want.iter().filter(|s| s.owner == "user:alice").cloned().collect();
            assert_eq!(paged(h, alice, 1).await, want_alice);
        }
    }
    let closed =
        AdminSessionQuery { status: Some(SessionStatus::Closed), ..query(SessionSort::CreatedAt, true) };
    assert_eq!(h.store.admin_list_sessions(&closed).await.unwrap(), vec![all[4].clone()]);
    let assisted = AdminSessionQuery { admin_assisted: Some(true), ..query(SessionSort::CreatedAt, true) };
    assert!(h.store.admin_list_sessions(&assisted).await.unwrap().is_empty());
    let unassisted = AdminSessionQuery { admin_assisted: Some(false), ..query(SessionSort::CreatedAt, true) };
    assert_eq!(h.store.admin_list_sessions(&unassisted).await.unwrap().len(), 9);
    // Creation bounds are inclusive.
    let window = AdminSessionQuery {
        created_from: Some(at(100)),
        created_to: Some(at(100)),
        ..query(SessionSort::CreatedAt, false)
    };
    let got = h.store.admin_list_sessions(&window).await.unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|s| s.created_at == at(100)));
}

pub async fn close_session_closes_and_refuses_turns(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "hello", at(1)).await;
    let closed = h.store.close_session(TENANT, s.id, None).await.unwrap().unwrap();
    assert_eq!(
        (closed.status, closed.takeover.clone(), closed.message_count),
        (SessionStatus::Closed, None, 2)
    );
    assert_eq!(session_of(&h.store, &s).await, closed);
    assert!(matches!(h.store.begin_turn(&turn(&s, "again", at(2))).await.unwrap(), BeginTurnOutcome::Closed));
    // Closing twice is harmless; other tenants and unknown ids close nothing.
    assert_eq!(
        h.store.close_session(TENANT, s.id, None).await.unwrap().unwrap().status,
        SessionStatus::Closed
    );
    assert!(h.store.close_session("other", s.id, None).await.unwrap().is_none());
    assert!(h.store.close_session(TENANT, Uuid::new_v4(), None).await.unwrap().is_none());
}

pub async fn runtime_settings_round_trip(h: &mut Harness) {
    assert!(h.store.runtime_setting("kill_switch").await.unwrap().is_none());
    let first = RuntimeSetting {
        key: "kill_switch".into(),
        value: serde_json::json!({"enabled": true, "reason": "incident"}),
        updated_at: at(5),
    };
    h.store.put_runtime_setting(&first).await.unwrap();
    assert_eq!(h.store.runtime_setting("kill_switch").await.unwrap(), Some(first.clone()));
    let second = RuntimeSetting { value: serde_json::json!({"enabled": false}), updated_at: at(6), ..first };
    h.store.put_runtime_setting(&second).await.unwrap();
    assert_eq!(h.store.runtime_setting("kill_switch").await.unwrap(), Some(second));
    assert!(h.store.runtime_setting("other").await.unwrap().is_none());
}
