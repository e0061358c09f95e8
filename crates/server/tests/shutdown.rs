//! Graceful shutdown: SIGTERM during a slow turn exits 0 within the grace
//! period, ends the open stream, and leaves the answer in a final status.

mod common;

use common::{chat_body, joined, pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::time::Duration;

#[tokio::test]
async fn sigterm_during_a_slow_turn_drains_and_exits_zero() {
    let all = pieces(100);
    let fake =
        FakeOpenAi::start(Mode::Paced { pieces: all.clone(), interval: Duration::from_millis(100) }).await;
    let config = AppConfig::new().tenant(TenantSpec::openai("acme", &fake)).shutdown_grace_secs(2.0);
    let mut app = TestApp::start(config).await;
    let (sid, v) = app.create_session("acme").await;

    let mut live = app.chat_live(&v, &chat_body(&sid, "a long one please")).await;
    live.until("stream_delta", Duration::from_secs(10)).await;
    live.until("stream_delta", Duration::from_secs(10)).await;

    let (status, took) = app.terminate(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?} with a 2 s grace period");
    // The open stream ends rather than hanging.
    let events = live.finish(Duration::from_secs(5)).await;
    assert!(events.iter().any(|e| e.event == "stream_delta"));
    assert_eq!((fake.dropped(), fake.completed()), (1, 0), "the provider stream was not closed");

    app.restart().await;
    let answer = app.message(&v, &sid, 2).await.expect("the answer was lost");
    let status = answer["status"].as_str().unwrap();
    assert!(
        ["complete", "aborted", "interrupted", "error"].contains(&status),
        "the answer was left {status} after a graceful shutdown"
    );
    let content = answer["content"].as_str().unwrap();
    assert!(!content.is_empty() && joined(&all).starts_with(content), "content {content:?}");
    assert_eq!(app.message(&v, &sid, 1).await.unwrap()["content"], "a long one please");
}

#[tokio::test]
async fn sigterm_or_sigint_when_idle_exits_zero() {
    let mut app = TestApp::start(AppConfig::new()).await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status.as_u16(), 200);
    let (status, took) = app.terminate(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "an idle shutdown took {took:?}");

    app.restart().await;
    let (status, took) = app.interrupt(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0), "exit status after SIGINT {status:?}");
    assert!(took < Duration::from_secs(3), "an idle shutdown on SIGINT took {took:?}");
}
