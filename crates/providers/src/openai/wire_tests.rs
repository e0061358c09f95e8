//! Unit tests of the Chat Completions stream: what each chunk turns into,
//! and tool calls assembled from their fragments the ways servers send them.

use super::*;
use switchboard_core::tools::ToolCall;

fn data(d: &str) -> SseEvent {
    SseEvent { event: None, data: d.into(), id: None }
}

/// Feeds `events` to a fresh wire; what came out and how the last one ended.
fn feed_events(events: &[SseEvent]) -> (Vec<ProviderEvent>, Result<Flow, ProviderError>) {
    let mut wire = ChatWire::default();
    let mut out = Vec::new();
    let mut last = Ok(Flow::More);
    for event in events {
        last = wire.event(event, &mut out);
        if !matches!(last, Ok(Flow::More)) {
            break;
        }
    }
    (out, last)
}

/// Feeds these `data:` payloads to a fresh wire.
fn feed(payloads: &[&str]) -> (Vec<ProviderEvent>, Result<Flow, ProviderError>) {
    feed_events(&payloads.iter().map(|d| data(d)).collect::<Vec<_>>())
}

/// What one payload turns into on a fresh wire that reads on.
fn events(d: &str) -> Vec<ProviderEvent> {
    let (out, flow) = feed(&[d]);
    assert_eq!(flow, Ok(Flow::More), "{d}");
    out
}

#[test]
fn role_chunk_and_empty_content_yield_nothing() {
    let d = r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#;
    assert_eq!(events(d), vec![]);
    assert_eq!(events(r#"{"choices":[{"delta":{"content":null}}]}"#), vec![]);
}

#[test]
fn content_and_finish_and_usage() {
    assert_eq!(
        events(
            r#"{"choices":[{"delta":{"content":"I'm"},"finish_reason":null}],"service_tier":"default","obfuscation":"x"}"#
        ),
        vec![ProviderEvent::Delta("I'm".into())]
    );
    for (reason, expected) in [
        ("stop", FinishReason::Stop),
        ("length", FinishReason::Length),
        ("tool_calls", FinishReason::ToolCalls),
        ("function_call", FinishReason::ToolCalls),
        ("content_filter", FinishReason::ContentFilter),
        ("eos", FinishReason::Stop),
    ] {
        let d = format!(r#"{{"choices":[{{"delta":{{}},"finish_reason":"{reason}"}}]}}"#);
        assert_eq!(events(&d), vec![ProviderEvent::Finish(expected)]);
    }
    let d = r#"{"choices":[],"usage":{"prompt_tokens":14,"completion_tokens":30,"total_tokens":44,"completion_tokens_details":{"reasoning_tokens":0}}}"#;
    assert_eq!(events(d), vec![ProviderEvent::Usage(Usage::new(14, 30, false))]);
}

#[test]
fn llama_cpp_usage_on_the_finish_chunk_comes_after_the_finish() {
    let d = r#"{"choices":[{"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
    assert_eq!(
        events(d),
        vec![
            ProviderEvent::Delta("!".into()),
            ProviderEvent::Finish(FinishReason::Stop),
            ProviderEvent::Usage(Usage::new(3, 4, false))
        ]
    );
}

#[test]
fn azure_chunks_without_choices_or_delta_are_ignored() {
    assert_eq!(events(r#"{"choices":[],"prompt_filter_results":[{"prompt_index":0}]}"#), vec![]);
    assert_eq!(events(r#"{"choices":[{"index":0,"content_filter_results":{}}]}"#), vec![]);
    assert_eq!(events(r#"{"choices":null}"#), vec![]);
}

#[test]
fn errors_done_and_garbage() {
    assert_eq!(feed(&[" [DONE] "]), (vec![], Ok(Flow::Done)));
    let err = feed(&[r#"{"error":{"message":"overloaded","type":"server_error"}}"#]).1;
    assert_eq!(err, Err(ProviderError::Transient("upstream error mid-stream: overloaded".into())));
    let err = feed(&[r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#]).1;
    assert_eq!(err, Err(ProviderError::Unavailable("upstream error mid-stream: bad".into())));
    assert!(feed(&["{not json"]).1.is_err());
    assert_eq!(events(r#"{"error":null,"choices":[]}"#), vec![]);
    let ping = SseEvent { event: Some("ping".into()), data: String::new(), id: None };
    assert_eq!(feed_events(&[ping]), (vec![], Ok(Flow::More)));
    let error = SseEvent { event: Some("error".into()), data: "boom".into(), id: None };
    assert_eq!(feed_events(&[error]).1, Err(ProviderError::Unavailable("upstream error event: boom".into())));
    let vllm = r#"{"error":{"object":"error","message":"busy","type":"InternalServerError","code":500}}"#;
    let error = SseEvent { event: Some("error".into()), data: vllm.into(), id: None };
    assert_eq!(feed_events(&[error]).1, Err(ProviderError::Transient("upstream error event: busy".into())));
    let err = feed(&[r#"{"error":{"message":"slow down","code":429}}"#]).1;
    assert_eq!(err, Err(ProviderError::Transient("upstream error mid-stream: slow down".into())));
}

#[test]
fn the_finish_comes_once() {
    let stop = r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#;
    let length = r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#;
    assert_eq!(feed(&[stop, length, stop]).0, vec![ProviderEvent::Finish(FinishReason::Stop)]);
}

// Tool calls.

/// A fragment chunk: `fragments` is the JSON list of `delta.tool_calls`.
fn calls_chunk(fragments: &str) -> String {
    format!(r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":{fragments}}},"finish_reason":null}}]}}"#)
}

/// The first fragment of a call, as OpenAI sends it.
fn start(index: u32, id: &str, name: &str) -> String {
    calls_chunk(&format!(
        r#"[{{"index":{index},"id":"{id}","type":"function","function":{{"name":"{name}","arguments":""}}}}]"#
    ))
}

/// A later fragment: only the index and a piece of the arguments.
fn args(index: u32, piece: &str) -> String {
    let piece = serde_json::to_string(piece).unwrap();
    calls_chunk(&format!(r#"[{{"index":{index},"function":{{"arguments":{piece}}}}}]"#))
}

const TOOL_CALLS: &str = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#;
const USAGE: &str = r#"{"choices":[],"usage":{"prompt_tokens":80,"completion_tokens":17,"total_tokens":97}}"#;

fn call(id: &str, name: &str, arguments: &str) -> ProviderEvent {
    ProviderEvent::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
}

fn feed_owned(payloads: &[String]) -> (Vec<ProviderEvent>, Result<Flow, ProviderError>) {
    feed(&payloads.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_recorded_call_is_whole_before_the_finish_and_the_usage() {
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Pieq","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#.to_owned(),
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"lo"}}]},"finish_reason":null}]}"#.to_owned(),
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"cation\": \"T"}}]},"finish_reason":null}]}"#.to_owned(),
        args(0, "okyo\"}"),
        TOOL_CALLS.to_owned(),
        USAGE.to_owned(),
        "[DONE]".to_owned(),
    ];
    let (out, flow) = feed_owned(&chunks);
    assert_eq!(flow, Ok(Flow::Done));
    assert_eq!(
        out,
        vec![
            call("call_Pieq", "get_weather", r#"{"location": "Tokyo"}"#),
            ProviderEvent::Finish(FinishReason::ToolCalls),
            ProviderEvent::Usage(Usage::new(80, 17, false)),
        ]
    );
}

#[test]
fn parallel_calls_come_in_the_order_they_started() {
    let mut chunks = Vec::new();
    for (i, (id, name, arguments)) in [
        ("call_a", "search_products", r#"{"q":"shoes"}"#),
        ("call_b", "view_cart", "{}"),
        ("call_c", "get_product", r#"{"id":"p1"}"#),
    ]
    .iter()
    .enumerate()
    {
        let i = u32::try_from(i).unwrap();
        chunks.push(start(i, id, name));
        chunks.push(args(i, arguments));
    }
    chunks.push(TOOL_CALLS.to_owned());
    assert_eq!(
        feed_owned(&chunks).0,
        vec![
            call("call_a", "search_products", r#"{"q":"shoes"}"#),
            call("call_b", "view_cart", "{}"),
            call("call_c", "get_product", r#"{"id":"p1"}"#),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn interleaved_indexes_are_assembled_apart() {
    let chunks = [
        start(0, "call_a", "get_weather"),
        start(1, "call_b", "get_weather"),
        args(0, "{\"city\":"),
        args(1, "{\"city\":"),
        args(0, "\"Paris\"}"),
        args(1, "\"Oslo\"}"),
        // Both in one chunk, in reverse order.
        calls_chunk(r#"[{"index":1,"function":{"arguments":""}},{"index":0,"function":{"arguments":""}}]"#),
        TOOL_CALLS.to_owned(),
    ];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![
            call("call_a", "get_weather", r#"{"city":"Paris"}"#),
            call("call_b", "get_weather", r#"{"city":"Oslo"}"#),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn a_new_id_on_a_reused_index_starts_a_new_call() {
    // As Ollama-compatible servers send a parallel batch: every call on
    // index 0, some whole in one fragment.
    let chunks = [
        start(0, "call_1", "search_products"),
        args(0, r#"{"q":"hoodies"}"#),
        calls_chunk(
            r#"[{"index":0,"id":"call_2","type":"function","function":{"name":"view_cart","arguments":"{}"}}]"#,
        ),
        start(0, "call_3", "get_product"),
        args(0, r#"{"id":"#),
        args(0, r#""h2"}"#),
        TOOL_CALLS.to_owned(),
    ];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![
            call("call_1", "search_products", r#"{"q":"hoodies"}"#),
            call("call_2", "view_cart", "{}"),
            call("call_3", "get_product", r#"{"id":"h2"}"#),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn the_same_id_repeated_on_every_fragment_goes_on_with_the_call() {
    let repeat = |piece: &str| {
        let piece = serde_json::to_string(piece).unwrap();
        calls_chunk(&format!(
            r#"[{{"index":0,"id":"call_1","type":"function","function":{{"arguments":{piece}}}}}]"#
        ))
    };
    let chunks = [start(0, "call_1", "view_cart"), repeat("{"), repeat("}"), TOOL_CALLS.to_owned()];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![call("call_1", "view_cart", "{}"), ProviderEvent::Finish(FinishReason::ToolCalls)]
    );
}

#[test]
fn arguments_in_many_fragments_and_names_in_pieces_concatenate() {
    let arguments = r#"{"query": "running shoes", "max_price": 120, "tags": ["trail", "é🌍"]}"#;
    let mut chunks = vec![calls_chunk(
        r#"[{"index":0,"id":"call_1","type":"function","function":{"name":"search_","arguments":null}}]"#,
    )];
    chunks.push(calls_chunk(r#"[{"index":0,"id":null,"type":null,"function":{"name":"products"}}]"#));
    chunks.extend(arguments.chars().map(|c| args(0, &c.to_string())));
    chunks.push(TOOL_CALLS.to_owned());
    assert_eq!(
        feed_owned(&chunks).0,
        vec![call("call_1", "search_products", arguments), ProviderEvent::Finish(FinishReason::ToolCalls)]
    );
}

#[test]
fn arguments_that_are_not_json_pass_through_as_written() {
    let chunks =
        [start(0, "call_1", "get_product"), args(0, "{\"id\": p1,"), args(0, " oops"), TOOL_CALLS.to_owned()];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![
            call("call_1", "get_product", "{\"id\": p1, oops"),
            ProviderEvent::Finish(FinishReason::ToolCalls)
        ]
    );
}

#[test]
fn text_streams_as_it_comes_and_the_calls_wait_for_the_finish() {
    let text = |t: &str| {
        format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#)
    };
    let chunks = [
        text("Let me look."),
        start(0, "call_1", "view_cart"),
        args(0, "{}"),
        // Content after the calls (some servers): still text, at once.
        text(" One moment."),
        TOOL_CALLS.to_owned(),
    ];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![
            ProviderEvent::Delta("Let me look.".into()),
            ProviderEvent::Delta(" One moment.".into()),
            call("call_1", "view_cart", "{}"),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn without_a_finish_the_calls_come_at_done() {
    let chunks = [start(0, "call_1", "view_cart"), args(0, "{}"), USAGE.to_owned(), "[DONE]".to_owned()];
    let (out, flow) = feed_owned(&chunks);
    assert_eq!(flow, Ok(Flow::Done));
    assert_eq!(
        out,
        vec![
            ProviderEvent::Usage(Usage::new(80, 17, false)),
            call("call_1", "view_cart", "{}"),
            ProviderEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn calls_ended_with_stop_still_wait_for_their_results() {
    let stop = r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#.to_owned();
    let chunks = [start(0, "call_1", "view_cart"), stop];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![call("call_1", "view_cart", ""), ProviderEvent::Finish(FinishReason::ToolCalls)]
    );
    // Cut short by the length limit: said as it is.
    let length = r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#.to_owned();
    let chunks = [start(0, "call_1", "get_product"), args(0, "{\"id\":"), length];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![call("call_1", "get_product", "{\"id\":"), ProviderEvent::Finish(FinishReason::Length)]
    );
}

#[test]
fn a_call_without_an_id_or_an_index_gets_ours() {
    let chunks = [
        calls_chunk(
            r#"[{"type":"function","function":{"name":"view_cart","arguments":"{}"}},{"function":{"name":"get_product","arguments":"{\"id\":\"p1\"}"}}]"#,
        ),
        TOOL_CALLS.to_owned(),
    ];
    let out = feed_owned(&chunks).0;
    assert_eq!(out.len(), 3, "{out:?}");
    let mut ids = Vec::new();
    for (event, (name, arguments)) in out.iter().zip([("view_cart", "{}"), ("get_product", r#"{"id":"p1"}"#)])
    {
        let ProviderEvent::ToolCall(c) = event else { panic!("{out:?}") };
        assert_eq!((c.name.as_str(), c.arguments.as_str()), (name, arguments));
        let hex = c.id.strip_prefix("call_").unwrap();
        assert!(hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{}", c.id);
        ids.push(c.id.clone());
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn fragments_after_the_finish_are_not_calls() {
    let chunks = [
        start(0, "call_1", "view_cart"),
        TOOL_CALLS.to_owned(),
        start(1, "call_2", "late"),
        "[DONE]".to_owned(),
    ];
    assert_eq!(
        feed_owned(&chunks).0,
        vec![call("call_1", "view_cart", ""), ProviderEvent::Finish(FinishReason::ToolCalls)]
    );
}
