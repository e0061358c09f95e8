//! The built-in `demo` provider: offline and deterministic, so a fresh
//! checkout chats with no key. It answers the last user message with a short
//! plain-text explanation of Switchboard, streamed word by word like a model;
//! when the demo shop's tools are offered it calls them for the requests the
//! demo walks through ([`shop`]).

mod intent;
mod memory;
mod shop;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use std::time::Duration;
use switchboard_core::model::{estimate_tokens, FinishReason, Role, Usage};
use switchboard_core::provider::{ChatRequest, Provider, ProviderEvent, ProviderStream};
use switchboard_core::tools::ToolCall;

/// The pause between words when the demo runs for people to watch.
pub const DEFAULT_WORD_DELAY: Duration = Duration::from_millis(25);

/// How much of the question is quoted back.
const QUOTE_MAX_CHARS: usize = 200;
const QUOTE_MAX_WORDS: usize = 25;

const RUNTIME: &str = "Switchboard is a self-hosted, multi-tenant AI chat runtime. It streams answers \
over SSE and WebSocket, keeps conversations durable and resumable, and gives each tenant its own origins, \
auth, rate limits and budgets.";

const CONNECT: &str = "To get real answers, set [tenants.provider] kind = \"openai\" with a model and \
api_key_env in the config.";

#[derive(Debug, Clone)]
pub struct DemoProvider {
    model: String,
    word_delay: Duration,
}

impl DemoProvider {
    /// `word_delay` is the pause between words; tests pass zero.
    pub fn new(model: impl Into<String>, word_delay: Duration) -> Self {
        Self { model: model.into(), word_delay }
    }

    /// The full answer to a request (what the streamed deltas add up to).
    pub fn answer(request: &ChatRequest) -> String {
        let question =
            request.history.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
        compose(question)
    }

    /// The estimate reported with the answer: system prompt and history in,
    /// answer out.
    fn usage(request: &ChatRequest, answer: &str) -> Usage {
        let system = request.system_prompt.as_deref().map_or(0, estimate_tokens);
        let prompt =
            request.history.iter().fold(system, |sum, m| sum.saturating_add(estimate_tokens(&m.content)));
        Usage::new(prompt, estimate_tokens(answer), true)
    }
}

#[async_trait]
impl Provider for DemoProvider {
    fn kind(&self) -> &str {
        "demo"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<ProviderStream, switchboard_core::provider::ProviderError> {
        let answer = match memory::reply(&request).or_else(|| shop::reply(&request)) {
            None => Self::answer(&request),
            Some(shop::Reply::Text(text)) => text,
            Some(shop::Reply::Calls(calls)) => return Ok(Self::calls(&request, calls)),
        };
        let usage = Self::usage(&request, &answer);
        let delay = self.word_delay;
        let words =
            stream::iter(split_words(&answer).into_iter().enumerate()).then(move |(i, word)| async move {
                if i > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(ProviderEvent::Delta(word))
            });
        let end =
            stream::iter([Ok(ProviderEvent::Finish(FinishReason::Stop)), Ok(ProviderEvent::Usage(usage))]);
        Ok(words.chain(end).boxed())
    }
}

impl DemoProvider {
    /// A response that ends in tool calls, as the real providers stream one:
    /// the calls whole, then `tool_calls` as the finish reason, then usage.
    fn calls(request: &ChatRequest, calls: Vec<ToolCall>) -> ProviderStream {
        let written: String = calls.iter().map(|c| format!("{}{}", c.name, c.arguments)).collect();
        let usage = Self::usage(request, &written);
        let events = calls
            .into_iter()
            .map(ProviderEvent::ToolCall)
            .chain([ProviderEvent::Finish(FinishReason::ToolCalls), ProviderEvent::Usage(usage)]);
        stream::iter(events.map(Ok)).boxed()
    }
}

/// Splits text into words that each carry the whitespace after them, so the
/// pieces concatenate back to the text exactly.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    let mut seen_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
            continue;
        }
        // Leading whitespace stays with the first word.
        if in_space && seen_word {
            words.push(text[start..i].to_owned());
            start = i;
        }
        in_space = false;
        seen_word = true;
    }
    if start < text.len() {
        words.push(text[start..].to_owned());
    }
    words
}

/// The question on one line, cut to a quotable length.
fn quote(question: &str) -> String {
    let words: Vec<&str> = question.split_whitespace().collect();
    let mut text = words.iter().take(QUOTE_MAX_WORDS).copied().collect::<Vec<_>>().join(" ");
    let mut cut = words.len() > QUOTE_MAX_WORDS;
    if let Some((i, _)) = text.char_indices().nth(QUOTE_MAX_CHARS) {
        text.truncate(i);
        cut = true;
    }
    if cut {
        text.truncate(text.trim_end().len());
        text.push_str("...");
    }
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    Identity,
    Help,
    Shop,
    Greeting,
    Other,
}

fn topic(question: &str) -> Topic {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has_seq = |seq: &[&str]| words.windows(seq.len()).any(|w| w == seq);
    let identity =
        [&["what", "are", "you"][..], &["who", "are", "you"], &["what", "is", "this"], &["switchboard"]];
    if identity.iter().any(|seq| has_seq(seq)) {
        Topic::Identity
    } else if words.contains(&"help") {
        Topic::Help
    } else if ["price", "shop", "buy", "product", "cost"].iter().any(|k| lower.contains(k)) {
        Topic::Shop
    } else if words.first().is_some_and(|w| ["hi", "hello", "hey", "hiya", "howdy", "greetings"].contains(w))
        || has_seq(&["good", "morning"])
        || has_seq(&["good", "afternoon"])
        || has_seq(&["good", "evening"])
    {
        Topic::Greeting
    } else {
        Topic::Other
    }
}

fn compose(question: &str) -> String {
    let q = quote(question);
    if q.is_empty() {
        return format!(
            "Hello! I'm the demo model of Switchboard, and I did not find a question to answer yet. \
             {RUNTIME} A human agent can take over a chat at any time, and merchant tools let the assistant \
             show real product data. {CONNECT}"
        );
    }
    match topic(question) {
        Topic::Greeting => format!(
            "Hello! You wrote: \"{q}\". I'm the demo model of Switchboard, answering offline. {RUNTIME} \
             A human agent can take over a chat at any time, and merchant tools let the assistant look up \
             real products. Ask me what Switchboard is, or how to connect a real model."
        ),
        Topic::Identity => format!(
            "You asked: \"{q}\". I'm not a real language model but Switchboard's built-in demo provider: \
             offline and the same every time, so a fresh checkout works without an API key. {RUNTIME} \
             Agents can take over from the console, and merchant tools fetch verified product data. {CONNECT}"
        ),
        Topic::Help => format!(
            "You asked for help: \"{q}\". Try this: send a message, reload the page while the answer \
             streams, and watch it pick up where it was. {RUNTIME} An agent can take over from the console, \
             and merchant tools answer with real catalog data. {CONNECT}"
        ),
        Topic::Shop => format!(
            "You asked: \"{q}\". I'm the offline demo model, so I don't know real prices or stock. In a \
             shop, Switchboard connects the assistant to merchant tools: it calls the shop's own endpoint, \
             such as search_products, and shows verified product data instead of guesses. {RUNTIME} A human \
             agent can take over whenever a customer needs one."
        ),
        Topic::Other => format!(
            "You asked: \"{q}\". I'm Switchboard's built-in demo model, so I can't really answer that, but I \
             can show how the runtime behaves. {RUNTIME} Human takeover and merchant tools are built in. \
             {CONNECT}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::provider::HistoryMessage;

    fn request(messages: &[(Role, &str)]) -> ChatRequest {
        ChatRequest {
            system_prompt: Some("You are a helpful assistant.".into()),
            history: messages
                .iter()
                .map(|(role, c)| HistoryMessage { role: *role, content: (*c).into() })
                .collect(),
            session_id: uuid::Uuid::nil(),
            subject: "visitor:test".into(),
            conversation_id: None,
            trace_id: String::new(),
            tools: Default::default(),
        }
    }

    async fn run(provider: &DemoProvider, req: ChatRequest) -> Vec<ProviderEvent> {
        provider.stream(req).await.unwrap().map(Result::unwrap).collect().await
    }

    #[tokio::test]
    async fn deltas_add_up_to_the_answer_then_finish_and_estimated_usage() {
        let p = DemoProvider::new("demo", Duration::ZERO);
        let req =
            request(&[(Role::User, "Hi there"), (Role::Assistant, "Hello"), (Role::User, "What is Rust?")]);
        let answer = DemoProvider::answer(&req);
        let events = run(&p, req.clone()).await;
        let n = events.len();
        let text: String = events[..n - 2]
            .iter()
            .map(|e| match e {
                ProviderEvent::Delta(t) => t.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(text, answer);
        assert!(n > 20, "streams word by word");
        assert_eq!(events[n - 2], ProviderEvent::Finish(FinishReason::Stop));
        let prompt = estimate_tokens("You are a helpful assistant.")
            + estimate_tokens("Hi there")
            + estimate_tokens("Hello")
            + estimate_tokens("What is Rust?");
        assert_eq!(events[n - 1], ProviderEvent::Usage(Usage::new(prompt, estimate_tokens(&answer), true)));
        assert_eq!((p.kind(), p.model()), ("demo", "demo"));
    }

    #[tokio::test]
    async fn same_input_same_output() {
        let p = DemoProvider::new("demo", Duration::ZERO);
        let req = request(&[(Role::User, "Tell me a joke")]);
        assert_eq!(run(&p, req.clone()).await, run(&p, req).await);
    }

    #[test]
    fn echoes_the_last_user_message() {
        let req =
            request(&[(Role::User, "first"), (Role::Assistant, "x"), (Role::User, "Can I self-host it?")]);
        assert!(DemoProvider::answer(&req).contains("\"Can I self-host it?\""));
        let long = "word ".repeat(100);
        let answer = compose(&long);
        assert!(answer.contains("word word"));
        assert!(answer.contains("..."));
        let long = "x".repeat(500);
        assert!(compose(&long).contains(&format!("\"{}...\"", "x".repeat(200))));
    }

    #[test]
    fn topics_vary_by_keyword_and_stay_in_length() {
        let long_words = "supercalifragilistic ".repeat(40);
        let short_words = "a ".repeat(200);
        let cases = [
            ("Hello!", Topic::Greeting, "Hello!"),
            ("what are you?", Topic::Identity, "demo provider"),
            ("Who are you", Topic::Identity, "demo provider"),
            ("So what is Switchboard exactly?", Topic::Identity, "self-hosted"),
            ("I need help with my order", Topic::Help, "help"),
            ("What's the price of the red shoes?", Topic::Shop, "merchant tools"),
            ("Do you have a shop?", Topic::Shop, "search_products"),
            ("Explain quantum physics", Topic::Other, "kind = \"openai\""),
            ("", Topic::Other, "kind = \"openai\""),
            (long_words.as_str(), Topic::Other, "..."),
            (short_words.as_str(), Topic::Other, "..."),
        ];
        for (question, expected, needle) in cases {
            assert_eq!(topic(question), expected, "{question}");
            let answer = compose(question);
            let words = answer.split_whitespace().count();
            assert!((40..=120).contains(&words), "{words} words for {question:?}: {answer}");
            assert!(answer.contains(needle), "{answer}");
            assert!(answer.contains("SSE and WebSocket"));
            assert!(!answer.contains(['*', '#', '`']), "plain text: {answer}");
        }
        // The longest quote still fits every variant.
        for prefix in ["hello", "what are you", "help", "price", "tell me", ""] {
            let question = format!("{prefix} {}", "a ".repeat(100));
            let words = compose(&question).split_whitespace().count();
            assert!((40..=120).contains(&words), "{words} words for {prefix:?}");
        }
    }

    #[tokio::test]
    async fn shop_requests_stream_a_tool_call_then_the_tool_calls_finish() {
        use switchboard_core::tools::{ToolContext, ToolSpec};
        let p = DemoProvider::new("demo", Duration::ZERO);
        let offered = ["search_products", "get_product", "add_to_cart", "view_cart"].map(|name| ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: "{}".into(),
        });
        let mut req = request(&[(Role::User, "show me running shoes")]);
        req.tools = ToolContext { offered: offered.to_vec().into(), ..Default::default() };
        let events = run(&p, req).await;
        assert_eq!(events.len(), 3, "{events:?}");
        let ProviderEvent::ToolCall(call) = &events[0] else { panic!("{events:?}") };
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("search_products", r#"{"query":"running shoes"}"#)
        );
        assert_eq!(events[1], ProviderEvent::Finish(FinishReason::ToolCalls));
        assert!(matches!(events[2], ProviderEvent::Usage(_)));
        // Without the shop's tools, the same words get a canned answer.
        let events = run(&p, request(&[(Role::User, "show me running shoes")])).await;
        assert!(events.iter().all(|e| !matches!(e, ProviderEvent::ToolCall(_))));
    }

    #[test]
    fn split_words_keeps_whitespace() {
        assert_eq!(split_words("  a b\n\nc "), ["  a ", "b\n\n", "c "]);
        assert_eq!(split_words(""), Vec::<String>::new());
    }
}
