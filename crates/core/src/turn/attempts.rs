//! Getting an answer out of a tenant's providers (SPEC §13): the primary
//! first, then each fallback; on each, retries of passing failures while no
//! text has reached anyone, with backoff and the vendor's `Retry-After`,
//! within the turn's deadline; a circuit breaker per provider that fails fast
//! while open. Once text was shown the answer belongs to that provider: a
//! failure after it ends the turn with what was said.

use super::run::{Ending, Observed, TurnTask};
use super::AfterFailure;
use crate::provider::{ChatRequest, ProviderError, ProviderEvent};
use crate::upstream::{backoff, Admission, Route};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, Interval};

impl TurnTask {
    /// Asks each route in turn until one answers; also says which route the
    /// ending belongs to (the last one tried when none answered).
    pub(super) async fn answer(
        &self,
        request: &ChatRequest,
        started: Instant,
        observed: &mut Observed,
    ) -> (Ending, &Route) {
        let tenant = &self.msg.tenant;
        // The primary's total timeout bounds the whole turn, fallbacks included.
        let deadline = started + tenant.primary.settings.timeouts.total;
        let every = self.inner.config.checkpoint_every;
        let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (Ending::Failed(ProviderError::Unavailable("no provider".into())), &*tenant.primary);
        for route in tenant.routes() {
            match self.on_route(route, request, deadline, observed, &mut ticker).await {
                Ok(ending) => return (ending, route),
                Err(e) => {
                    tracing::warn!(
                        trace_id = %self.msg.trace_id, provider = route.provider.kind(), error = %e,
                        "provider failed before its first token"
                    );
                    last = (Ending::Failed(e), route);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        last
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
        for attempt in 1.. {
            let admission = route.breaker.admit(self.inner.clock.now());
            if admission == Admission::Rejected {
                self.observe_failure(route, AfterFailure::CircuitOpen);
                return Err(ProviderError::Unavailable(format!(
                    "circuit open for {} {}",
                    route.provider.kind(),
                    route.provider.model()
                )));
            }
            let error = match self.attempt(route, request.clone(), deadline, observed, ticker).await {
                Ending::Failed(e) => e,
                ending @ Ending::Stopped(_) => {
                    if admission == Admission::Trial {
                        route.breaker.abandoned(self.inner.clock.now());
                    }
                    return Ok(ending);
                }
                ending @ Ending::Finished(_) => {
                    route.breaker.succeeded();
                    return Ok(ending);
                }
            };
            route.breaker.failed(self.inner.clock.now());
            if observed.first_token.is_some() {
                return Ok(Ending::Failed(error));
            }
            let wait = backoff(attempt, error.retry_after(), &mut rand::thread_rng());
            waited += wait;
            let hopeless = waited > policy.max_wait || Instant::now() + wait >= deadline;
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
        unreachable!("the attempts loop only ends by returning")
    }

    fn observe_failure(&self, route: &Route, then: AfterFailure) {
        if let Some(observer) = &self.inner.config.observer {
            observer.provider_failed(route.provider.kind(), then);
        }
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
        // What a failed attempt said besides text is not the answer's.
        observed.usage = None;
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
        loop {
            let next = tokio::time::timeout_at(next_by, upstream.next());
            // Returning drops the upstream stream, which closes its connection at once.
            let item = match self.guarded(next, ticker).await {
                None => return self.stopped(),
                Some(Err(_)) if observed.first_token.is_none() => {
                    return Ending::Failed(timeout("first token"))
                }
                Some(Err(_)) if next_by == deadline => return Ending::Failed(timeout("total")),
                Some(Err(_)) => return Ending::Failed(timeout("idle")),
                Some(Ok(item)) => item,
            };
            match item {
                None => return Ending::Finished(finish.unwrap_or(crate::model::FinishReason::Stop)),
                Some(Err(e)) => return Ending::Failed(e),
                Some(Ok(ProviderEvent::Conversation(id))) => self.keep_conversation_id(route, id),
                Some(Ok(event)) => {
                    let had_text = observed.first_token.is_some();
                    self.apply(event, observed, &mut finish);
                    if observed.first_token.is_some() {
                        if !had_text {
                            route.breaker.succeeded();
                        }
                        next_by = (Instant::now() + timeouts.idle).min(deadline);
                    }
                }
            }
        }
    }

    /// Awaits `fut` while the answer stays checkpointed (its lease renewed);
    /// `None` when the turn is stopped first.
    async fn guarded<F: Future>(&self, fut: F, ticker: &mut Interval) -> Option<F::Output> {
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
        match self.inner.store.conversation_id(self.msg.session_id, key).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(session_id = %self.msg.session_id, error = %e, "could not read the provider's conversation id");
                None
            }
        }
    }

    /// Stores a vendor's new conversation id without holding up the answer.
    fn keep_conversation_id(&self, route: &Route, id: String) {
        let Some(key) = route.provider.conversation_key() else { return };
        let (store, key) = (Arc::clone(&self.inner.store), key.to_owned());
        let (tenant_id, session_id) = (self.msg.tenant.id.clone(), self.msg.session_id);
        self.inner.tracker.spawn(async move {
            if let Err(e) = store.set_conversation_id(&tenant_id, session_id, &key, &id).await {
                tracing::warn!(%session_id, error = %e, "could not keep the provider's conversation id");
            }
        });
    }
}

fn timeout(what: &str) -> ProviderError {
    ProviderError::Timeout(format!("{what} timeout"))
}
