//! One round of tool calls (SPEC §16): each call checked (arguments that
//! are not JSON or break the tool's schema, an unknown tool or a call over
//! `max_tool_calls` get an error result without any call), the rest run in
//! parallel, each within its tool's timeout, while the answer stays
//! checkpointed; a `tool` event for each step, and the results in the order
//! the calls came. Each call's end is shown (and kept for the next
//! checkpoint) as soon as it comes.

use super::memory::{is_memory_tool, memory_arguments};
use super::run::TurnTask;
use crate::events::{SessionEvent, ToolEvent};
use crate::ids::Subject;
use crate::outbound::EventType;
use crate::store::takeover::{HoldChange, HoldOutcome};
use crate::tools::{
    handoff_reason, shown_products, Invocation, Outcome, ToolCall, ToolCallRecord, ToolResult, ToolStatus,
    Tooling, Verification, HANDOFF,
};
use crate::trace::SPANS;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use tokio::time::{Instant, Interval};
use tracing::Instrument;

impl TurnTask {
    /// Runs `calls`; `None` when the turn was stopped meanwhile.
    pub(super) async fn run_round(
        &self,
        tooling: &Tooling,
        calls: &[ToolCall],
        ticker: &mut Interval,
    ) -> Option<Vec<ToolResult>> {
        let max = usize::try_from(tooling.max_calls).unwrap_or(usize::MAX);
        let mut results: Vec<Option<ToolResult>> = vec![None; calls.len()];
        let mut runs = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            if i < max && tooling.handoff && call.name == HANDOFF {
                results[i] = Some(self.ask_for_a_person(call));
                continue;
            }
            // The memory's own tools, for a user only (a visitor is never offered them).
            let memory =
                tooling.memory && is_memory_tool(&call.name) && matches!(self.msg.subject, Subject::User(_));
            let checked = if i >= max {
                Err(format!("not run: at most {max} tool calls per response"))
            } else if memory {
                memory_arguments(call)
            } else {
                tooling.toolbox.check(call)
            };
            let arguments = checked.as_ref().cloned().unwrap_or_else(|_| raw_arguments(&call.arguments));
            let mut record = ToolCallRecord {
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments,
                result: None,
                display: None,
                status: ToolStatus::Running,
                error: None,
                started_at: self.inner.clock.now(),
                duration_ms: None,
            };
            match checked {
                Err(reason) => {
                    record.status = ToolStatus::Error;
                    record.error = Some(reason.clone());
                    results[i] = Some(error_result(call, reason));
                    self.observe_tool(&call.name, "refused", None);
                }
                Ok(arguments) => {
                    let invocation = self.invocation(call, arguments);
                    let toolbox = tooling.toolbox.clone();
                    // Exported with the turn's span (nothing otherwise): a
                    // webhook's or MCP server's `traceparent` names it.
                    let span = tracing::info_span!(
                        target: SPANS,
                        "tool",
                        otel.kind = "client",
                        tool = %call.name,
                        call_id = %call.id,
                        otel.status_code = tracing::field::Empty,
                    );
                    let traced = span.clone();
                    runs.push(Instrument::instrument(
                        async move {
                            let started = Instant::now();
                            let outcome = if memory {
                                self.memory_tool(&invocation.name, &invocation.arguments).await
                            } else {
                                toolbox.run(invocation).await
                            };
                            if outcome.result.is_err() {
                                traced.record("otel.status_code", "error");
                            }
                            (i, outcome, started.elapsed())
                        },
                        span,
                    ));
                }
            }
            self.publish_tool(&record);
            self.keep_tool(record);
        }
        // Each call is shown and kept as it finishes, not when the last does.
        let mut running: FuturesUnordered<_> = runs.into_iter().collect();
        while let Some((i, outcome, took)) = self.guarded(running.next(), ticker).await? {
            let call = &calls[i];
            let verification = tooling.verification.as_ref();
            if let Some(record) = self.finish_tool(&call.id, &outcome, took.as_millis() as u64, verification)
            {
                self.publish_tool(&record);
                if let Some(verification) = verification.filter(|_| record.status == ToolStatus::Shown) {
                    self.start_check(verification, &record);
                }
            }
            let ended = if outcome.result.is_ok() { "done" } else { "error" };
            self.observe_tool(&call.name, ended, Some(took));
            results[i] = Some(match outcome.result {
                Ok(value) => {
                    ToolResult { call_id: call.id.clone(), content: result_text(&value), is_error: false }
                }
                Err(reason) => error_result(call, reason),
            });
        }
        Some(results.into_iter().flatten().collect())
    }

    /// A tool the vendor ran itself: shown as it starts and as it ends,
    /// kept with the answer like ours; a repeat that changes nothing is not
    /// shown again.
    pub(super) fn remote_tool(&self, tool: crate::tools::RemoteTool) {
        let status = if tool.result.is_some() { ToolStatus::Done } else { ToolStatus::Running };
        let record = {
            let mut tools = self.tools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match tools.iter_mut().find(|r| r.call_id == tool.id) {
                Some(known) if known.status == status => return,
                Some(known) => {
                    known.status = status;
                    known.result = tool.result.map(serde_json::Value::String);
                    known.clone()
                }
                None => {
                    let record = ToolCallRecord {
                        call_id: tool.id,
                        name: tool.name,
                        arguments: raw_arguments(&tool.arguments),
                        result: tool.result.map(serde_json::Value::String),
                        display: None,
                        status,
                        error: None,
                        started_at: self.inner.clock.now(),
                        duration_ms: None,
                    };
                    tools.push(record.clone());
                    record
                }
            }
        };
        self.publish_tool(&record);
    }

    /// The built-in `handoff_to_human`: the model hears that a person was
    /// asked for; the session waits for one once the answer is stored
    /// ([`TurnTask::hand_off`]), and everyone watching the session is told
    /// now (`handoff`).
    fn ask_for_a_person(&self, call: &ToolCall) -> ToolResult {
        let reason = handoff_reason(&call.arguments);
        let waiting = serde_json::json!({"status": "waiting"});
        let record = ToolCallRecord {
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: raw_arguments(&call.arguments),
            result: reason.is_ok().then(|| waiting.clone()),
            display: None,
            status: if reason.is_ok() { ToolStatus::Done } else { ToolStatus::Error },
            error: reason.as_ref().err().cloned(),
            started_at: self.inner.clock.now(),
            duration_ms: Some(0),
        };
        self.publish_tool(&record);
        self.keep_tool(record);
        match reason {
            Ok(reason) => {
                self.observe_tool(HANDOFF, "done", None);
                let mut handoff = self.handoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if handoff.is_none() {
                    let event = SessionEvent::Handoff { turn_id: self.live.turn_id, reason: reason.clone() };
                    self.inner.bus.publish(self.msg.session_id, Arc::new(event));
                    *handoff = Some(reason);
                }
                ToolResult { call_id: call.id.clone(), content: waiting.to_string(), is_error: false }
            }
            Err(why) => {
                self.observe_tool(HANDOFF, "refused", None);
                error_result(call, why)
            }
        }
    }

    /// After the answer is stored: the session waits for an agent, with a
    /// system note "Handoff requested" (its seq after the answer's). Returns
    /// the note, for the caller to publish after the answer's end.
    pub(super) async fn hand_off(&self) -> Option<crate::model::Message> {
        let reason = self.handoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        let now = self.inner.clock.now();
        let tenant = &self.msg.tenant;
        let change = HoldChange {
            tenant_id: tenant.id.clone(),
            session_id: self.msg.session_id,
            takeover: None,
            waiting: true,
            note: "Handoff requested".to_owned(),
            max_messages: tenant.max_messages_per_session,
            now,
            event: tenant.event(
                EventType::HandoffRequested,
                self.msg.session_id,
                now,
                || serde_json::json!({"reason": reason}),
            ),
        };
        match self.inner.store.set_takeover(&change).await {
            Ok(HoldOutcome::Changed { note, .. }) => Some(note),
            Ok(outcome) => {
                tracing::info!(session_id = %self.msg.session_id, ?outcome, "handoff left the session as it was");
                None
            }
            Err(e) => {
                tracing::error!(session_id = %self.msg.session_id, error = %e, "could not store a handoff");
                None
            }
        }
    }

    fn observe_tool(&self, name: &str, outcome: &'static str, took: Option<std::time::Duration>) {
        if let Some(observer) = &self.inner.config.observer {
            observer.tool_finished(name, outcome, took);
        }
    }

    fn invocation(&self, call: &ToolCall, arguments: serde_json::Value) -> Invocation {
        let subject = &self.msg.subject;
        Invocation {
            tenant_id: self.msg.tenant.id.clone(),
            session_id: self.msg.session_id,
            turn_id: self.live.turn_id,
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments,
            subject: serde_json::json!({"kind": subject.kind(), "id": subject.id()}),
            context: self.msg.context.clone(),
            trace_id: self.msg.trace_id.clone(),
        }
    }

    /// Keeps a new call with the answer (checkpoints store what is kept).
    fn keep_tool(&self, record: ToolCallRecord) {
        self.tools.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(record);
    }

    /// Marks a kept call done (`shown` when it shows products to check) or
    /// failed; returns its new state.
    fn finish_tool(
        &self,
        call_id: &str,
        outcome: &Outcome,
        took_ms: u64,
        verification: Option<&Verification>,
    ) -> Option<ToolCallRecord> {
        let mut tools = self.tools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let record = tools.iter_mut().rev().find(|r| r.call_id == call_id)?;
        record.duration_ms = Some(took_ms);
        record.display = outcome.display.clone();
        match &outcome.result {
            Ok(value) => {
                let check = verification.is_some() && !shown_products(record.display.as_ref()).is_empty();
                record.status = if check { ToolStatus::Shown } else { ToolStatus::Done };
                record.result = Some(value.clone());
            }
            Err(reason) => {
                record.status = ToolStatus::Error;
                record.error = Some(reason.clone());
            }
        }
        Some(record.clone())
    }

    /// The calls of this answer so far.
    pub(super) fn tool_records(&self) -> Vec<ToolCallRecord> {
        self.tools.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn publish_tool(&self, record: &ToolCallRecord) {
        self.inner.bus.publish(self.msg.session_id, Arc::new(tool_event(self.live.turn_id, record)));
    }
}

/// The `tool` event of a call's state: what end users may see of it.
pub(super) fn tool_event(turn_id: uuid::Uuid, record: &ToolCallRecord) -> SessionEvent {
    SessionEvent::Tool(ToolEvent {
        turn_id,
        call_id: record.call_id.clone(),
        name: record.name.clone(),
        status: record.status,
        display: record.display.clone(),
    })
}

/// Arguments that did not parse are kept as the text the model wrote.
fn raw_arguments(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// A result as the model reads it: JSON text, a string result as is.
fn result_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn error_result(call: &ToolCall, reason: String) -> ToolResult {
    ToolResult { call_id: call.id.clone(), content: reason, is_error: true }
}
