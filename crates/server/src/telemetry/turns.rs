//! What the turn engine reports (its `TurnObserver`), as metrics. Calls come
//! from turns' own tasks, once per turn, provider attempt, tool call or
//! checkpoint period, never per delta; the per-period one (checkpoints) uses
//! handles registered once.

use metrics::{counter, histogram, Counter};
use std::time::Duration;
use switchboard_core::turn::{AfterFailure, Checkpointed, TurnObserver, TurnReport};
use switchboard_core::{ErrorCode, MessageStatus};

/// The observer the server gives the turn engine. Build it after the
/// recorder is installed (its handles would record nothing otherwise).
#[derive(Debug)]
pub struct TurnMetrics {
    /// `switchboard_checkpoint_writes_total{outcome}`, in `Checkpointed::ALL`'s order.
    checkpoints: [Counter; 3],
}

impl TurnMetrics {
    pub fn new() -> Self {
        let checkpoints = Checkpointed::ALL
            .map(|o| counter!("switchboard_checkpoint_writes_total", "outcome" => o.as_str()));
        // Present, at zero, before the first checkpoint.
        for c in &checkpoints {
            c.increment(0);
        }
        Self { checkpoints }
    }
}

impl Default for TurnMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl TurnObserver for TurnMetrics {
    fn started(&self, tenant_id: &str) {
        counter!("switchboard_turns_started_total", "tenant" => tenant_id.to_owned()).increment(1);
    }

    fn finished(&self, r: &TurnReport<'_>) {
        let status = r.status.as_str();
        counter!("switchboard_turns_finished_total", "tenant" => r.tenant_id.to_owned(), "status" => status)
            .increment(1);
        let provider = r.provider.to_owned();
        let model = r.model.to_owned();
        histogram!("switchboard_turn_duration_seconds", "provider" => provider.clone(), "model" => model.clone())
            .record(r.total.as_secs_f64());
        if let Some(first) = r.first_token {
            histogram!("switchboard_turn_first_token_seconds", "provider" => provider.clone(), "model" => model)
                .record(first.as_secs_f64());
        }
        for (kind, n) in [("prompt", r.usage.prompt_tokens), ("completion", r.usage.completion_tokens)] {
            counter!("switchboard_tokens_total", "tenant" => r.tenant_id.to_owned(), "kind" => kind)
                .increment(u64::from(n));
        }
        if r.status == MessageStatus::Error {
            let kind = match r.error {
                Some(ErrorCode::LlmTimeout) => "timeout",
                _ => "unavailable",
            };
            counter!("switchboard_provider_errors_total", "provider" => provider, "kind" => kind)
                .increment(1);
        }
    }

    fn provider_failed(&self, provider: &str, then: AfterFailure) {
        counter!("switchboard_provider_failures_total", "provider" => provider.to_owned(), "then" => then.as_str())
            .increment(1);
        if then == AfterFailure::Retried {
            counter!("switchboard_provider_retries_total", "provider" => provider.to_owned()).increment(1);
        }
    }

    /// Tool names come from the tenants' configuration, so the label set
    /// stays bounded.
    fn tool_finished(&self, tool: &str, outcome: &'static str, took: Option<Duration>) {
        counter!("switchboard_tool_calls_total", "tool" => tool.to_owned(), "outcome" => outcome)
            .increment(1);
        // A call that did not run (refused, or a built-in without a wait)
        // still registers its tool's histogram, so it is there to read.
        let duration = histogram!("switchboard_tool_call_duration_seconds", "tool" => tool.to_owned());
        if let Some(took) = took {
            duration.record(took.as_secs_f64());
        }
    }

    fn fell_back(&self, from: &str, to: &str) {
        counter!("switchboard_provider_fallbacks_total", "from" => from.to_owned(), "to" => to.to_owned())
            .increment(1);
    }

    fn checkpointed(&self, outcome: Checkpointed) {
        self.checkpoints[outcome as usize].increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_outcomes_index_their_handles() {
        for (i, o) in Checkpointed::ALL.into_iter().enumerate() {
            assert_eq!(o as usize, i, "{o:?}");
        }
    }
}
