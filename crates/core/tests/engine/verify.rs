//! Live product verification in the turn engine (SPEC §16), in virtual
//! time: a tool result with products is `shown` at once and checked beside
//! the answer; the text never waits for the check, the end does (at most
//! the check's timeout); a stopped turn does not wait at all.

use super::*;
use switchboard_core::model::FinishReason;
use switchboard_core::provider::ProviderEvent;
use switchboard_core::tools::{
    Invocation, Outcome, ToolCall, ToolSpec, ToolStatus, Toolbox, Tooling, Verification, Verifier,
};
use switchboard_core::turn::StopReason;
use switchboard_testkit::{tenant, Reply, Step};

/// One tool that shows one product at once.
struct Shop;

#[async_trait::async_trait]
impl Toolbox for Shop {
    async fn offered(&self) -> Arc<[ToolSpec]> {
        let spec =
            ToolSpec { name: "search".into(), description: String::new(), parameters: serde_json::json!({}) };
        Arc::new([spec])
    }

    fn check(&self, _call: &ToolCall) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({}))
    }

    async fn run(&self, _invocation: Invocation) -> Outcome {
        let display = serde_json::json!({"type": "products", "items": [{"id": "p1", "price": "10.00"}]});
        Outcome { result: Ok(serde_json::json!({"found": 1})), display: Some(display) }
    }
}

/// The shop's live data, after `delay`.
struct Live {
    delay: Duration,
}

#[async_trait::async_trait]
impl Verifier for Live {
    async fn verify(
        &self,
        _tenant_id: &str,
        ids: Vec<String>,
        _trace_id: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        tokio::time::sleep(self.delay).await;
        Ok(ids.iter().map(|id| serde_json::json!({"id": id, "price": "8.00"})).collect())
    }
}

/// A tenant whose model calls `search`, then says ten words a tenth of a
/// second apart; checks take `delay`, and `timeout` at most.
fn harness(delay: Duration, timeout: Duration) -> Harness {
    let call = ToolCall { id: "call_1".into(), name: "search".into(), arguments: "{}".into() };
    let p = Arc::new(
        ScriptedProvider::new("openai", "gpt-test")
            .then(Reply::steps([
                Step::Event(ProviderEvent::ToolCall(call)),
                Step::Event(ProviderEvent::Finish(FinishReason::ToolCalls)),
            ]))
            .then(Reply::paced(&refs(&pieces(10)), ms(100))),
    );
    let mut t = tenant("acme", route(&p, |_| {}), vec![]);
    t.tools = Some(Tooling {
        toolbox: Arc::new(Shop),
        max_rounds: 4,
        max_calls: 8,
        handoff: false,
        verification: Some(Verification { verifier: Arc::new(Live { delay }), timeout }),
        memory: false,
    });
    Harness::new(t)
}

/// The statuses of the turn's `tool` events and where each came among its
/// deltas (how many deltas came before it).
fn tool_steps(done: &Done) -> Vec<(ToolStatus, usize)> {
    let mut deltas = 0;
    let mut out = Vec::new();
    for event in &done.events {
        match &**event {
            SessionEvent::StreamDelta { .. } => deltas += 1,
            SessionEvent::Tool(t) => out.push((t.status, deltas)),
            _ => {}
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_text_never_waits_for_a_check_and_the_end_does() {
    let h = harness(secs(2), secs(3));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "shoes?").await;
    // Ten deltas in one second, the check's answer after two.
    assert_eq!(
        tool_steps(&done),
        [(ToolStatus::Running, 0), (ToolStatus::Shown, 0), (ToolStatus::Verified, 10)]
    );
    assert_took(done.took, secs(2));
    assert!(done.end().is_some());
    let stored = h.stored(sid, done.seq).unwrap();
    assert_eq!(stored.tool_calls[0].status, ToolStatus::Verified);
    assert_eq!(stored.tool_calls[0].display.as_ref().unwrap()["items"][0]["price"], "8.00");
}

#[tokio::test(start_paused = true)]
async fn a_check_past_its_timeout_is_unverified_and_the_end_waits_no_longer() {
    let h = harness(secs(60), secs(3));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "shoes?").await;
    assert_eq!(tool_steps(&done).last(), Some(&(ToolStatus::Unverified, 10)));
    assert_took(done.took, secs(3));
    let stored = h.stored(sid, done.seq).unwrap();
    assert_eq!(stored.tool_calls[0].status, ToolStatus::Unverified);
    assert_eq!(stored.tool_calls[0].display.as_ref().unwrap()["items"][0]["price"], "10.00");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_turn_does_not_wait_for_its_checks() {
    let h = harness(secs(60), secs(30));
    let (sid, v) = h.session().await.unwrap();
    let t0 = Instant::now();
    let stream = start(&h, sid, &v, "shoes?").await;
    let seq = stream.seq();
    tokio::time::sleep(ms(500)).await;
    h.engine.stop_session_turn(sid, StopReason::SessionDeleted);
    drain(stream).await;
    assert!(t0.elapsed() < secs(1), "took {:?}", t0.elapsed());
    let stored = h.stored(sid, seq).unwrap();
    assert_eq!(stored.tool_calls[0].status, ToolStatus::Shown, "the check never ended");
}
