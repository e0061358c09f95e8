//! `ScriptedProvider`: a `Provider` that answers each call from a script of
//! replies (a stream of steps, a refusal, or an opening that never comes),
//! with waits on tokio's clock, so a paused test moves through retries,
//! timeouts and checkpoints in no time. It records every call (with its
//! request and when it came) and whether each stream ran to its end or was
//! dropped by the engine before it.

use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use switchboard_core::model::FinishReason;
use switchboard_core::provider::{ChatRequest, Provider, ProviderError, ProviderEvent, ProviderStream};
use tokio::time::Instant;

/// One piece of a scripted answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// Hands the engine this event.
    Event(ProviderEvent),
    /// Waits, on tokio's clock, before the next step.
    Wait(Duration),
    /// Ends the stream with this error.
    Fail(ProviderError),
    /// Never yields again: a stalled upstream.
    Stall,
}

impl Step {
    pub fn delta(text: &str) -> Self {
        Self::Event(ProviderEvent::Delta(text.to_owned()))
    }

    pub fn wait_ms(ms: u64) -> Self {
        Self::Wait(Duration::from_millis(ms))
    }
}

#[derive(Debug, Clone)]
enum Opening {
    Stream(Vec<Step>),
    Refuse(ProviderError),
    Never,
}

/// How one call is answered.
#[derive(Debug, Clone)]
pub struct Reply {
    opens_after: Duration,
    opening: Opening,
}

impl Reply {
    /// A stream of these steps.
    pub fn steps(steps: impl IntoIterator<Item = Step>) -> Self {
        Self { opens_after: Duration::ZERO, opening: Opening::Stream(steps.into_iter().collect()) }
    }

    /// The pieces at once, then `stop`.
    pub fn text(pieces: &[&str]) -> Self {
        let deltas = pieces.iter().map(|p| Step::delta(p));
        Self::steps(deltas.chain([Step::Event(ProviderEvent::Finish(FinishReason::Stop))]))
    }

    /// Each piece after `interval`, then `stop`.
    pub fn paced(pieces: &[&str], interval: Duration) -> Self {
        let paced = pieces.iter().flat_map(|p| [Step::Wait(interval), Step::delta(p)]);
        Self::steps(paced.chain([Step::Event(ProviderEvent::Finish(FinishReason::Stop))]))
    }

    /// Refused before any answer (what `Provider::stream` returns).
    pub fn error(error: ProviderError) -> Self {
        Self { opens_after: Duration::ZERO, opening: Opening::Refuse(error) }
    }

    /// An HTTP refusal, with the vendor's `Retry-After` if given.
    pub fn refused(status: u16, retry_after: Option<Duration>) -> Self {
        Self::error(ProviderError::Refused {
            status,
            retry_after,
            should_retry: None,
            message: format!("scripted {status}"),
        })
    }

    /// A 500 without a hint.
    pub fn server_error() -> Self {
        Self::refused(500, None)
    }

    /// A 429 asking to wait `retry_after`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::refused(429, Some(retry_after))
    }

    /// A call that never answers, not even with headers.
    pub fn never_opens() -> Self {
        Self { opens_after: Duration::ZERO, opening: Opening::Never }
    }

    /// The same reply, given only after `delay`.
    pub fn opening_after(mut self, delay: Duration) -> Self {
        self.opens_after = delay;
        self
    }
}

/// One call the engine made.
#[derive(Debug, Clone)]
pub struct Call {
    /// Across every scripted provider of the process, in call order (to tell
    /// which of several providers was called first at the same instant).
    pub ordinal: u64,
    pub at: Instant,
    pub request: ChatRequest,
}

static ORDINAL: AtomicU64 = AtomicU64::new(0);

struct Script {
    queued: VecDeque<Reply>,
    /// Used once the queue is empty.
    otherwise: Reply,
    calls: Vec<Call>,
}

#[derive(Default)]
struct Counters {
    ended: AtomicUsize,
    dropped: AtomicUsize,
}

pub struct ScriptedProvider {
    kind: String,
    model: String,
    conversation_key: Option<String>,
    script: Mutex<Script>,
    counters: Arc<Counters>,
}

impl ScriptedProvider {
    /// A provider reporting `kind` and `model` that answers `ok` to every
    /// call until told otherwise.
    pub fn new(kind: &str, model: &str) -> Self {
        let script = Script { queued: VecDeque::new(), otherwise: Reply::text(&["ok"]), calls: Vec::new() };
        Self {
            kind: kind.to_owned(),
            model: model.to_owned(),
            conversation_key: None,
            script: Mutex::new(script),
            counters: Arc::default(),
        }
    }

    /// Queues `reply` for the next unanswered call.
    pub fn then(self, reply: Reply) -> Self {
        self.push(reply);
        self
    }

    /// Answers every call past the queue with `reply`.
    pub fn always(self, reply: Reply) -> Self {
        self.set_otherwise(reply);
        self
    }

    /// Keeps the vendor's conversation id under `key` (as Dify does).
    pub fn with_conversation_key(mut self, key: &str) -> Self {
        self.conversation_key = Some(key.to_owned());
        self
    }

    pub fn push(&self, reply: Reply) {
        self.lock().queued.push_back(reply);
    }

    pub fn set_otherwise(&self, reply: Reply) {
        self.lock().otherwise = reply;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn call_count(&self) -> usize {
        self.lock().calls.len()
    }

    /// Streams that ran to their scripted end (an answer or a failure).
    pub fn ended(&self) -> usize {
        self.counters.ended.load(Ordering::SeqCst)
    }

    /// Streams the engine dropped before their scripted end (the connection
    /// a real client would close).
    pub fn dropped(&self) -> usize {
        self.counters.dropped.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Provider for ScriptedProvider {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn conversation_key(&self) -> Option<&str> {
        self.conversation_key.as_deref()
    }

    async fn stream(&self, request: ChatRequest) -> Result<ProviderStream, ProviderError> {
        let reply = {
            let mut script = self.lock();
            let ordinal = ORDINAL.fetch_add(1, Ordering::SeqCst);
            script.calls.push(Call { ordinal, at: Instant::now(), request });
            match script.queued.pop_front() {
                Some(reply) => reply,
                None => script.otherwise.clone(),
            }
        };
        if !reply.opens_after.is_zero() {
            tokio::time::sleep(reply.opens_after).await;
        }
        match reply.opening {
            Opening::Stream(steps) => Ok(playback(steps, self.counters.clone())),
            Opening::Refuse(error) => Err(error),
            Opening::Never => std::future::pending().await,
        }
    }
}

/// A stream's script as it plays; counts, when dropped, whether it ended.
struct Playback {
    steps: VecDeque<Step>,
    counters: Arc<Counters>,
    ended: bool,
}

impl Playback {
    /// Nothing follows: the script ran to its end.
    fn end(&mut self) {
        self.steps.clear();
        self.ended = true;
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        let counter = if self.ended { &self.counters.ended } else { &self.counters.dropped };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn playback(steps: Vec<Step>, counters: Arc<Counters>) -> ProviderStream {
    let state = Playback { steps: steps.into(), counters, ended: false };
    futures_util::stream::unfold(state, |mut p| async move {
        loop {
            match p.steps.pop_front() {
                None => {
                    p.end();
                    return None;
                }
                Some(Step::Wait(d)) => tokio::time::sleep(d).await,
                Some(Step::Stall) => std::future::pending::<()>().await,
                Some(Step::Event(event)) => return Some((Ok(event), p)),
                Some(Step::Fail(error)) => {
                    p.end();
                    return Some((Err(error), p));
                }
            }
        }
    })
    .boxed()
}
