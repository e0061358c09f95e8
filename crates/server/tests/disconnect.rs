//! A client that goes away mid-stream (SPEC §11.3): under `continue` the
//! answer completes and is stored `complete`; under `abort` the provider
//! connection is closed and the partial answer is stored `aborted`.

mod common;

use common::checks::check_stream_turn;
use common::{chat_body, eventually, joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::time::Duration;

#[tokio::test]
async fn on_disconnect_continue_completes_the_answer() {
    let all = pieces(20);
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(50) }).await;
    let tenant = TenantSpec::openai("acme", &fake).on_disconnect("continue");
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;

    let mut live = app.chat_live(&v, &chat_body(&sid, "hello")).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    drop(live);

    let (a, vr, s) = (&app, &v, sid.as_str());
    let answer = eventually("the answer to complete", Duration::from_secs(10), || async move {
        let m = a.message(vr, s, 2).await?;
        (m["status"] != "streaming").then_some(m)
    })
    .await;
    assert_eq!(answer["status"], "complete", "{answer}");
    assert_eq!(answer["content"], joined(&all).as_str());
    assert_eq!(fake.completed(), 1, "the provider stream was not read to its end");
    assert_eq!(fake.dropped(), 0, "the provider stream was dropped");
    assert_eq!(app.message(&v, &sid, 1).await.unwrap()["content"], "hello");
}

#[tokio::test]
async fn on_disconnect_abort_stops_the_provider_and_keeps_the_partial() {
    let all = pieces(100);
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(100) }).await;
    let tenant = TenantSpec::openai("acme", &fake).on_disconnect("abort");
    let app = TestApp::start(AppConfig::new().tenant(tenant)).await;
    let (sid, v) = app.create_session("acme").await;

    let mut live = app.chat_live(&v, &chat_body(&sid, "hello")).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    let seen = live.text_so_far();
    drop(live);

    let f = &fake;
    eventually("the provider stream to be closed", Duration::from_secs(5), || async move {
        (f.dropped() == 1).then_some(())
    })
    .await;
    let (a, vr, s) = (&app, &v, sid.as_str());
    let answer = eventually("the answer to be aborted", Duration::from_secs(5), || async move {
        let m = a.message(vr, s, 2).await?;
        (m["status"] != "streaming").then_some(m)
    })
    .await;
    assert_eq!(answer["status"], "aborted", "{answer}");
    let kept = answer["content"].as_str().unwrap();
    assert!(kept.starts_with(&seen), "kept {kept:?} lacks what was streamed: {seen:?}");
    assert!(joined(&all).starts_with(kept), "kept {kept:?} is not a prefix of the answer");
    assert!(kept.len() < joined(&all).len(), "the whole answer was read despite the abort");
    assert_eq!(fake.completed(), 0);

    fake.set_mode(Mode::Normal(pieces(2)));
    let turn = check_stream_turn(&app.chat_stream(&v, &sid, "again").await, "again", 3);
    assert_eq!(turn.text, "w0 w1");
}
