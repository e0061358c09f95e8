//! Unit tests of the Dify wire format: the request body, what each kind of
//! chunk reads as, and how the stream reader turns chunks into events.

use super::*;

const CONV: &str = "45701982-8118-4bc5-8e9b-64562b4555f2";

fn data(d: &str) -> SseEvent {
    SseEvent { event: None, data: d.into(), id: None }
}

fn feed(wire: &mut DifyWire, d: &str) -> (Result<Flow, ProviderError>, Vec<ProviderEvent>) {
    let mut out = Vec::new();
    let flow = wire.event(&data(d), &mut out);
    (flow, out)
}

fn message(event: &str, answer: &str) -> String {
    format!(
        r#"{{"event":"{event}","conversation_id":"{CONV}","message_id":"m","created_at":1705398420,"task_id":"t","id":"m","answer":{}}}"#,
        serde_json::to_string(answer).unwrap()
    )
}

#[test]
fn the_body_has_exactly_the_fields_dify_takes() {
    let body = RequestBody {
        inputs: Inputs {},
        query: "Hi",
        response_mode: "streaming",
        conversation_id: "",
        user: "u",
    };
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        serde_json::json!({"inputs": {}, "query": "Hi", "response_mode": "streaming", "conversation_id": "", "user": "u"})
    );
}

#[test]
fn text_chunks_of_both_app_kinds() {
    for event in ["message", "agent_message"] {
        let chunk = parse_chunk(&message(event, "21°C")).unwrap();
        assert_eq!(chunk, Chunk::Text { conversation_id: Some(CONV.into()), answer: "21°C".into() });
    }
    let chunk = parse_chunk(r#"{"event":"message","conversation_id":"","answer":null}"#).unwrap();
    assert_eq!(chunk, Chunk::Text { conversation_id: None, answer: String::new() });
    let chunk = parse_chunk(&message("message_replace", "Sorry.")).unwrap();
    assert_eq!(chunk, Chunk::Replace { conversation_id: Some(CONV.into()), answer: "Sorry.".into() });
}

#[test]
fn usage_ignores_prices_and_may_be_missing() {
    let end = r#"{"event":"message_end","conversation_id":"c","metadata":{"usage":{"prompt_tokens":1033,"prompt_unit_price":"0.001","prompt_price":"0.0010330","completion_tokens":135,"completion_price":"0.0002700","total_tokens":1168,"total_price":"0.0013030","currency":"USD","latency":1.38},"retriever_resources":[]},"files":[]}"#;
    let usage = Some(Usage::new(1033, 135, false));
    assert_eq!(parse_chunk(end).unwrap(), Chunk::End { conversation_id: Some("c".into()), usage });
    for end in [
        r#"{"event":"message_end"}"#,
        r#"{"event":"message_end","metadata":{}}"#,
        r#"{"event":"message_end","metadata":{"usage":null}}"#,
        r#"{"event":"message_end","metadata":{"usage":{"currency":"USD"}}}"#,
    ] {
        assert_eq!(parse_chunk(end).unwrap(), Chunk::End { conversation_id: None, usage: None }, "{end}");
    }
}

#[test]
fn error_events_by_status() {
    let err = |code: &str, status: &str| {
        let d = format!(
            r#"{{"event":"error","conversation_id":"c","message_id":"m","created_at":1,"code":"{code}","message":"went wrong","status":{status}}}"#
        );
        match parse_chunk(&d).unwrap() {
            Chunk::Error(e) => e,
            other => panic!("{other:?}"),
        }
    };
    for (code, status) in [
        ("invalid_param", "400"),
        ("provider_not_initialize", "400"),
        ("provider_quota_exceeded", "400"),
        ("model_currently_not_support", "400"),
        ("completion_request_error", "400"),
    ] {
        let e = err(code, status);
        assert_eq!(e, ProviderError::Unavailable(format!("upstream error mid-stream: {code}: went wrong")));
    }
    for (code, status) in [("internal_server_error", "500"), ("too_many_requests", "429"), ("x", "\"503\"")] {
        assert!(matches!(err(code, status), ProviderError::Transient(_)), "{code} {status}");
    }
    assert!(matches!(err("internal_server_error", "null"), ProviderError::Transient(_)));
    assert!(matches!(err("invalid_param", "null"), ProviderError::Unavailable(_)));
}

#[test]
fn other_events_are_skipped_and_garbage_is_not() {
    for d in [
        r#"{"event":"agent_thought","id":"a","position":1,"thought":"Let me think.","tool":"","tool_input":"","observation":""}"#,
        r#"{"event":"workflow_started","task_id":"t","workflow_run_id":"w","data":{"id":"w","inputs":{}}}"#,
        r#"{"event":"tts_message","audio":"AAAA","answer":7}"#,
        r#"{"event":"ping"}"#,
    ] {
        assert_eq!(parse_chunk(d).unwrap(), Chunk::Other { conversation_id: None }, "{d}");
    }
    assert!(matches!(parse_chunk("{not json"), Err(ProviderError::Unavailable(_))));
    assert!(matches!(parse_chunk(r#"{"answer":"x"}"#), Err(ProviderError::Unavailable(_))));
    assert!(matches!(parse_chunk(r#"{"event":"message","answer":7}"#), Err(ProviderError::Unavailable(_))));
}

#[test]
fn the_conversation_is_reported_once_and_only_when_new() {
    let mut wire = DifyWire::new("");
    let mut out = Vec::new();
    let ping = SseEvent { event: Some("ping".into()), data: String::new(), id: None };
    assert_eq!(wire.event(&ping, &mut out), Ok(Flow::More));
    assert_eq!(out, vec![]);
    let (flow, out) = feed(&mut wire, &message("message", "Sunny"));
    assert_eq!(flow, Ok(Flow::More));
    assert_eq!(out, vec![ProviderEvent::Conversation(CONV.into()), ProviderEvent::Delta("Sunny".into())]);
    assert_eq!(feed(&mut wire, &message("message", "")).1, vec![]);
    assert_eq!(feed(&mut wire, &message("message", "!")).1, vec![ProviderEvent::Delta("!".into())]);

    let mut wire = DifyWire::new(CONV);
    assert_eq!(feed(&mut wire, &message("message", "Hi")).1, vec![ProviderEvent::Delta("Hi".into())]);
    let mut wire = DifyWire::new("stale");
    let (_, out) = feed(&mut wire, &message("message", "Hi"));
    assert_eq!(out[0], ProviderEvent::Conversation(CONV.into()));
}

#[test]
fn the_end_finishes_and_a_replacement_marks_it_filtered() {
    let end = r#"{"event":"message_end","conversation_id":"c","metadata":{"usage":{"prompt_tokens":3,"completion_tokens":4}}}"#;
    let mut wire = DifyWire::new("c");
    let (flow, out) = feed(&mut wire, end);
    assert_eq!(flow, Ok(Flow::Done));
    let usage = ProviderEvent::Usage(Usage::new(3, 4, false));
    assert_eq!(out, vec![ProviderEvent::Finish(FinishReason::Stop), usage.clone()]);

    let mut wire = DifyWire::new("c");
    let (_, out) = feed(&mut wire, r#"{"event":"message_replace","conversation_id":"c","answer":""}"#);
    assert_eq!(out, vec![ProviderEvent::Replace(String::new())]);
    let (_, out) = feed(&mut wire, end);
    assert_eq!(out, vec![ProviderEvent::Finish(FinishReason::ContentFilter), usage]);
}

#[test]
fn an_error_or_a_body_without_the_end_fails() {
    let mut wire = DifyWire::new("");
    let (flow, out) =
        feed(&mut wire, r#"{"event":"error","code":"internal_server_error","message":"boom","status":500}"#);
    assert_eq!(
        flow,
        Err(ProviderError::Transient("upstream error mid-stream: internal_server_error: boom".into()))
    );
    assert_eq!(out, vec![]);
    assert!(!wire.complete_without_end_marker());
}

#[test]
fn an_agents_tool_use_is_reported_as_it_fills_in() {
    let started = r#"{"event":"agent_thought","id":"a","position":1,"thought":"","tool":"weather","tool_input":"{\"weather\":{\"city\":\"Paris\"}}","observation":""}"#;
    let Chunk::Thought { tool, .. } = parse_chunk(started).unwrap() else { panic!("not a thought") };
    assert_eq!((tool.id.as_str(), tool.name.as_str(), tool.result), ("a", "weather", None));
    assert_eq!(tool.arguments, r#"{"weather":{"city":"Paris"}}"#);
    let done = started.replace(r#""observation":"""#, r#""observation":"Sunny, 21°C.""#);
    let Chunk::Thought { tool, .. } = parse_chunk(&done).unwrap() else { panic!("not a thought") };
    assert_eq!(tool.result.as_deref(), Some("Sunny, 21°C."));
    let null = started.replace(r#""observation":"""#, r#""observation":null"#);
    assert!(matches!(parse_chunk(&null).unwrap(), Chunk::Thought { tool, .. } if tool.result.is_none()));
}
