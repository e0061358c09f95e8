//! The body of a running turn: it owns the provider stream, the timeouts, the
//! checkpoint timer and the publishing of the turn's events, and it always
//! writes the answer's final state, whatever happens to the client.

use super::live::{LiveTurn, StopReason};
use super::{Checkpointed, Inner, SendMessage, TurnReport};
use crate::error::ErrorCode;
use crate::events::{ErrorBody, SessionEvent, StreamEnd, Who};
use crate::model::{estimate_tokens, FinishReason, Latency, Message, MessageStatus, Role, TurnMeta, Usage};
use crate::provider::{ChatRequest, HistoryMessage, ProviderError, ProviderEvent};
use crate::store::{Checkpoint, Finish};
use crate::tools::{ToolCall, ToolChoice, ToolContext, ToolRound};
use crate::usage::{cost_micro_usd, UsageRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

pub(super) struct TurnTask {
    pub inner: Arc<Inner>,
    pub msg: SendMessage,
    pub live: Arc<LiveTurn>,
    pub user: Message,
    pub assistant: Message,
    pub history: Vec<Message>,
    /// The budget reservation this turn settles when it ends.
    pub reservation: Option<uuid::Uuid>,
    /// The answer's tool calls so far, stored with it (`tools.rs`); shared
    /// with the product checks that update them (`verify.rs`).
    pub tools: Arc<std::sync::Mutex<Vec<crate::tools::ToolCallRecord>>>,
    /// Product checks still running (`verify.rs`).
    pub checks: super::verify::Checks,
    /// The model asked for a person, with this reason: the session waits
    /// for an agent once the answer is stored (`tools.rs`).
    pub handoff: std::sync::Mutex<Option<Option<String>>>,
}

/// How the provider part of a turn ended.
pub(super) enum Ending {
    Finished(FinishReason),
    Stopped(StopReason),
    Failed(ProviderError),
}

/// What the provider said besides text, and when text first came.
pub(super) struct Observed {
    pub started: Instant,
    pub usage: Option<Usage>,
    pub first_token: Option<Duration>,
    /// The tool calls of the response being read.
    pub calls: Vec<ToolCall>,
}

impl TurnTask {
    pub async fn run(self) {
        let session = self.msg.session_id;
        let started = Instant::now();
        if let Some(observer) = &self.inner.config.observer {
            observer.started(&self.msg.tenant.id);
        }
        self.publish(SessionEvent::Message(self.user.clone()));
        self.publish(SessionEvent::Typing { who: Who::Assistant, active: true });
        self.publish(SessionEvent::StreamStart {
            turn_id: self.live.turn_id,
            seq: self.assistant.seq,
            user_seq: self.user.seq,
        });
        let mut request = self.request().await;
        let mut observed = Observed { started, usage: None, first_token: None, calls: Vec::new() };
        let every = self.inner.config.checkpoint_every;
        let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What earlier rounds used, and where this round's text starts.
        let mut used: Option<Usage> = None;
        let mut round_start = 0;
        let mut rounds: Vec<ToolRound> = Vec::new();
        // Each round is one response of the model; one that ends in tool
        // calls is followed by another, with their results (SPEC §16). A
        // turn without tools goes round once and copies nothing here.
        let (ending, route) = loop {
            let (ending, route) = self.answer(&request, &mut observed, &mut ticker).await;
            let calls = std::mem::take(&mut observed.calls);
            let tooling = match (&ending, &self.msg.tenant.tools) {
                (Ending::Finished(_), Some(tooling))
                    if !calls.is_empty() && request.tools.choice == ToolChoice::Auto =>
                {
                    tooling
                }
                _ => break (ending, route),
            };
            let text = self.live.snapshot().text;
            let said = text.get(round_start..).unwrap_or_default().to_owned();
            round_start = text.len();
            used = Some(add_usage(used, round_usage(&mut observed, &request, &said)));
            let Some(results) = self.run_round(tooling, &calls, &mut ticker).await else {
                break (self.stopped(), route);
            };
            rounds.push(ToolRound { text: said, calls, results });
            request.tools.rounds = rounds.clone().into();
            if rounds.len() >= usize::try_from(tooling.max_rounds).unwrap_or(usize::MAX) {
                request.tools.choice = ToolChoice::None;
            }
        };
        // Every event of the turn before its end (SPEC §16).
        self.settle_checks(&mut ticker).await;
        let text = self.live.snapshot().text;
        let last = round_usage(&mut observed, &request, text.get(round_start..).unwrap_or_default());
        let usage = add_usage(used, last);
        let latency = Latency {
            first_token: observed.first_token.map(|d| d.as_millis() as u64),
            total: started.elapsed().as_millis() as u64,
        };
        let (status, finish_reason, error_code) = match &ending {
            Ending::Finished(reason) => (MessageStatus::Complete, Some(*reason), None),
            Ending::Stopped(StopReason::Shutdown) => (MessageStatus::Interrupted, None, None),
            // Kept as `aborted`; the client is told why with a `tenant.disabled` error.
            Ending::Stopped(StopReason::TenantDisabled) => {
                (MessageStatus::Aborted, Some(FinishReason::Aborted), Some(ErrorCode::TenantDisabled))
            }
            Ending::Stopped(_) => (MessageStatus::Aborted, Some(FinishReason::Aborted), None),
            Ending::Failed(e) => (MessageStatus::Error, None, Some(error_code_of(e))),
        };
        if let Ending::Failed(e) = &ending {
            tracing::warn!(trace_id = %self.msg.trace_id, %session, error = %e, "provider failed during a turn");
        }
        let provider = &route.provider;
        let meta = TurnMeta {
            usage: Some(usage),
            latency_ms: Some(latency),
            finish_reason,
            provider: Some(provider.kind().to_owned()),
            model: Some(provider.model().to_owned()),
            error_code: error_code.map(|c| c.as_str().to_owned()),
        };
        let now = self.inner.clock.now();
        let event =
            turn_event(&self.msg.tenant, session, self.live.turn_id, self.assistant.seq, &meta, status, now);
        let finish = Finish {
            event,
            tenant_id: self.msg.tenant.id.clone(),
            session_id: session,
            seq: self.assistant.seq,
            content: text.clone(),
            status,
            token_count: i64::from(usage.completion_tokens),
            meta: meta.clone(),
            now,
            tools: self.tool_records(),
            usage: Some(UsageRecord {
                subject: self.msg.subject.to_string(),
                provider: provider.kind().to_owned(),
                model: provider.model().to_owned(),
                usage,
                cost_micro_usd: cost_micro_usd(
                    u64::from(usage.prompt_tokens),
                    u64::from(usage.completion_tokens),
                    self.inner.config.prices.get(provider.model()),
                ),
                first_token_ms: latency.first_token,
                total_ms: latency.total,
                reservation: self.reservation,
            }),
        };
        self.write_finish(&finish).await;
        // Before the end is published: the visitor's next message already
        // finds the session waiting.
        let handoff_note = self.hand_off().await;
        if let Some(observer) = &self.inner.config.observer {
            observer.finished(&TurnReport {
                tenant_id: &self.msg.tenant.id,
                provider: provider.kind(),
                model: provider.model(),
                usage,
                status,
                error: error_code,
                first_token: observed.first_token,
                total: started.elapsed(),
            });
        }
        self.inner.live.remove(&self.live);
        let mut message = self.assistant.clone();
        message.content = text;
        message.status = status;
        message.token_count = finish.token_count;
        message.meta = Some(meta);
        message.tools = finish.tools.iter().map(crate::tools::ToolCallRecord::visible).collect();
        message.tool_calls.clone_from(&finish.tools);
        let end = Arc::new(final_event(message.clone(), &self.msg.trace_id));
        let ended_in_error = matches!(*end, SessionEvent::Error { .. });
        self.live.ended_with(end.clone());
        self.inner.bus.publish(self.msg.session_id, end);
        if ended_in_error {
            // Session subscribers learn the stored final state (with its seq,
            // their resume cursor) after the error itself.
            self.publish(SessionEvent::Message(message));
        }
        if let Some(note) = handoff_note {
            self.publish(SessionEvent::Message(note));
        }
    }

    /// Publishes text as it comes and notes the rest; true when it
    /// published something.
    pub(super) fn apply(
        &self,
        event: ProviderEvent,
        observed: &mut Observed,
        finish: &mut Option<FinishReason>,
    ) -> bool {
        let started = observed.started;
        let turn_id = self.live.turn_id;
        let seq = self.assistant.seq;
        match event {
            ProviderEvent::Delta(text) if text.is_empty() => false,
            ProviderEvent::Delta(text) => {
                observed.first_token.get_or_insert_with(|| started.elapsed());
                let (revision, offset) = self.live.append(&text);
                self.publish(SessionEvent::StreamDelta { turn_id, seq, revision, offset, text });
                true
            }
            ProviderEvent::Replace(text) => {
                if !text.is_empty() {
                    observed.first_token.get_or_insert_with(|| started.elapsed());
                }
                let revision = self.live.replace(&text);
                self.publish(SessionEvent::StreamReplace { turn_id, seq, revision, text });
                true
            }
            ProviderEvent::Usage(usage) => {
                observed.usage = Some(usage);
                false
            }
            ProviderEvent::Finish(reason) => {
                *finish = Some(reason);
                false
            }
            // Kept by the caller, which knows the provider.
            ProviderEvent::Conversation(_) => false,
            // Run by the caller once the response ends.
            ProviderEvent::ToolCall(call) => {
                observed.calls.push(call);
                false
            }
            ProviderEvent::RemoteTool(tool) => {
                self.remote_tool(tool);
                false
            }
        }
    }

    pub(super) fn stopped(&self) -> Ending {
        Ending::Stopped(self.live.stop_reason().unwrap_or(StopReason::ClientGone))
    }

    pub(super) async fn checkpoint(&self) {
        let cp = Checkpoint {
            tenant_id: self.msg.tenant.id.clone(),
            session_id: self.msg.session_id,
            seq: self.assistant.seq,
            content: self.live.snapshot().text,
            node_id: self.inner.config.node_id.clone(),
            lease_until: self.inner.clock.now() + self.inner.config.lease,
            tools: self.tool_records(),
        };
        let outcome = match self.inner.store.checkpoint(&cp).await {
            Ok(true) => Checkpointed::Written,
            Ok(false) => {
                tracing::warn!(session_id = %cp.session_id, "checkpoint found the answer no longer streaming");
                Checkpointed::Stale
            }
            Err(e) => {
                tracing::warn!(session_id = %cp.session_id, error = %e, "checkpoint failed");
                Checkpointed::Failed
            }
        };
        if let Some(observer) = &self.inner.config.observer {
            observer.checkpointed(outcome);
        }
    }

    /// The final write must land: retry a few times before leaving it to the
    /// lease reaper.
    async fn write_finish(&self, finish: &Finish) {
        for attempt in 0..3u32 {
            match self.inner.store.finish_message(finish).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(session_id = %finish.session_id, attempt, error = %e, "could not store the final answer");
                    tokio::time::sleep(Duration::from_millis(100 * 5u64.pow(attempt))).await;
                }
            }
        }
    }

    async fn request(&self) -> ChatRequest {
        let history = self
            .history
            .iter()
            .filter(|m| matches!(m.role, Role::User | Role::Assistant | Role::Agent) && !m.content.is_empty())
            .map(|m| HistoryMessage { role: m.role, content: m.content.clone() })
            .collect();
        let system_prompt = self.msg.tenant.primary.settings.system_prompt.clone();
        let (system_prompt, tools) = match &self.msg.tenant.tools {
            Some(tooling) => {
                let memory = tooling.memory && matches!(self.msg.subject, crate::ids::Subject::User(_));
                let system_prompt =
                    if memory { self.with_memory(system_prompt).await } else { system_prompt };
                let offered = offered(tooling, memory).await;
                (system_prompt, ToolContext { offered, ..ToolContext::default() })
            }
            None => (system_prompt, ToolContext::default()),
        };
        ChatRequest {
            system_prompt,
            history,
            session_id: self.msg.session_id,
            subject: self.msg.subject.to_string(),
            conversation_id: None,
            tools,
            trace_id: self.msg.trace_id.clone(),
        }
    }

    fn publish(&self, event: SessionEvent) {
        self.inner.bus.publish(self.msg.session_id, Arc::new(event));
    }
}

fn estimate_prompt(request: &ChatRequest) -> u32 {
    let system = request.system_prompt.as_deref().map_or(0, estimate_tokens);
    request.history.iter().fold(system, |sum, m| sum.saturating_add(estimate_tokens(&m.content)))
}

/// The tenant's tools, and the built-in ones it lists (`memory`: the
/// memory's, for a user of a tenant with `memory = true`).
async fn offered(tooling: &crate::tools::Tooling, memory: bool) -> std::sync::Arc<[crate::tools::ToolSpec]> {
    let tools = tooling.toolbox.offered().await;
    if !tooling.handoff && !memory {
        return tools;
    }
    let handoff = tooling.handoff.then(crate::tools::handoff_spec);
    let memory = memory.then(crate::tools::memory_specs).into_iter().flatten();
    tools.iter().cloned().chain(handoff).chain(memory).collect()
}

/// What one response used: the provider's count, else an estimate from the
/// request and the text it said.
fn round_usage(observed: &mut Observed, request: &ChatRequest, said: &str) -> Usage {
    observed.usage.take().unwrap_or_else(|| Usage::new(estimate_prompt(request), estimate_tokens(said), true))
}

/// Usage of a turn's rounds so far and one more.
fn add_usage(sum: Option<Usage>, round: Usage) -> Usage {
    let Some(a) = sum else { return round };
    Usage::new(
        a.prompt_tokens.saturating_add(round.prompt_tokens),
        a.completion_tokens.saturating_add(round.completion_tokens),
        a.estimated || round.estimated,
    )
}

fn error_code_of(e: &ProviderError) -> ErrorCode {
    if e.is_timeout() {
        ErrorCode::LlmTimeout
    } else {
        ErrorCode::LlmUnavailable
    }
}

/// The event that tells subscribers how the answer ended.
pub(super) fn final_event(message: Message, trace_id: &str) -> SessionEvent {
    let meta = message.meta.clone().unwrap_or_default();
    let error_code = meta.error_code.as_deref().and_then(ErrorCode::parse);
    match (message.status, error_code) {
        (MessageStatus::Error, code) => {
            let code = code.unwrap_or(ErrorCode::LlmUnavailable);
            SessionEvent::Error { turn_id: message.turn_id, error: error_body(code, trace_id) }
        }
        // Stopped by a kill switch: the stream ends with that refusal.
        (MessageStatus::Aborted, Some(code @ ErrorCode::TenantDisabled)) => {
            SessionEvent::Error { turn_id: message.turn_id, error: error_body(code, trace_id) }
        }
        (MessageStatus::Complete | MessageStatus::Aborted, _) => {
            SessionEvent::StreamEnd(Box::new(StreamEnd {
                turn_id: message.turn_id.unwrap_or_default(),
                seq: message.seq,
                usage: meta.usage.unwrap_or_default(),
                latency_ms: meta.latency_ms.unwrap_or_default(),
                finish_reason: meta.finish_reason.unwrap_or(FinishReason::Aborted),
                provider: meta.provider.unwrap_or_default(),
                model: meta.model.unwrap_or_default(),
                message,
            }))
        }
        // Interrupted (or still streaming): clients replace the message by seq.
        _ => SessionEvent::Message(message),
    }
}

pub fn error_body(code: ErrorCode, trace_id: &str) -> ErrorBody {
    ErrorBody {
        code: code.as_str(),
        message: code.default_message().to_owned(),
        http_status: code.http_status(),
        trace_id: trace_id.to_owned(),
        details: None,
    }
}

/// `turn.completed` for a complete answer, `turn.failed` for one that ended
/// in an error (its code) or was cut by a shutdown (`turn.interrupted`); an
/// answer someone stopped has no event.
fn turn_event(
    tenant: &crate::tenant::Tenant,
    session: Uuid,
    turn_id: Uuid,
    seq: i64,
    meta: &TurnMeta,
    status: MessageStatus,
    now: crate::time::Timestamp,
) -> Option<crate::outbound::NewEvent> {
    use crate::outbound::EventType;
    use serde_json::json;
    match status {
        MessageStatus::Complete => tenant.event(EventType::TurnCompleted, session, now, || {
            json!({"turn_id": turn_id, "seq": seq, "usage": meta.usage, "finish_reason": meta.finish_reason})
        }),
        MessageStatus::Error | MessageStatus::Interrupted => tenant.event(EventType::TurnFailed, session, now, || {
            let code = meta.error_code.as_deref().unwrap_or("turn.interrupted");
            json!({"turn_id": turn_id, "seq": seq, "code": code})
        }),
        _ => None,
    }
}
