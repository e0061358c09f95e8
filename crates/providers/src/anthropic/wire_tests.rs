//! Unit tests of the Messages wire format: the history reshaping and what
//! each stream event turns into.

use super::*;
use switchboard_core::model::Role;

fn m(role: Role, content: &str) -> HistoryMessage {
    HistoryMessage { role, content: content.into() }
}

fn pairs(history: &[HistoryMessage]) -> Vec<(&'static str, String)> {
    messages(history).into_iter().map(|w| (w.role, w.content.into_owned())).collect()
}

#[test]
fn a_plain_conversation_passes_through_borrowed() {
    let history = [m(Role::User, "Hi"), m(Role::Assistant, "Hello!"), m(Role::User, "How are you?")];
    let out = messages(&history);
    assert!(out.iter().all(|w| matches!(w.content, Cow::Borrowed(_))));
    assert_eq!(
        pairs(&history),
        [("user", "Hi".into()), ("assistant", "Hello!".into()), ("user", "How are you?".into())]
    );
}

#[test]
fn agents_join_the_assistant_side_and_system_notes_are_dropped() {
    let history = [
        m(Role::User, "Hi"),
        m(Role::Assistant, "Hello! How can I help?"),
        m(Role::System, "An agent joined."),
        m(Role::Agent, "Hi, this is Sam."),
        m(Role::User, "How are you?"),
    ];
    assert_eq!(
        pairs(&history),
        [
            ("user", "Hi".into()),
            ("assistant", "Hello! How can I help?\n\nHi, this is Sam.".into()),
            ("user", "How are you?".into()),
        ]
    );
}

#[test]
fn neighbours_of_one_role_merge_across_dropped_messages() {
    let history = [
        m(Role::User, "Hi"),
        m(Role::System, "The assistant failed."),
        m(Role::Assistant, ""),
        m(Role::User, "Anyone there?"),
        m(Role::User, " \n "),
        m(Role::User, "Hello?"),
    ];
    assert_eq!(pairs(&history), [("user", "Hi\n\nAnyone there?\n\nHello?".into())]);
}

#[test]
fn the_first_message_is_the_users() {
    let history = [
        m(Role::Assistant, "Welcome to Acme!"),
        m(Role::System, "Note"),
        m(Role::Agent, "I am here too."),
        m(Role::User, "Hi"),
        m(Role::Assistant, "Hello"),
    ];
    assert_eq!(pairs(&history), [("user", "Hi".into()), ("assistant", "Hello".into())]);
    assert!(messages(&[m(Role::Assistant, "Welcome")]).is_empty());
    assert!(messages(&[]).is_empty());
}

#[test]
fn blank_system_prompts_are_left_out() {
    assert_eq!(system(Some("Be brief.")), Some("Be brief."));
    assert_eq!(system(Some(" \n")), None);
    assert_eq!(system(None), None);
}

/// Feeds `events` (name, data) to a fresh wire; what came out and how it ended.
fn feed(events: &[(&str, &str)]) -> (Vec<ProviderEvent>, Result<Flow, ProviderError>) {
    let mut wire = MessagesWire::default();
    let mut out = Vec::new();
    let mut last = Ok(Flow::More);
    for (name, data) in events {
        let event = SseEvent {
            event: (!name.is_empty()).then(|| (*name).to_owned()),
            data: (*data).into(),
            id: None,
        };
        last = wire.event(&event, &mut out);
        if !matches!(last, Ok(Flow::More)) {
            break;
        }
    }
    (out, last)
}

const START: (&str, &str) = (
    "message_start",
    r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":100,"cache_read_input_tokens":256,"output_tokens":1}}}"#,
);
const STOP: (&str, &str) = ("message_stop", r#"{"type":"message_stop"}"#);

fn text(t: &str) -> String {
    format!(
        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
        serde_json::to_string(t).unwrap()
    )
}

fn stop_reason(reason: &str, output: u64) -> String {
    format!(
        r#"{{"type":"message_delta","delta":{{"stop_reason":"{reason}","stop_sequence":null}},"usage":{{"output_tokens":{output}}}}}"#
    )
}

#[test]
fn text_finish_and_usage_in_order() {
    let (a, b, end) = (text("Hel"), text("lo 🌍"), stop_reason("end_turn", 12));
    let (out, flow) = feed(&[START, ("", &a), ("ping", r#"{"type": "ping"}"#), ("", &b), ("", &end), STOP]);
    assert_eq!(flow, Ok(Flow::Done));
    assert_eq!(
        out,
        vec![
            ProviderEvent::Delta("Hel".into()),
            ProviderEvent::Delta("lo 🌍".into()),
            ProviderEvent::Finish(FinishReason::Stop),
            ProviderEvent::Usage(Usage::new(377, 12, false)),
        ]
    );
}

#[test]
fn every_stop_reason_maps() {
    for (reason, expected) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("model_context_window_exceeded", FinishReason::Length),
        ("tool_use", FinishReason::ToolCalls),
        ("refusal", FinishReason::ContentFilter),
        ("pause_turn", FinishReason::Stop),
        ("something_new", FinishReason::Stop),
    ] {
        let (out, _) = feed(&[START, ("message_delta", &stop_reason(reason, 3))]);
        assert_eq!(out, vec![ProviderEvent::Finish(expected)], "{reason}");
    }
}

#[test]
fn output_counts_are_cumulative_and_the_finish_comes_once() {
    let (first, second) = (stop_reason("max_tokens", 10), stop_reason("end_turn", 30));
    let (out, _) = feed(&[START, ("", &first), ("", &second), STOP]);
    assert_eq!(
        out,
        vec![ProviderEvent::Finish(FinishReason::Length), ProviderEvent::Usage(Usage::new(377, 30, false))]
    );
}

#[test]
fn counts_in_a_message_delta_replace_those_of_the_start() {
    let delta = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":40,"cache_creation_input_tokens":null,"cache_read_input_tokens":2,"output_tokens":9,"server_tool_use":null}}"#;
    let (out, _) = feed(&[START, ("", delta), STOP]);
    assert_eq!(out[1], ProviderEvent::Usage(Usage::new(40 + 100 + 2, 9, false)));
}

#[test]
fn missing_counts_are_zero_and_no_counts_at_all_report_none() {
    let start = r#"{"type":"message_start","message":{"usage":{"input_tokens":5}}}"#;
    let (out, _) = feed(&[("", start), STOP]);
    assert_eq!(out, vec![ProviderEvent::Usage(Usage::new(5, 0, false))]);
    let (out, flow) = feed(&[("", r#"{"type":"message_start","message":{"id":"m"}}"#), STOP]);
    assert_eq!((out, flow), (vec![], Ok(Flow::Done)));
}

#[test]
fn other_blocks_deltas_and_events_are_ignored() {
    let tolerated = [
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"content_block_future","index":2,"payload":[1,2]}"#,
        r#"{ "type" : "ping" }"#,
        "",
    ];
    for data in tolerated {
        assert_eq!(feed(&[("", data)]), (vec![], Ok(Flow::More)), "{data}");
    }
    assert_eq!(feed(&[("ping", "")]), (vec![], Ok(Flow::More)));
}

#[test]
fn in_stream_errors_say_whether_to_retry() {
    let error = |kind: &str| {
        let data = format!(r#"{{"type": "error", "error": {{"type": "{kind}", "message": "Overloaded"}}}}"#);
        feed(&[("error", &data)]).1.unwrap_err()
    };
    for kind in ["overloaded_error", "api_error", "rate_limit_error", "timeout_error"] {
        assert_eq!(
            error(kind),
            ProviderError::Transient(format!("upstream error mid-stream: {kind}: Overloaded")),
            "{kind}"
        );
    }
    for kind in ["invalid_request_error", "authentication_error", "permission_error", "billing_error"] {
        assert!(matches!(error(kind), ProviderError::Unavailable(_)), "{kind}");
    }
    let (_, end) = feed(&[("error", r#"{"type":"error"}"#)]);
    assert_eq!(end, Err(ProviderError::Unavailable(r#"upstream error mid-stream: {"type":"error"}"#.into())));
    assert!(matches!(feed(&[("error", "")]).1, Err(ProviderError::Unavailable(_))));
}

#[test]
fn garbage_is_an_error_and_only_message_stop_completes() {
    for data in [
        "{not json",
        r#"{"no_type":1}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":5}}"#,
    ] {
        let (_, end) = feed(&[("", data)]);
        let Err(ProviderError::Unavailable(message)) = end else { panic!("{data}: {end:?}") };
        assert!(message.starts_with("unparseable stream event"), "{message}");
    }
    let mut wire = MessagesWire::default();
    let stop = SseEvent { event: None, data: stop_reason("end_turn", 1), id: None };
    wire.event(&stop, &mut Vec::new()).unwrap();
    assert!(!wire.complete_without_end_marker());
}
