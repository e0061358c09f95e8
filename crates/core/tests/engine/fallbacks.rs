//! Fallbacks (SPEC §13): tried in order when the one before failed before
//! its first token, each in its own words; the answer names who gave it;
//! none once text was shown.

use super::*;
use switchboard_core::model::MessageStatus;
use switchboard_core::provider::ProviderError;
use switchboard_testkit::{tenant, Reply, Step};

#[tokio::test(start_paused = true)]
async fn fallbacks_are_tried_in_order_and_the_answer_names_who_gave_it() {
    let primary = Arc::new(ScriptedProvider::new("openai", "gpt-primary").always(Reply::server_error()));
    let second =
        Arc::new(ScriptedProvider::new("anthropic", "claude-second").always(Reply::rate_limited(secs(30))));
    let third = Arc::new(ScriptedProvider::new("dify", "dify-third").always(Reply::text(&["w0 ", "w1"])));
    let routes =
        vec![route(&second, |_| {}), route(&third, |s| s.system_prompt = Some("Third's own words.".into()))];
    let primary_route = route(&primary, |s| {
        s.retry.attempts = 2;
        s.breaker.failures = 2;
        s.system_prompt = Some("Be brief.".into());
    });
    let h = Harness::new(tenant("acme", primary_route, routes));
    let (sid, v) = h.session().await.unwrap();

    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!(done.text, "w0 w1");
    let end = done.end().unwrap();
    assert_eq!((end.provider.as_str(), end.model.as_str()), ("dify", "dify-third"));
    // Twice the primary (one retry), once the second (30 s is past its
    // max_wait), then the third.
    assert_eq!((primary.call_count(), second.call_count(), third.call_count()), (2, 1, 1));
    let last_primary = primary.calls().last().unwrap().ordinal;
    assert!(last_primary < second.calls()[0].ordinal, "a fallback was called before the primary gave up");
    assert!(second.calls()[0].ordinal < third.calls()[0].ordinal, "fallbacks out of order");
    assert_eq!(primary.calls()[0].request.system_prompt.as_deref(), Some("Be brief."));
    assert_eq!(third.calls()[0].request.system_prompt.as_deref(), Some("Third's own words."));
    let stored = h.stored(sid, done.seq).unwrap();
    let meta = stored.meta.clone().unwrap();
    assert_eq!(stored.status, MessageStatus::Complete);
    assert_eq!((meta.provider.as_deref(), meta.model.as_deref()), (Some("dify"), Some("dify-third")));

    // Two failures opened the primary's circuit: the next turn skips it.
    assert_eq!(turn(&h, sid, &v, "again").await.end().unwrap().model, "dify-third");
    assert_eq!((primary.call_count(), second.call_count(), third.call_count()), (2, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn no_fallback_once_text_was_shown() {
    let broken = Reply::steps([Step::delta("w0 "), Step::Fail(ProviderError::Unavailable("reset".into()))]);
    let primary = Arc::new(ScriptedProvider::new("openai", "gpt-primary").then(broken));
    let fallback = Arc::new(ScriptedProvider::new("openai", "gpt-fallback"));
    let h = Harness::new(tenant("acme", route(&primary, |_| {}), vec![route(&fallback, |_| {})]));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!((done.error(), done.text.as_str()), (Some("llm.unavailable"), "w0 "));
    assert_eq!((primary.call_count(), fallback.call_count()), (1, 0));
    let meta = h.stored(sid, done.seq).unwrap().meta.unwrap();
    assert_eq!(meta.model.as_deref(), Some("gpt-primary"));
}

#[tokio::test(start_paused = true)]
async fn the_last_fallback_failing_fails_the_turn() {
    let primary = Arc::new(ScriptedProvider::new("openai", "gpt-primary").always(Reply::refused(401, None)));
    let fallback =
        Arc::new(ScriptedProvider::new("openai", "gpt-fallback").always(Reply::refused(403, None)));
    let h = Harness::new(tenant("acme", route(&primary, |_| {}), vec![route(&fallback, |_| {})]));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "hi").await;
    assert_eq!(done.error(), Some("llm.unavailable"));
    assert_eq!((primary.call_count(), fallback.call_count()), (1, 1), "a refused key is not retried");
    let meta = h.stored(sid, done.seq).unwrap().meta.unwrap();
    assert_eq!(meta.model.as_deref(), Some("gpt-fallback"), "the ending is the last route tried");
}
