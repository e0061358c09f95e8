//! Cases about starting turns: seqs, history, duplicates, refusals and
//! concurrency.

use super::*;
use crate::common::Harness;
use switchboard_core::model::{Role, SessionStatus};

pub async fn ping_answers(h: &mut Harness) {
    h.store.ping().await.unwrap();
}

pub async fn create_session_starts_empty(h: &mut Harness) {
    let new = NewSession {
        event: None,
        id: Uuid::new_v4(),
        tenant_id: TENANT.into(),
        owner: OWNER.into(),
        metadata: Some(serde_json::json!({"page": "/cart"})),
        now: at(5),
    };
    let created = h.store.create_session(&new).await.unwrap();
    let read = h.store.get_session(TENANT, new.id).await.unwrap().unwrap();
    assert_eq!(created, read);
    assert_eq!(read.status, SessionStatus::Active);
    assert_eq!((read.latest_seq, read.message_count, read.admin_assisted), (0, 0, false));
    assert_eq!((read.created_at, read.last_activity_at), (at(5), at(5)));
    assert_eq!(read.owner, OWNER);
    assert_eq!(read.takeover, None);
    assert!(h.store.list_messages(TENANT, new.id, 10, None).await.unwrap().is_empty());
}

pub async fn begin_turn_assigns_seqs(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let t = turn(&s, "hello", at(1000));
    let (user, assistant, history) = start(&h.store, &t).await;
    assert_eq!((user.seq, user.role, user.status), (1, Role::User, MessageStatus::Complete));
    assert_eq!((user.content.as_str(), user.token_count, user.turn_id), ("hello", 3, Some(t.turn_id)));
    assert_eq!(
        (assistant.seq, assistant.role, assistant.status),
        (2, Role::Assistant, MessageStatus::Streaming)
    );
    assert_eq!((assistant.content.as_str(), assistant.turn_id), ("", Some(t.turn_id)));
    assert_eq!(history, vec![user.clone()]);
    let stored = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    assert_eq!(stored, vec![assistant.clone(), user.clone()]);
    let session = session_of(&h.store, &s).await;
    assert_eq!((session.latest_seq, session.message_count, session.last_activity_at), (2, 2, at(1000)));

    h.store.finish_message(&finish_of(&assistant, TENANT, "hi", at(2000))).await.unwrap();
    let (user2, assistant2, _) = start(&h.store, &turn(&s, "again", at(3000))).await;
    assert_eq!((user2.seq, assistant2.seq), (3, 4));
    let session = session_of(&h.store, &s).await;
    assert_eq!((session.latest_seq, session.message_count, session.last_activity_at), (4, 4, at(3000)));
}

pub async fn begin_turn_returns_history(h: &mut Harness) {
    let s = new_session(&h.store).await;
    for i in 0..3 {
        complete_turn(&h.store, &s, &format!("q{i}"), at(i * 1000)).await;
    }
    let (user, _, history) = start(&h.store, &turn(&s, "q3", at(5000))).await;
    assert_eq!(seqs(&history), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(history.last(), Some(&user));
    assert_eq!(history[1].content, "answer to q0");
    assert_eq!(history[1].status, MessageStatus::Complete);

    let s2 = new_session(&h.store).await;
    complete_turn(&h.store, &s2, "a", at(0)).await;
    complete_turn(&h.store, &s2, "b", at(1)).await;
    let mut limited = turn(&s2, "c", at(2));
    limited.history_limit = 3;
    let (_, _, history) = start(&h.store, &limited).await;
    assert_eq!(seqs(&history), vec![3, 4, 5]);
    let s3 = new_session(&h.store).await;
    let mut one = turn(&s3, "only", at(0));
    one.history_limit = 1;
    let (user, _, history) = start(&h.store, &one).await;
    assert_eq!(history, vec![user]);
}

pub async fn duplicate_client_message_id_writes_nothing(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let first = with_client_id(turn(&s, "hello", at(0)), "c-1");
    let (user, assistant, _) = start(&h.store, &first).await;
    assert_eq!(user.client_message_id.as_deref(), Some("c-1"));

    let retry = with_client_id(turn(&s, "hello", at(10)), "c-1");
    match h.store.begin_turn(&retry).await.unwrap() {
        BeginTurnOutcome::Duplicate { user: u, assistant: a } => {
            assert_eq!(u, user);
            assert_eq!(a, Some(assistant.clone()));
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(session_of(&h.store, &s).await.latest_seq, 2);

    let finish = finish_of(&assistant, TENANT, "done", at(20));
    h.store.finish_message(&finish).await.unwrap();
    match h.store.begin_turn(&retry).await.unwrap() {
        BeginTurnOutcome::Duplicate { assistant: Some(a), .. } => {
            assert_eq!((a.content.as_str(), a.status, a.token_count), ("done", MessageStatus::Complete, 7));
            assert_eq!(a.meta, Some(finish.meta.clone()));
        }
        other => panic!("expected Duplicate with its answer, got {other:?}"),
    }
    // The same id in another session is a different message.
    let other = new_session(&h.store).await;
    start(&h.store, &with_client_id(turn(&other, "hello", at(30)), "c-1")).await;
    // Another id in the first session starts a new turn.
    let (u2, _, _) = start(&h.store, &with_client_id(turn(&s, "next", at(40)), "c-2")).await;
    assert_eq!(u2.seq, 3);
}

pub async fn concurrent_duplicates_end_as_duplicate(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let template = with_client_id(turn(&s, "same", at(0)), "twin");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = h.store.clone();
        let mut t = template.clone();
        t.turn_id = Uuid::new_v4();
        tasks.push(tokio::spawn(async move { store.begin_turn(&t).await }));
    }
    let (mut started, mut duplicates) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            BeginTurnOutcome::Started { .. } => started += 1,
            BeginTurnOutcome::Duplicate { user, assistant } => {
                assert_eq!(user.seq, 1);
                assert_eq!(assistant.map(|a| a.seq), Some(2));
                duplicates += 1;
            }
            other => panic!("expected Started or Duplicate, got {other:?}"),
        }
    }
    assert_eq!((started, duplicates), (1, 15));
    assert_eq!(h.store.list_messages(TENANT, s.id, 10, None).await.unwrap().len(), 2);
}

pub async fn concurrent_turns_in_one_session_start_once(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = h.store.clone();
        let t = with_client_id(turn(&s, "race", at(0)), &format!("c-{i}"));
        tasks.push(tokio::spawn(async move { store.begin_turn(&t).await }));
    }
    let (mut started, mut in_progress) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            BeginTurnOutcome::Started { .. } => started += 1,
            BeginTurnOutcome::InProgress => in_progress += 1,
            other => panic!("expected Started or InProgress, got {other:?}"),
        }
    }
    assert_eq!((started, in_progress), (1, 15));
    assert_eq!(session_of(&h.store, &s).await.latest_seq, 2);
}

pub async fn concurrent_turns_across_sessions_all_start(h: &mut Harness) {
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let s = new_session(&store).await;
            let (_, assistant, _) = start(&store, &turn(&s, &format!("q{i}"), at(i))).await;
            assert!(store.finish_message(&finish_of(&assistant, TENANT, "a", at(i + 1))).await.unwrap());
            let (user, _, history) = start(&store, &turn(&s, "again", at(i + 2))).await;
            assert_eq!((user.seq, history.len()), (3, 3));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

pub async fn not_found_for_wrong_owner_tenant_or_id(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let mut wrong_owner = turn(&s, "x", at(0));
    wrong_owner.owner = "visitor:00000000-0000-4000-8000-000000000002".into();
    let mut wrong_tenant = turn(&s, "x", at(0));
    wrong_tenant.tenant_id = "other".into();
    let mut unknown = turn(&s, "x", at(0));
    unknown.session_id = Uuid::new_v4();
    for t in [wrong_owner, wrong_tenant, unknown] {
        assert!(matches!(h.store.begin_turn(&t).await.unwrap(), BeginTurnOutcome::NotFound));
    }
    assert_eq!(h.store.get_session("other", s.id).await.unwrap(), None);
    assert_eq!(session_of(&h.store, &s).await.latest_seq, 0);
}

pub async fn in_progress_while_streaming(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let (_, assistant, _) = start(&h.store, &turn(&s, "one", at(0))).await;
    let second = turn(&s, "two", at(100));
    assert!(matches!(h.store.begin_turn(&second).await.unwrap(), BeginTurnOutcome::InProgress));
    assert_eq!(session_of(&h.store, &s).await.latest_seq, 2);
    h.store.finish_message(&finish_of(&assistant, TENANT, "done", at(200))).await.unwrap();
    let (user, _, _) = start(&h.store, &second).await;
    assert_eq!(user.seq, 3);
}

pub async fn closed_session_refuses_turns(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "one", at(0)).await;
    h.store.close_session(TENANT, s.id, None).await.unwrap();
    assert_eq!(session_of(&h.store, &s).await.status, SessionStatus::Closed);
    assert!(matches!(h.store.begin_turn(&turn(&s, "two", at(10))).await.unwrap(), BeginTurnOutcome::Closed));
    assert_eq!(session_of(&h.store, &s).await.latest_seq, 2);
    // A retry of a turn sent before the close still gets its answer.
    let s2 = new_session(&h.store).await;
    let t = with_client_id(turn(&s2, "early", at(0)), "c-early");
    start(&h.store, &t).await;
    h.store.close_session(TENANT, s2.id, None).await.unwrap();
    assert!(matches!(h.store.begin_turn(&t).await.unwrap(), BeginTurnOutcome::Duplicate { .. }));
}

pub async fn human_session_stores_only_the_user_message(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "one", at(0)).await;
    // Seq 3 is the takeover's note.
    super::take_over(&h.store, &s, "Ada", at(10)).await;
    let t = with_client_id(turn(&s, "to the agent", at(50)), "c-h");
    let user = match h.store.begin_turn(&t).await.unwrap() {
        BeginTurnOutcome::Human { user } => user,
        other => panic!("expected Human, got {other:?}"),
    };
    assert_eq!((user.seq, user.content.as_str(), user.role), (4, "to the agent", Role::User));
    let session = session_of(&h.store, &s).await;
    assert_eq!((session.latest_seq, session.message_count, session.last_activity_at), (4, 4, at(50)));
    let stored = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    assert_eq!(seqs(&stored), vec![4, 3, 2, 1]);
    match h.store.begin_turn(&t).await.unwrap() {
        BeginTurnOutcome::Duplicate { user: u, assistant } => {
            assert_eq!(u, user);
            assert_eq!(assistant, None);
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    let user2 = match h.store.begin_turn(&turn(&s, "more", at(60))).await.unwrap() {
        BeginTurnOutcome::Human { user } => user,
        other => panic!("expected Human, got {other:?}"),
    };
    assert_eq!(user2.seq, 5);
}

pub async fn page_context_is_kept_as_the_sessions_latest(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let context_of = |s: &Session| {
        let store = h.store.clone();
        let id = s.id;
        async move { store.session_context(TENANT, id).await.unwrap() }
    };
    assert_eq!(context_of(&s).await, None);
    let mut first = turn(&s, "one", at(0));
    first.context = Some(serde_json::json!({"page": "/shoes"}));
    let (_, assistant, _) = start(&h.store, &first).await;
    assert_eq!(context_of(&s).await, Some(serde_json::json!({"page": "/shoes"})));
    // A refused turn changes nothing.
    let mut refused = turn(&s, "two", at(10));
    refused.context = Some(serde_json::json!({"page": "/refused"}));
    assert!(matches!(h.store.begin_turn(&refused).await.unwrap(), BeginTurnOutcome::InProgress));
    h.store.finish_message(&finish_of(&assistant, TENANT, "done", at(20))).await.unwrap();
    // A message without a context leaves the latest one, and its turn is
    // told it (for its tools) without a read of its own.
    let third = turn(&s, "three", at(30));
    match h.store.begin_turn(&third).await.unwrap() {
        BeginTurnOutcome::Started { context, assistant, .. } => {
            assert_eq!(context, Some(serde_json::json!({"page": "/shoes"})));
            h.store.finish_message(&finish_of(&assistant, TENANT, "ok", at(35))).await.unwrap();
        }
        other => panic!("expected Started, got {other:?}"),
    }
    assert_eq!(context_of(&s).await, Some(serde_json::json!({"page": "/shoes"})));
    // One with its own context is told nothing more.
    let mut fourth = turn(&s, "four", at(36));
    fourth.context = Some(serde_json::json!({"page": "/boots"}));
    match h.store.begin_turn(&fourth).await.unwrap() {
        BeginTurnOutcome::Started { context, assistant, .. } => {
            assert_eq!(context, None);
            h.store.finish_message(&finish_of(&assistant, TENANT, "ok", at(37))).await.unwrap();
        }
        other => panic!("expected Started, got {other:?}"),
    }
    assert_eq!(context_of(&s).await, Some(serde_json::json!({"page": "/boots"})));
    // While an agent holds the session, the visitor's page still follows.
    super::take_over(&h.store, &s, "Ada", at(40)).await;
    let mut human = turn(&s, "to the agent", at(50));
    human.context = Some(serde_json::json!({"page": "/cart", "cart_id": "c-1"}));
    assert!(matches!(h.store.begin_turn(&human).await.unwrap(), BeginTurnOutcome::Human { .. }));
    assert_eq!(context_of(&s).await, Some(serde_json::json!({"page": "/cart", "cart_id": "c-1"})));
    // Another tenant never sees it.
    assert_eq!(h.store.session_context("other", s.id).await.unwrap(), None);
}

pub async fn one_failing_write_fails_alone(h: &mut Harness) {
    let taken = new_session(&h.store).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = h.store.clone();
        let id = if i == 12 { taken.id } else { Uuid::new_v4() };
        tasks.push(tokio::spawn(async move {
            let new = NewSession {
                event: None,
                id,
                tenant_id: TENANT.into(),
                owner: OWNER.into(),
                metadata: None,
                now: at(i),
            };
            store.create_session(&new).await.map(|s| s.id)
        }));
    }
    let mut failed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(id) => assert!(h.store.get_session(TENANT, id).await.unwrap().is_some()),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(h.store.list_sessions(TENANT, OWNER, 100, None).await.unwrap().len(), 24);
}
