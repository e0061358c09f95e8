//! `GET /metrics` (SPEC §4): Prometheus text for peers in `metrics_allow`
//! (loopback by default), with request and turn series; anyone else gets 403.

mod common;

use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use futures_util::StreamExt;

/// The value of the first sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn metrics_on_loopback_hold_request_and_turn_series() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(3))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (session, visitor) = app.create_session("acme").await;
    let reply = app.chat_stream(&visitor, &session, "hello").await;
    assert_eq!(reply.last().event, "stream_end");
    // Every later call fails, retried or not.
    fake.set_mode(Mode::ServerError);
    let failed = app.chat_stream(&visitor, &session, "again").await;
    assert_eq!(failed.last().event, "error");
    // A refusal: a tenant that does not exist.
    let refused = app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "nope")).await;
    refused.assert_error(404, "tenant.unknown");

    // Not behind the end-user edge: no tenant, no Origin, no token.
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status.as_u16(), 200, "{}", metrics.text);
    let ct = metrics.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "content type {ct}");
    let text = &metrics.text;
    let t = "tenant=\"acme\"";
    assert_eq!(sample(text, "switchboard_turns_started_total", &[t]), Some(2.0), "{text}");
    assert_eq!(sample(text, "switchboard_turns_finished_total", &[t, "status=\"complete\""]), Some(1.0));
    assert_eq!(sample(text, "switchboard_turns_finished_total", &[t, "status=\"error\""]), Some(1.0));
    assert_eq!(sample(text, "switchboard_turns_in_flight", &[]), Some(0.0), "{text}");
    for transport in ["transport=\"sse\"", "transport=\"websocket\""] {
        assert_eq!(sample(text, "switchboard_connections_open", &[transport]), Some(0.0), "{text}");
    }
    let openai = "provider=\"openai\"";
    assert_eq!(
        sample(text, "switchboard_provider_errors_total", &[openai, "kind=\"unavailable\""]),
        Some(1.0)
    );
    assert_eq!(sample(text, "switchboard_turn_duration_seconds_count", &[openai]), Some(2.0), "{text}");
    assert_eq!(sample(text, "switchboard_turn_first_token_seconds_count", &[openai]), Some(1.0), "{text}");
    assert!(sample(text, "switchboard_turn_first_token_seconds_bucket", &[openai, "le=\"+Inf\""]).is_some());
    let chat = ["route=\"/v1/chat\"", "method=\"POST\"", "status=\"2xx\""];
    assert_eq!(sample(text, "switchboard_http_requests_total", &chat), Some(2.0), "{text}");
    let created = ["route=\"/v1/sessions\"", "status=\"2xx\""];
    assert_eq!(sample(text, "switchboard_http_requests_total", &created), Some(1.0), "{text}");
    assert!(!text.contains(&session), "a session id became a label");
    let chat_route = ["route=\"/v1/chat\"", "method=\"POST\""];
    assert_eq!(sample(text, "switchboard_http_request_duration_seconds_count", &chat_route), Some(2.0));
    assert_eq!(sample(text, "switchboard_refusals_total", &["code=\"tenant.unknown\""]), Some(1.0), "{text}");
    for kind in ["kind=\"prompt\"", "kind=\"completion\""] {
        assert!(
            sample(text, "switchboard_tokens_total", &[t, kind]).is_some_and(|n| n > 0.0),
            "{kind}: {text}"
        );
    }
    assert!(
        sample(text, "switchboard_turn_duration_seconds_count", &[openai, "model=\""]).is_some(),
        "{text}"
    );

    // An open subscription is counted while it is open.
    let mut sub = app.subscribe(&visitor, &session, None).await;
    sub.session_event().await;
    let open = app.get("/metrics", None).await.text;
    assert_eq!(sample(&open, "switchboard_connections_open", &["transport=\"sse\""]), Some(1.0), "{open}");
    assert_eq!(sample(&open, "switchboard_connections_open", &["transport=\"websocket\""]), Some(0.0));
}

#[tokio::test]
async fn peers_outside_metrics_allow_are_refused() {
    let config = AppConfig::new().tenant(TenantSpec::demo("acme")).raw("metrics_allow = [\"10.0.0.0/8\"]");
    let app = TestApp::start(config).await;
    let reply = app.get("/metrics", None).await;
    reply.assert_error(403, "auth.forbidden");
    assert!(!reply.text.contains("switchboard_"), "{}", reply.text);
}

/// The series a scrape holds (sample lines, without their values).
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// A new visitor's session with one turn.
async fn one_turn(app: &TestApp) {
    let (session, visitor) = app.create_session("acme").await;
    let reply = app.chat_json(&visitor, &session, "hello").await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
}

/// Label sets stay bounded: a thousand more sessions, each with a turn,
/// add no series (no session, visitor or turn id is a label).
#[tokio::test]
async fn metrics_gain_no_series_from_a_thousand_sessions() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(1))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    one_turn(&app).await;
    app.get("/metrics", None).await;
    let before = series(&app.get("/metrics", None).await.text);
    futures_util::stream::iter(0..1000).for_each_concurrent(16, |_| one_turn(&app)).await;
    let text = app.get("/metrics", None).await.text;
    assert_eq!(sample(&text, "switchboard_turns_started_total", &["tenant=\"acme\""]), Some(1001.0));
    let after = series(&text);
    let added: Vec<&String> = after.difference(&before).collect();
    assert!(added.is_empty(), "new series after 1,000 sessions: {added:?}");
    assert!(before.len() > 20, "too few series to mean anything: {before:?}");
}
