//! Unit tests of the Messages stream: what each event turns into, and tool
//! calls assembled from their blocks.

use super::*;

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

// Tool calls.

fn tool_start(index: u64, id: &str, name: &str) -> String {
    format!(
        r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"{id}","name":"{name}","input":{{}}}}}}"#
    )
}

fn input(index: u64, piece: &str) -> String {
    let piece = serde_json::to_string(piece).unwrap();
    format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"input_json_delta","partial_json":{piece}}}}}"#
    )
}

fn block_stop(index: u64) -> String {
    format!(r#"{{"type":"content_block_stop","index":{index}}}"#)
}

fn call(id: &str, name: &str, arguments: &str) -> ProviderEvent {
    ProviderEvent::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
}

/// Feeds payloads without event names.
fn feed_data(payloads: &[String]) -> (Vec<ProviderEvent>, Result<Flow, ProviderError>) {
    let events: Vec<(&str, &str)> = payloads.iter().map(|d| ("", d.as_str())).collect();
    feed(&events)
}

#[test]
fn the_recorded_tool_use_block_is_a_whole_call_at_its_stop() {
    let text_start = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
    let events = [
        START,
        ("content_block_start", text_start),
        ("content_block_delta", &text("I'll check the weather.")),
        ("content_block_stop", &block_stop(0)),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01KF","name":"get_weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        ("ping", r#"{"type": "ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Par"}}"#,
        ),
        ("content_block_delta", &input(1, "is\"}")),
        ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":57}}"#,
        ),
        STOP,
    ];
    let (out, flow) = feed(&events);
    assert_eq!(flow, Ok(Flow::Done));
    assert_eq!(
        out,
        vec![
            ProviderEvent::Delta("I'll check the weather.".into()),
            call("toolu_01KF", "get_weather", r#"{"location": "Paris"}"#),
            ProviderEvent::Finish(FinishReason::ToolCalls),
            ProviderEvent::Usage(Usage::new(377, 57, false)),
        ]
    );
}

#[test]
fn parallel_tool_use_blocks_come_in_their_order() {
    let mut payloads = Vec::new();
    for (index, (id, name, arguments)) in [
        (0, ("toolu_a", "search_products", r#"{"q":"shoes"}"#)),
        (1, ("toolu_b", "view_cart", "")),
        (2, ("toolu_c", "get_product", r#"{"id":"p1"}"#)),
    ] {
        payloads.extend([tool_start(index, id, name), input(index, arguments), block_stop(index)]);
    }
    payloads.push(stop_reason("tool_use", 90));
    assert_eq!(
        feed_data(&payloads).0,
        vec![
            call("toolu_a", "search_products", r#"{"q":"shoes"}"#),
            // No input streamed: no arguments.
            call("toolu_b", "view_cart", "{}"),
            call("toolu_c", "get_product", r#"{"id":"p1"}"#),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn input_in_many_fragments_concatenates_and_bad_json_passes_as_written() {
    let arguments = r#"{"query": "running shoes", "tags": ["trail", "é🌍"], "max_price": 120}"#;
    let mut payloads = vec![tool_start(0, "toolu_1", "search_products")];
    payloads.extend(arguments.chars().map(|c| input(0, &c.to_string())));
    payloads.push(block_stop(0));
    payloads.extend([
        tool_start(1, "toolu_2", "get_product"),
        input(1, "{\"id\": p1,"),
        input(1, " oops"),
        block_stop(1),
    ]);
    assert_eq!(
        feed_data(&payloads).0,
        vec![
            call("toolu_1", "search_products", arguments),
            call("toolu_2", "get_product", "{\"id\": p1, oops")
        ]
    );
}

#[test]
fn text_after_a_tool_use_block_streams_after_the_call() {
    let payloads = [
        tool_start(0, "toolu_1", "view_cart"),
        input(0, "{}"),
        block_stop(0),
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#.to_owned(),
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"One moment."}}"#
            .to_owned(),
        block_stop(1),
        stop_reason("tool_use", 20),
    ];
    assert_eq!(
        feed_data(&payloads).0,
        vec![
            call("toolu_1", "view_cart", "{}"),
            ProviderEvent::Delta("One moment.".into()),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn input_given_whole_at_the_start_and_a_missing_id_are_taken_care_of() {
    let whole = r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_product","input":{"id":"p1"}}}"#;
    let no_id = r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","name":"view_cart","input":{}}}"#;
    let payloads = [whole.to_owned(), block_stop(0), no_id.to_owned(), block_stop(1)];
    let out = feed_data(&payloads).0;
    assert_eq!(out[0], call("toolu_1", "get_product", r#"{"id":"p1"}"#));
    let ProviderEvent::ToolCall(ours) = &out[1] else { panic!("{out:?}") };
    assert_eq!((ours.name.as_str(), ours.arguments.as_str()), ("view_cart", "{}"));
    let hex = ours.id.strip_prefix("call_").unwrap();
    assert!(hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{}", ours.id);
}

#[test]
fn stray_tool_pieces_and_other_blocks_make_no_calls() {
    let payloads = [
        // Input and stop of a block never started.
        input(3, "{}"),
        block_stop(3),
        // Anthropic's own server tools run at Anthropic: not ours to call.
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#.to_owned(),
        input(0, r#"{"query":"x"}"#),
        block_stop(0),
    ];
    assert_eq!(feed_data(&payloads), (vec![], Ok(Flow::More)));
}
