//! Cases about streaming answers: checkpoints, finishing, and reaping leases
//! of answers whose node went away.

use super::*;
use crate::common::Harness;
use switchboard_core::store::Checkpoint;

fn checkpoint_of(message: &Message, content: &str, lease_until: Timestamp) -> Checkpoint {
    Checkpoint {
        tools: Vec::new(),
        tenant_id: TENANT.into(),
        session_id: message.session_id,
        seq: message.seq,
        content: content.into(),
        node_id: NODE.into(),
        lease_until,
    }
}

async fn stored(h: &Harness, message: &Message) -> Message {
    let list = h.store.list_messages(TENANT, message.session_id, 1, Some(message.seq + 1)).await.unwrap();
    list.into_iter().next().unwrap()
}

pub async fn checkpoint_renews_lease_and_saves_text(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let (_, assistant, _) = start(&h.store, &turn(&s, "q", at(0))).await;
    // The first lease ends at +10 s; the checkpoint moves it to +20 s.
    assert!(h.store.checkpoint(&checkpoint_of(&assistant, "partial ans", at(20_000))).await.unwrap());
    let now = stored(h, &assistant).await;
    assert_eq!((now.content.as_str(), now.status), ("partial ans", MessageStatus::Streaming));
    assert!(h.store.reap_expired_leases(at(15_000)).await.unwrap().is_empty());
    let mut wrong_seq = checkpoint_of(&assistant, "x", at(30_000));
    wrong_seq.seq = 1;
    assert!(!h.store.checkpoint(&wrong_seq).await.unwrap());
    let mut wrong_tenant = checkpoint_of(&assistant, "x", at(30_000));
    wrong_tenant.tenant_id = "other".into();
    assert!(!h.store.checkpoint(&wrong_tenant).await.unwrap());
    assert_eq!(stored(h, &assistant).await.content, "partial ans");
    let reaped = h.store.reap_expired_leases(at(20_001)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].tenant_id, TENANT);
    assert_eq!((reaped[0].message.seq, reaped[0].message.content.as_str()), (2, "partial ans"));
}

pub async fn finish_ends_streaming_once(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let (_, assistant, _) = start(&h.store, &turn(&s, "q", at(0))).await;
    h.store.checkpoint(&checkpoint_of(&assistant, "part", at(20_000))).await.unwrap();
    let mut finish = finish_of(&assistant, TENANT, "partial and then some", at(4_000));
    finish.status = MessageStatus::Error;
    finish.meta.error_code = Some("llm.timeout".into());
    assert!(h.store.finish_message(&finish).await.unwrap());
    let done = stored(h, &assistant).await;
    assert_eq!(
        (done.content.as_str(), done.status, done.token_count),
        ("partial and then some", MessageStatus::Error, 7)
    );
    assert_eq!(done.meta, Some(finish.meta.clone()));
    assert_eq!(done.turn_id, assistant.turn_id);
    assert_eq!(session_of(&h.store, &s).await.last_activity_at, at(4_000));

    let mut again = finish.clone();
    again.content = "overwritten".into();
    again.status = MessageStatus::Complete;
    assert!(!h.store.finish_message(&again).await.unwrap());
    assert!(!h.store.checkpoint(&checkpoint_of(&assistant, "late", at(30_000))).await.unwrap());
    assert_eq!(stored(h, &assistant).await, done);
    // A finished answer holds no lease.
    assert!(h.store.reap_expired_leases(at(1_000_000)).await.unwrap().is_empty());
    assert!(h.store.reap_node_leases(NODE, at(1_000_000)).await.unwrap().is_empty());
    // Activity never moves backwards.
    let (_, a2, _) = start(&h.store, &turn(&s, "q2", at(10_000))).await;
    h.store.finish_message(&finish_of(&a2, TENANT, "x", at(9_000))).await.unwrap();
    assert_eq!(session_of(&h.store, &s).await.last_activity_at, at(10_000));
}

pub async fn reap_expired_leases_interrupts(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let (_, assistant, _) = start(&h.store, &turn(&s, "q", at(0))).await;
    h.store.checkpoint(&checkpoint_of(&assistant, "half", at(10_000))).await.unwrap();
    let other = new_session(&h.store).await;
    let (_, fresh, _) = start(&h.store, &turn(&other, "q", at(5_000))).await;

    assert!(h.store.reap_expired_leases(at(9_999)).await.unwrap().is_empty());
    let reaped = h.store.reap_expired_leases(at(10_001)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    let gone = &reaped[0].message;
    assert_eq!((gone.session_id, gone.seq), (s.id, 2));
    assert_eq!((gone.status, gone.content.as_str()), (MessageStatus::Interrupted, "half"));
    assert_eq!(stored(h, &assistant).await, gone.clone());
    assert!(h.store.reap_expired_leases(at(10_001)).await.unwrap().is_empty());
    assert!(!h.store.finish_message(&finish_of(&assistant, TENANT, "too late", at(11_000))).await.unwrap());
    assert_eq!(stored(h, &fresh).await.status, MessageStatus::Streaming);

    let (user, _, history) = start(&h.store, &turn(&s, "again", at(12_000))).await;
    assert_eq!(user.seq, 3);
    assert_eq!(history[1].status, MessageStatus::Interrupted);
}

pub async fn reap_node_leases_interrupts_only_that_node(h: &mut Harness) {
    let s1 = new_session(&h.store).await;
    let s2 = new_session(&h.store).await;
    let (_, mine, _) = start(&h.store, &turn(&s1, "q", at(0))).await;
    let mut theirs_turn = turn(&s2, "q", at(0));
    theirs_turn.node_id = "node-b".into();
    let (_, theirs, _) = start(&h.store, &theirs_turn).await;

    let reaped = h.store.reap_node_leases(NODE, at(1)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!((reaped[0].message.session_id, reaped[0].message.status), (s1.id, MessageStatus::Interrupted));
    assert_eq!(stored(h, &mine).await.status, MessageStatus::Interrupted);
    assert_eq!(stored(h, &theirs).await.status, MessageStatus::Streaming);
    assert!(h.store.reap_node_leases(NODE, at(2)).await.unwrap().is_empty());
    assert!(matches!(
        h.store.begin_turn(&turn(&s2, "q2", at(3))).await.unwrap(),
        BeginTurnOutcome::InProgress
    ));
    let (user, _, _) = start(&h.store, &turn(&s1, "q2", at(3))).await;
    assert_eq!(user.seq, 3);
}
