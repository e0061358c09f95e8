//! Getting an answer out of a tenant's providers (SPEC §13): the primary
//! first, then each fallback; on each, retries of passing failures while no
//! text has reached anyone, with backoff and the vendor's `Retry-After`,
//! within the turn's deadline; a circuit breaker per provider that fails fast
//! while open. Once text was shown the answer belongs to that provider: a
//! failure after it ends the turn with what was said.

use super::run::{Ending, Observed, TurnTask};
use super::AfterFailure;
use crate::provider::{ChatRequest, ProviderError, ProviderEvent, ProviderStream};
use crate::trace::SPANS;
use crate::upstream::{backoff, Admission, Route};
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, Interval};
use tracing::Instrument;

impl TurnTask {
    /// Asks each route in turn until one answers; also says which route the
    /// ending belongs to (the last one tried when none answered).
    pub(super) async fn answer(
        &self,
        request: &ChatRequest,
        observed: &mut Observed,
        ticker: &mut Interval,
    ) -> (Ending, &Route) {
        let tenant = &self.msg.tenant;
        // The primary's total timeout bounds the whole turn, fallbacks and
        // tool rounds included.
        let deadline = observed.started + tenant.primary.settings.timeouts.total;
        let mut route = &*tenant.primary;
        let mut fallbacks = tenant.fallbacks.iter();
        loop {
            let error = match self.on_route(route, request, deadline, observed, ticker).await {
                Ok(ending) => return (ending, route),
                Err(e) => e,
            };
            match fallbacks.next() {
                None => return (Ending::Failed(error), route),
                // Fallbacks were left, but not the time to ask them.
                Some(_) if Instant::now() >= deadline => return (Ending::Failed(timeout("total")), route),
                Some(next) => {
                    tracing::info!(
                        trace_id = %self.msg.trace_id, tenant = %tenant.id, provider = route.provider.kind(),
                        next = next.provider.kind(), error = %error, "provider failed before its first token; trying the next"
                    );
                    if let Some(observer) = &self.inner.config.observer {
                        observer.fell_back(route.provider.kind(), next.provider.kind());
                    }
                    route = next;
                }
            }
        }
    }

    /// One route with its retries. `Err`: it failed before any text, and the
    /// next route may be tried.
    async fn on_route(
        &self,
        route: &Route,
        request: &ChatRequest,
        deadline: Instant,
        observed: &mut Observed,
        ticker: &mut Interval,
    ) -> Result<Ending, ProviderError> {
        let mut request = request.clone();
        // A fallback may speak to its model in its own words.
        if let Some(prompt) = &route.settings.system_prompt {
            request.system_prompt = Some(prompt.clone());
        }
        if let Some(key) = route.provider.conversation_key() {
            request.conversation_id = self.conversation_id(key).await;
        }
        let policy = route.settings.retry;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let admission = route.breaker.admit(self.inner.clock.now());
            if admission == Admission::Rejected {
                self.observe_failure(route, AfterFailure::CircuitOpen);
                return Err(ProviderError::Unavailable(format!(
                    "circuit open for {} {}",
                    route.provider.kind(),
                    route.provider.model()
                )));
            }
            let error = match self
                .traced_attempt(route, request.clone(), deadline, observed, ticker, attempt)
                .await
            {
                Ending::Failed(e) => e,
                ending @ Ending::Stopped(_) => {
                    if let (Admission::Trial(trial), None) = (admission, observed.first_token) {
                        route.breaker.abandoned(trial, self.inner.clock.now());
                    }
                    return Ok(ending);
                }
                ending @ Ending::Finished(_) => {
                    self.answered(route);
                    return Ok(ending);
                }
            };
            // Out of the turn's time is not the provider's fault, nor is a
            // refusal of this one request.
            let counts = error.is_health_failure() && !(error.is_timeout() && Instant::now() >= deadline);
            let open = if counts {
                self.count_failure(route, &error)
            } else {
                if let Admission::Trial(trial) = admission {
                    route.breaker.abandoned(trial, self.inner.clock.now());
                }
                false
            };
            if observed.first_token.is_some() {
                return Ok(Ending::Failed(error));
            }
            // What a failed attempt said besides text is not the answer's.
            observed.usage = None;
            observed.calls.clear();
            let wait = backoff(attempt, error.retry_after(), &mut rand::thread_rng());
            waited += wait;
            let hopeless = open || waited > policy.max_wait || Instant::now() + wait >= deadline;
            if !error.retryable() || attempt >= policy.attempts || hopeless {
                self.observe_failure(route, AfterFailure::GaveUp);
                return Err(error);
            }
            self.observe_failure(route, AfterFailure::Retried);
            tracing::info!(
                trace_id = %self.msg.trace_id, provider = route.provider.kind(), attempt, wait_ms = wait.as_millis() as u64,
                error = %error, "provider failed before its first token; trying again"
            );
            if self.guarded(tokio::time::sleep(wait), ticker).await.is_none() {
                return Ok(self.stopped());
            }
        }
    }

    /// The provider answered (its first text, or a whole answer).
    fn answered(&self, route: &Route) {
        if route.breaker.succeeded() {
            tracing::info!(tenant = %self.msg.tenant.id, provider = route.provider.kind(), model = route.provider.model(), "provider answers again: circuit closed");
        }
    }

    /// Counts a failure against the provider's breaker; true if its circuit
    /// is open now.
    fn count_failure(&self, route: &Route, error: &ProviderError) -> bool {
        let open = route.breaker.failed(self.inner.clock.now());
        if open {
            tracing::warn!(
                trace_id = %self.msg.trace_id, tenant = %self.msg.tenant.id, provider = route.provider.kind(),
                model = route.provider.model(), open_secs = route.settings.breaker.open_for.as_secs(), error = %error,
                "circuit open: calls fail fast until a trial call answers"
            );
        }
        open
    }

    fn observe_failure(&self, route: &Route, then: AfterFailure) {
        if let Some(observer) = &self.inner.config.observer {
            observer.provider_failed(route.provider.kind(), then);
        }
    }

    /// [`Self::attempt`] in a span of its own, exported with the turn's
    /// (`crate::trace::SPANS`: nothing when spans are not exported): the
    /// vendor's `traceparent` names it as the parent.
    async fn traced_attempt(
        &self,
        route: &Route,
        request: ChatRequest,
        deadline: Instant,
        observed: &mut Observed,
        ticker: &mut Interval,
        attempt: u32,
    ) -> Ending {
        let span = tracing::info_span!(
            target: SPANS,
            "provider",
            otel.kind = "client",
            provider = route.provider.kind(),
            model = route.provider.model(),
            attempt,
            otel.status_code = tracing::field::Empty,
        );
        let ending = self.attempt(route, request, deadline, observed, ticker).instrument(span.clone()).await;
        if matches!(ending, Ending::Failed(_)) {
            span.record("otel.status_code", "error");
        }
        ending
    }

    /// One call of one provider, streamed into the live text until it ends.
    async fn attempt(
        &self,
        route: &Route,
        request: ChatRequest,
        deadline: Instant,
        observed: &mut Observed,
        ticker: &mut Interval,
    ) -> Ending {
        let timeouts = route.settings.timeouts;
        let mut finish = None;
        let first_deadline = (Instant::now() + timeouts.first_token).min(deadline);
        let opened = tokio::time::timeout_at(first_deadline, route.provider.stream(request));
        let mut upstream = match self.guarded(opened, ticker).await {
            None => return self.stopped(),
            Some(Ok(Ok(upstream))) => upstream,
            Some(Ok(Err(e))) => return Ending::Failed(e),
            Some(Err(_)) => return Ending::Failed(timeout("first token")),
        };
        let mut next_by = first_deadline;
        // An item already taken from the stream by `join_ready`, next in line.
        let mut ready = None;
        // When the last item came: text on its heels is part of a burst.
        let mut last_came = Instant::now();
        loop {
            let item = match ready.take() {
                Some(item) => item,
                None => {
                    let next = tokio::time::timeout_at(next_by, upstream.next());
                    // Returning drops the upstream stream, which closes its connection at once.
                    match self.guarded(next, ticker).await {
                        None => return self.stopped(),
                        Some(Err(_)) if observed.first_token.is_none() => {
                            return Ending::Failed(timeout("first token"))
                        }
                        Some(Err(_)) if next_by == deadline => return Ending::Failed(timeout("total")),
                        Some(Err(_)) => return Ending::Failed(timeout("idle")),
                        Some(Ok(item)) => item,
                    }
                }
            };
            let now = Instant::now();
            let came_after = now - last_came;
            last_came = now;
            match item {
                None => return Ending::Finished(finish.unwrap_or(crate::model::FinishReason::Stop)),
                Some(Err(e)) => return Ending::Failed(e),
                Some(Ok(ProviderEvent::Conversation(id))) => self.keep_conversation_id(route, &id).await,
                Some(Ok(mut event)) => {
                    let had_text = observed.first_token.is_some();
                    // The first text goes out alone, at once; later text takes
                    // along what already came with it.
                    if let (true, ProviderEvent::Delta(text)) = (had_text, &mut event) {
                        ready = join_ready(text, &mut upstream, came_after < BURST).await;
                    }
                    let published = self.apply(event, observed, &mut finish);
                    if observed.first_token.is_some() {
                        if !had_text {
                            self.answered(route);
                        }
                        next_by = (Instant::now() + timeouts.idle).min(deadline);
                    }
                    if published && !had_text {
                        // Let the subscribers just woken write this text out
                        // before more is parsed: the first text would otherwise
                        // wait for the rest of its read.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// Awaits `fut` while the answer stays checkpointed (its lease renewed);
    /// `None` when the turn is stopped first.
    pub(super) async fn guarded<F: Future>(&self, fut: F, ticker: &mut Interval) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                _ = self.live.cancelled() => return None,
                _ = ticker.tick() => self.checkpoint().await,
                out = &mut fut => return Some(out),
            }
        }
    }

    /// The vendor's conversation id this session keeps under `key`; a failed
    /// read starts a new vendor conversation rather than failing the turn.
    async fn conversation_id(&self, key: &str) -> Option<String> {
        match self.inner.store.conversation_id(&self.msg.tenant.id, self.msg.session_id, key).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(session_id = %self.msg.session_id, error = %e, "could not read the provider's conversation id");
                None
            }
        }
    }

    /// Stores a vendor's new conversation id before reading on, so the
    /// session's next turn finds it (once per vendor conversation).
    async fn keep_conversation_id(&self, route: &Route, id: &str) {
        let Some(key) = route.provider.conversation_key() else { return };
        let (tenant_id, session_id) = (&self.msg.tenant.id, self.msg.session_id);
        if let Err(e) = self.inner.store.set_conversation_id(tenant_id, session_id, key, id).await {
            tracing::warn!(%session_id, error = %e, "could not keep the provider's conversation id");
        }
    }
}

/// At most this much text (bytes) is joined into one delta.
const JOINED_TEXT: usize = 4096;
/// Text that comes within this of the item before it is part of a burst (a
/// read that held several chunks); a model's tokens come far apart.
const BURST: Duration = Duration::from_millis(1);

/// Joins to `text` the deltas that already came (chunks of one read):
/// subscribers get one event, one frame and one write for them instead of
/// one each, and none of them waits for text yet to come. Stops at
/// [`JOINED_TEXT`] bytes; returns the first item that is not a delta, which
/// the caller takes next.
///
/// hyper hands a body over one chunk at a time, each after its connection's
/// task has run, so the rest of a read is not ready at once: in a `burst`,
/// when nothing is ready, this yields once to let that task pass it on
/// (nothing ready after that means nothing came). Text that came after a
/// pause goes out without that yield, which would delay it for nothing.
async fn join_ready(
    text: &mut String,
    upstream: &mut ProviderStream,
    burst: bool,
) -> Option<Option<Result<ProviderEvent, ProviderError>>> {
    let mut may_yield = burst;
    while text.len() < JOINED_TEXT {
        match upstream.next().now_or_never() {
            Some(Some(Ok(ProviderEvent::Delta(more)))) => {
                text.push_str(&more);
                may_yield = true;
            }
            Some(other) => return Some(other),
            None if !may_yield => return None,
            None => {
                tokio::task::yield_now().await;
                may_yield = false;
            }
        }
    }
    None
}

fn timeout(what: &str) -> ProviderError {
    ProviderError::Timeout(format!("{what} timeout"))
}
