//! Each provider's stream parser, over the shared decoder, on a fuzzed
//! body: the same provider events whether the body comes whole or in
//! chunks, an error only as the last item, at most one finish, no empty
//! text deltas, every tool call with an id, and (Chat Completions) no tool
//! call after the finish that handed the calls out.

use crate::layout::layout;
use bytes::Bytes;
use switchboard_core::provider::{ProviderError, ProviderEvent};
use switchboard_providers::replay::{read_answer, WireFormat, DIFY_SENT_CONVERSATION};

type Items = Vec<Result<ProviderEvent, ProviderError>>;

/// Tool call ids the runtime made up (random) are the same call to us.
fn comparable(items: Items) -> Items {
    items
        .into_iter()
        .map(|item| match item {
            Ok(ProviderEvent::ToolCall(mut call)) if made_up(&call.id) => {
                call.id = "call_*".into();
                Ok(ProviderEvent::ToolCall(call))
            }
            other => other,
        })
        .collect()
}

fn made_up(id: &str) -> bool {
    id.strip_prefix("call_").is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check(format: WireFormat, data: &[u8]) {
    let input = layout(data);
    let whole = read_answer(format, vec![Bytes::copy_from_slice(input.body)]);
    let split = read_answer(format, input.chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect());
    if let Some(at) = whole.iter().position(Result::is_err) {
        assert_eq!(at + 1, whole.len(), "events after an error: {whole:?}");
    }
    let finishes = whole.iter().filter(|i| matches!(i, Ok(ProviderEvent::Finish(_)))).count();
    assert!(finishes <= 1, "{finishes} finishes: {whole:?}");
    let mut finished = false;
    let mut conversations = 0;
    for item in whole.iter().flatten() {
        match item {
            ProviderEvent::Delta(text) => assert!(!text.is_empty(), "an empty delta"),
            ProviderEvent::ToolCall(call) => {
                assert!(!call.id.is_empty(), "a tool call without an id: {call:?}");
                let late = finished && format == WireFormat::OpenAi;
                assert!(!late, "a tool call after the finish: {whole:?}");
            }
            ProviderEvent::Finish(_) => finished = true,
            ProviderEvent::Conversation(id) => {
                conversations += 1;
                assert!(id != DIFY_SENT_CONVERSATION && !id.is_empty(), "not news: {id:?}");
            }
            _ => {}
        }
    }
    assert!(conversations <= 1, "the conversation told {conversations} times");
    assert_eq!(comparable(whole), comparable(split), "events differ when the body is split");
}

pub fn openai_stream(data: &[u8]) {
    check(WireFormat::OpenAi, data);
}

pub fn anthropic_stream(data: &[u8]) {
    check(WireFormat::Anthropic, data);
}

pub fn dify_stream(data: &[u8]) {
    check(WireFormat::Dify, data);
}
