//! Cases about takeover writes: taking a session over and giving it back
//! (status, `takeover`, `admin_assisted` and the `system` note at the next
//! seq, in one write), agents' messages, the refusals, and concurrency with
//! turns (seqs stay unique and gapless).

use super::*;
use crate::common::Harness;
use switchboard_core::model::{AgentRef, Role, SessionStatus, Takeover};
use switchboard_core::store::takeover::{AgentMessage, AgentMessageOutcome, HoldChange, HoldOutcome};

/// `name` taking `session` over at `now` (`None`: a release).
pub fn hold(session: &Session, name: Option<&str>, now: Timestamp) -> HoldChange {
    HoldChange {
        event: None,
        waiting: false,
        tenant_id: session.tenant_id.clone(),
        session_id: session.id,
        takeover: name.map(|n| Takeover { agent: AgentRef { name: n.into() }, since: now }),
        note: match name {
            Some(n) => format!("{n} joined the conversation"),
            None => "left the conversation".into(),
        },
        max_messages: 1000,
        now,
    }
}

pub fn agent_message(session: &Session, content: &str, now: Timestamp) -> AgentMessage {
    AgentMessage {
        tenant_id: session.tenant_id.clone(),
        session_id: session.id,
        author: "Ada".into(),
        content: content.into(),
        token_count: 2,
        max_messages: 1000,
        now,
    }
}

/// Takes `session` over as `name`; panics unless that wrote.
pub async fn take_over(store: &Arc<dyn Store>, session: &Session, name: &str, now: Timestamp) -> Session {
    match store.set_takeover(&hold(session, Some(name), now)).await.unwrap() {
        HoldOutcome::Changed { session, .. } => session,
        other => panic!("expected Changed, got {other:?}"),
    }
}

pub async fn takeover_writes_status_note_and_seq_at_once(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "one", at(0)).await;
    let (session, note) = match h.store.set_takeover(&hold(&s, Some("Ada"), at(100))).await.unwrap() {
        HoldOutcome::Changed { session, note } => (session, note),
        other => panic!("expected Changed, got {other:?}"),
    };
    assert_eq!((session.status, session.admin_assisted), (SessionStatus::Human, true));
    let takeover = session.takeover.clone().expect("the takeover is kept on the session");
    assert_eq!((takeover.agent.name.as_str(), takeover.since), ("Ada", at(100)));
    assert_eq!((session.latest_seq, session.message_count, session.last_activity_at), (3, 3, at(100)));
    assert_eq!(
        (note.seq, note.role, note.content.as_str()),
        (3, Role::System, "Ada joined the conversation")
    );
    assert_eq!(session_of(&h.store, &s).await, session);
    let stored = h.store.list_messages(TENANT, s.id, 1, None).await.unwrap();
    assert_eq!(stored, vec![note.clone()]);

    // The same agent again changes nothing; another one takes it over.
    match h.store.set_takeover(&hold(&s, Some("Ada"), at(150))).await.unwrap() {
        HoldOutcome::Unchanged { session: same } => assert_eq!(same, session),
        other => panic!("expected Unchanged, got {other:?}"),
    }
    let handed = take_over(&h.store, &s, "Bob", at(200)).await;
    assert_eq!(handed.takeover.map(|t| t.agent.name), Some("Bob".into()));
    assert_eq!(handed.latest_seq, 4);

    // Turns now store only the user message, after the notes.
    match h.store.begin_turn(&turn(&s, "hello?", at(250))).await.unwrap() {
        BeginTurnOutcome::Human { user } => assert_eq!(user.seq, 5),
        other => panic!("expected Human, got {other:?}"),
    }
    let back = match h.store.set_takeover(&hold(&s, None, at(300))).await.unwrap() {
        HoldOutcome::Changed { session, note } => {
            assert_eq!((note.seq, note.role), (6, Role::System));
            session
        }
        other => panic!("expected Changed, got {other:?}"),
    };
    assert_eq!((back.status, back.takeover, back.admin_assisted), (SessionStatus::Active, None, true));
    let (user, assistant, history) = start(&h.store, &turn(&s, "and now?", at(400))).await;
    assert_eq!((user.seq, assistant.seq), (7, 8));
    assert_eq!(seqs(&history), vec![1, 2, 3, 4, 5, 6, 7], "notes are part of the history");
}

pub async fn takeover_refusals(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let mut other_tenant = hold(&s, Some("Ada"), at(10));
    other_tenant.tenant_id = "globex".into();
    assert_eq!(h.store.set_takeover(&other_tenant).await.unwrap(), HoldOutcome::NotFound);
    let mut unknown = hold(&s, Some("Ada"), at(10));
    unknown.session_id = Uuid::new_v4();
    assert_eq!(h.store.set_takeover(&unknown).await.unwrap(), HoldOutcome::NotFound);
    assert_eq!(h.store.set_takeover(&hold(&s, None, at(10))).await.unwrap(), HoldOutcome::NotHuman);

    // While an answer streams, nothing is written.
    let (_, assistant, _) = start(&h.store, &turn(&s, "one", at(20))).await;
    assert_eq!(h.store.set_takeover(&hold(&s, Some("Ada"), at(30))).await.unwrap(), HoldOutcome::InProgress);
    assert_eq!(session_of(&h.store, &s).await.status, SessionStatus::Active);
    let mut aborted = finish_of(&assistant, TENANT, "partial", at(40));
    aborted.status = switchboard_core::MessageStatus::Aborted;
    assert!(h.store.finish_message(&aborted).await.unwrap());
    take_over(&h.store, &s, "Ada", at(50)).await;

    assert!(h.store.close_session(TENANT, s.id, None).await.unwrap().is_some());
    let closed = session_of(&h.store, &s).await;
    assert_eq!((closed.status, closed.takeover), (SessionStatus::Closed, None));
    assert_eq!(h.store.set_takeover(&hold(&s, Some("Ada"), at(60))).await.unwrap(), HoldOutcome::Closed);
    assert_eq!(h.store.set_takeover(&hold(&s, None, at(60))).await.unwrap(), HoldOutcome::Closed);
    assert_eq!(
        h.store.add_agent_message(&agent_message(&s, "hi", at(60))).await.unwrap(),
        AgentMessageOutcome::Closed
    );
    assert_eq!(session_of(&h.store, &s).await.latest_seq, closed.latest_seq);
}

pub async fn agent_messages_only_while_human(h: &mut Harness) {
    let s = new_session(&h.store).await;
    let m = agent_message(&s, "hello from Ada", at(10));
    assert_eq!(h.store.add_agent_message(&m).await.unwrap(), AgentMessageOutcome::NotHuman);
    let mut elsewhere = m.clone();
    elsewhere.tenant_id = "globex".into();
    assert_eq!(h.store.add_agent_message(&elsewhere).await.unwrap(), AgentMessageOutcome::NotFound);
    take_over(&h.store, &s, "Ada", at(20)).await;
    let stored = match h.store.add_agent_message(&agent_message(&s, "hello from Ada", at(30))).await.unwrap()
    {
        AgentMessageOutcome::Stored(message) => message,
        other => panic!("expected Stored, got {other:?}"),
    };
    assert_eq!((stored.seq, stored.role, stored.author.as_deref()), (2, Role::Agent, Some("Ada")));
    assert_eq!((stored.content.as_str(), stored.token_count), ("hello from Ada", 2));
    let session = session_of(&h.store, &s).await;
    assert_eq!((session.latest_seq, session.message_count, session.last_activity_at), (2, 2, at(30)));
    // Read back (decrypted) exactly as written, by history and by replay.
    assert_eq!(h.store.list_messages(TENANT, s.id, 1, None).await.unwrap(), vec![stored.clone()]);
    assert_eq!(h.store.messages_after(TENANT, s.id, 1, 10).await.unwrap(), vec![stored]);
}

/// The session's cap holds for agents' messages and notes as for turns: the
/// oldest messages beyond it go in the same write, and the count follows.
pub async fn agent_messages_and_notes_keep_the_cap(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "q0", at(1)).await;
    let mut change = hold(&s, Some("Ada"), at(2));
    change.max_messages = 3;
    assert!(matches!(h.store.set_takeover(&change).await.unwrap(), HoldOutcome::Changed { .. }));
    assert_eq!(seqs(&h.store.list_messages(TENANT, s.id, 10, None).await.unwrap()), [3, 2, 1]);
    for (i, content) in ["one", "two"].into_iter().enumerate() {
        let mut m = agent_message(&s, content, at(3 + i as i64));
        m.max_messages = 3;
        assert!(matches!(h.store.add_agent_message(&m).await.unwrap(), AgentMessageOutcome::Stored(_)));
    }
    let kept = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    assert_eq!(seqs(&kept), [5, 4, 3], "the oldest beyond the cap of 3 are gone");
    let session = session_of(&h.store, &s).await;
    assert_eq!((session.latest_seq, session.message_count), (5, 3));
    let mut release = hold(&s, None, at(9));
    release.max_messages = 3;
    assert!(matches!(h.store.set_takeover(&release).await.unwrap(), HoldOutcome::Changed { .. }));
    let kept = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    assert_eq!(seqs(&kept), [6, 5, 4]);
    assert_eq!(session_of(&h.store, &s).await.message_count, 3);
}

/// Turns, agents' messages and a takeover racing in one session: every
/// write gets its own seq, with no gap, on either backend.
pub async fn takeover_and_turns_race_without_seq_gaps(h: &mut Harness) {
    for round in 0..5 {
        let s = new_session(&h.store).await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = h.store.clone();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                if i == 0 {
                    let _ = store.set_takeover(&hold(&s, Some("Ada"), at(round))).await.unwrap();
                } else if i % 2 == 0 {
                    let _ = store.add_agent_message(&agent_message(&s, "hi", at(round))).await.unwrap();
                } else {
                    let _ = store.begin_turn(&turn(&s, &format!("m{i}"), at(round))).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let session = session_of(&h.store, &s).await;
        let stored = h.store.list_messages(TENANT, s.id, 100, None).await.unwrap();
        let mut found = seqs(&stored);
        found.reverse();
        assert_eq!(found, (1..=session.latest_seq).collect::<Vec<_>>(), "round {round}");
        assert_eq!(session.message_count, session.latest_seq);
    }
}
