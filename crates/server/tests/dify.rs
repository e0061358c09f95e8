//! A tenant served by a Dify chat app (SPEC §5, §13) end to end: Dify's
//! conversation id is learned on a session's first turn, sent on every later
//! one (also after a restart), never shared between sessions; a moderation
//! `message_replace` reaches clients as `stream_replace` with a new revision.

mod common;

use common::checks::check_stream_turn;
use common::fake_dify::{conversation, FakeDify};
use common::{AppConfig, TenantSpec, TestApp};

fn tenant(fake: &FakeDify) -> TenantSpec {
    TenantSpec::upstream("acme", "dify", &fake.base_url(), "support-bot")
}

#[tokio::test]
async fn the_conversation_id_is_kept_per_session_across_turns_and_restarts() {
    let fake = FakeDify::start().await;
    let mut app = TestApp::start(AppConfig::new().tenant(tenant(&fake))).await;
    let (sid, v) = app.create_session("acme").await;

    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "Weather?").await, "Weather?", 1);
    assert_eq!(turn.text, "Sunny, 21°C.");
    assert_eq!(
        (turn.end["provider"].as_str(), turn.end["model"].as_str()),
        (Some("dify"), Some("support-bot"))
    );
    let usage = &turn.end["usage"];
    assert_eq!(
        (usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()),
        (Some(1033), Some(135))
    );
    assert_eq!(usage["estimated"], false);
    let first = &fake.requests()[0];
    assert_eq!((first["query"].as_str(), first["conversation_id"].as_str()), (Some("Weather?"), Some("")));
    assert_eq!(first["response_mode"], "streaming");
    let subject = first["user"].as_str().unwrap().to_owned();
    assert!(subject.starts_with("visitor:"), "user is the subject: {subject}");

    check_stream_turn(&app.chat_stream(&v, &sid, "And tomorrow?").await, "And tomorrow?", 3);
    let second = &fake.requests()[1];
    assert_eq!(second["conversation_id"], conversation(1).as_str(), "the second turn started over");
    assert_eq!(
        (second["query"].as_str(), second["user"].as_str()),
        (Some("And tomorrow?"), Some(subject.as_str()))
    );

    // Another session is another Dify conversation.
    let (other, v2) = app.create_session("acme").await;
    check_stream_turn(&app.chat_stream(&v2, &other, "Hi").await, "Hi", 1);
    assert_eq!(fake.requests()[2]["conversation_id"], "");

    // The id lives in the database, not in the node's memory.
    app.restart().await;
    check_stream_turn(&app.chat_stream(&v, &sid, "Still there?").await, "Still there?", 5);
    assert_eq!(fake.requests()[3]["conversation_id"], conversation(1).as_str());
    check_stream_turn(&app.chat_stream(&v2, &other, "Again").await, "Again", 3);
    assert_eq!(fake.requests()[4]["conversation_id"], conversation(2).as_str());
}

#[tokio::test]
async fn a_moderation_replace_is_a_stream_replace_with_a_new_revision() {
    let fake = FakeDify::start().await;
    fake.replace_with("Sorry, I can't help with that.");
    let app = TestApp::start(AppConfig::new().tenant(tenant(&fake))).await;
    let (sid, v) = app.create_session("acme").await;

    let reply = app.chat_stream(&v, &sid, "Something bad").await;
    let seen: Vec<(String, serde_json::Value)> = reply
        .events
        .iter()
        .filter(|e| e.event.starts_with("stream_"))
        .map(|e| (e.event.clone(), e.json()))
        .collect();
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["stream_start", "stream_delta", "stream_replace", "stream_delta", "stream_end"],
        "{kinds:?}"
    );
    let (delta, replace, after, end) = (&seen[1].1, &seen[2].1, &seen[3].1, &seen[4].1);
    assert_eq!((delta["revision"].as_u64(), delta["text"].as_str()), (Some(0), Some("Sunny")));
    assert_eq!(replace["revision"], 1);
    assert_eq!(replace["text"], "Sorry, I can't help with that.");
    assert_eq!(replace["seq"], seen[0].1["seq"]);
    // Later deltas carry the new revision and count from the new text.
    let replaced_chars = "Sorry, I can't help with that.".chars().count() as u64;
    assert_eq!((after["revision"].as_u64(), after["offset"].as_u64()), (Some(1), Some(replaced_chars)));
    let final_text = "Sorry, I can't help with that. (checked)";
    assert_eq!(end["message"]["content"], final_text);
    assert_eq!(end["finish_reason"], "content_filter");
    let stored = app.message(&v, &sid, 2).await.unwrap();
    assert_eq!((stored["content"].as_str(), stored["status"].as_str()), (Some(final_text), Some("complete")));
}
