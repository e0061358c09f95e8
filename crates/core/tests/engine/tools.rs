//! Tools the engine only shows (SPEC §16): a vendor's own agent tools
//! (Dify's `agent_thought`), reported as they fill in, shown once per
//! change and kept with the answer, never run here.

use super::*;
use switchboard_core::provider::ProviderEvent;
use switchboard_core::tools::RemoteTool;
use switchboard_testkit::{tenant, Reply, Step};

fn weather(result: Option<&str>) -> Step {
    Step::Event(ProviderEvent::RemoteTool(RemoteTool {
        id: "t1".into(),
        name: "weather".into(),
        arguments: r#"{"city":"Paris"}"#.into(),
        result: result.map(str::to_owned),
    }))
}

#[tokio::test(start_paused = true)]
async fn a_vendors_own_tool_is_shown_as_it_fills_in_and_kept_with_the_answer() {
    let script = [
        weather(None),
        weather(None),
        Step::delta("Sunny"),
        weather(Some("Sunny, 21°C.")),
        Step::delta(", 21°C."),
        Step::Event(ProviderEvent::Finish(switchboard_core::model::FinishReason::Stop)),
    ];
    let p = Arc::new(ScriptedProvider::new("dify", "agent").then(Reply::steps(script)));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (sid, v) = h.session().await.unwrap();
    let done = turn(&h, sid, &v, "weather?").await;
    let shown: Vec<String> = done
        .events
        .iter()
        .filter_map(|e| match &**e {
            SessionEvent::Tool(t) => Some(format!("{} {:?}", t.call_id, t.status)),
            _ => None,
        })
        .collect();
    assert_eq!(shown, ["t1 Running", "t1 Done"], "a repeat that changes nothing is not shown again");
    assert_eq!(done.text, "Sunny, 21°C.");
    let stored = h.stored(sid, done.seq).unwrap();
    assert_eq!(stored.tools, [serde_json::json!({"call_id": "t1", "name": "weather", "status": "done"})]);
    let call = &stored.tool_calls[0];
    assert_eq!(call.arguments, serde_json::json!({"city": "Paris"}));
    assert_eq!(call.result, Some(serde_json::json!("Sunny, 21°C.")));
}
