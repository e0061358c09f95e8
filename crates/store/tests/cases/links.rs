//! Cases about guest-to-user links: a visitor is linked once, its sessions
//! move with the link in one transaction, and links can be read back by time.

use super::*;
use crate::common::Harness;
use switchboard_core::store::{LinkOutcome, VisitorLink};

const USER: &str = "user:alice";
const OTHER_VISITOR: &str = "visitor:00000000-0000-4000-8000-000000000002";

async fn owners(store: &Arc<dyn Store>, tenant: &str, owner: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> =
        store.list_sessions(tenant, owner, 200, None).await.unwrap().into_iter().map(|s| s.id).collect();
    ids.sort();
    ids
}

pub async fn link_moves_the_visitors_sessions_once(h: &mut Harness) {
    let first = new_session(&h.store).await;
    let second = new_session_for(&h.store, TENANT, OWNER, at(5)).await;
    complete_turn(&h.store, &first, "hello", at(10)).await;
    let foreign_tenant = new_session_for(&h.store, "other", OWNER, at(0)).await;
    let someone_else = new_session_for(&h.store, TENANT, OTHER_VISITOR, at(0)).await;

    let outcome = h.store.link_visitor(TENANT, OWNER, USER, at(100)).await.unwrap();
    assert_eq!(outcome, LinkOutcome::Linked { sessions: 2 });
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(owners(&h.store, TENANT, USER).await, expected);
    assert!(owners(&h.store, TENANT, OWNER).await.is_empty());
    // Other tenants' and other visitors' sessions stay where they were.
    assert_eq!(owners(&h.store, "other", OWNER).await, vec![foreign_tenant.id]);
    assert_eq!(owners(&h.store, TENANT, OTHER_VISITOR).await, vec![someone_else.id]);
    // The history moved with the session, readable as before.
    let moved = session_of(&h.store, &first).await;
    assert_eq!((moved.owner.as_str(), moved.message_count), (USER, 2));
    assert_eq!(h.store.list_messages(TENANT, first.id, 10, None).await.unwrap().len(), 2);

    // Linking again, to the same user or another, changes nothing.
    let late = new_session_for(&h.store, TENANT, OWNER, at(200)).await;
    assert_eq!(h.store.link_visitor(TENANT, OWNER, USER, at(300)).await.unwrap(), LinkOutcome::AlreadyLinked);
    assert_eq!(
        h.store.link_visitor(TENANT, OWNER, "user:mallory", at(300)).await.unwrap(),
        LinkOutcome::AlreadyLinked
    );
    assert_eq!(owners(&h.store, TENANT, OWNER).await, vec![late.id]);
    assert!(owners(&h.store, TENANT, "user:mallory").await.is_empty());

    // The same visitor id in another tenant is another visitor.
    assert_eq!(
        h.store.link_visitor("other", OWNER, "user:bob", at(400)).await.unwrap(),
        LinkOutcome::Linked { sessions: 1 }
    );

    // A visitor without sessions links all the same.
    assert_eq!(
        h.store
            .link_visitor(TENANT, "visitor:00000000-0000-4000-8000-000000000009", USER, at(500))
            .await
            .unwrap(),
        LinkOutcome::Linked { sessions: 0 }
    );

    h.reopen().await;
    let links = h.store.linked_visitors(at(0)).await.unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(
        links[0],
        VisitorLink {
            tenant_id: TENANT.into(),
            visitor: OWNER.into(),
            user: USER.into(),
            linked_at: at(100)
        }
    );
}

pub async fn linked_visitors_since_a_time_oldest_first(h: &mut Harness) {
    assert!(h.store.linked_visitors(at(0)).await.unwrap().is_empty());
    h.store.link_visitor(TENANT, OTHER_VISITOR, "user:b", at(2_000)).await.unwrap();
    h.store.link_visitor(TENANT, OWNER, "user:a", at(1_000)).await.unwrap();
    h.store.link_visitor("other", OWNER, "user:c", at(3_000)).await.unwrap();
    let all = h.store.linked_visitors(at(0)).await.unwrap();
    let users: Vec<&str> = all.iter().map(|l| l.user.as_str()).collect();
    assert_eq!(users, ["user:a", "user:b", "user:c"]);
    let recent = h.store.linked_visitors(at(2_000)).await.unwrap();
    let users: Vec<&str> = recent.iter().map(|l| l.user.as_str()).collect();
    assert_eq!(users, ["user:b", "user:c"]);
    assert!(h.store.linked_visitors(at(3_001)).await.unwrap().is_empty());
}

pub async fn concurrent_links_of_one_visitor_link_once(h: &mut Harness) {
    for i in 0..3 {
        new_session_for(&h.store, TENANT, OWNER, at(i)).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(
                async move { store.link_visitor(TENANT, OWNER, &format!("user:u{i}"), at(10)).await },
            )
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap().unwrap() {
            LinkOutcome::Linked { sessions } => winners.push((i, sessions)),
            LinkOutcome::AlreadyLinked => {}
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, moved) = winners[0];
    assert_eq!(moved, 3);
    assert_eq!(owners(&h.store, TENANT, &format!("user:u{winner}")).await.len(), 3);
    assert!(owners(&h.store, TENANT, OWNER).await.is_empty());
    let links = h.store.linked_visitors(at(0)).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].user, format!("user:u{winner}"));
}
