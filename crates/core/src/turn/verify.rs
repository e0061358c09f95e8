//! Live product verification (SPEC §16). A tool result that shows products
//! is sent as `shown` when the tenant has a `verify_url`; the check runs in
//! a task of its own while the answer goes on (never delaying its text),
//! then the same call is sent again as `verified`, with the shop's live
//! fields merged in, or `unverified` when the check failed, timed out or
//! left a product out. The turn waits for its pending checks before its end
//! is stored and sent, so every event of a turn comes before `stream_end`
//! and the stored entry keeps the last status; a turn stopped meanwhile
//! does not wait, and its cards stay `shown`.

use super::run::TurnTask;
use crate::tools::{apply_live, shown_products, ToolCallRecord, ToolStatus, Verification};
use crate::trace::SPANS;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinSet;
use tokio::time::Interval;
use tracing::Instrument;

/// A turn's checks still running.
#[derive(Default)]
pub(super) struct Checks(Mutex<JoinSet<()>>);

impl TurnTask {
    /// Starts the check of a result sent as `shown`.
    pub(super) fn start_check(&self, verification: &Verification, record: &ToolCallRecord) {
        let ids = shown_products(record.display.as_ref());
        let verifier = verification.verifier.clone();
        let timeout = verification.timeout;
        let tenant_id = self.msg.tenant.id.clone();
        let call_id = record.call_id.clone();
        let (inner, tools, turn_id) = (self.inner.clone(), self.tools.clone(), self.live.turn_id);
        let (session_id, trace_id) = (self.msg.session_id, self.msg.trace_id.clone());
        // Exported with the turn's span (nothing otherwise): the shop's
        // `traceparent` names it.
        let span = tracing::info_span!(target: SPANS, "verify", otel.kind = "client", call_id = %call_id);
        let check = async move {
            let checked = verifier.verify(&tenant_id, ids, &trace_id);
            let live = match tokio::time::timeout(timeout, checked).await {
                Ok(Ok(items)) => Some(items),
                Ok(Err(reason)) => {
                    tracing::info!(%session_id, %call_id, %reason, "a product check failed");
                    None
                }
                Err(_) => {
                    tracing::info!(%session_id, %call_id, ?timeout, "a product check timed out");
                    None
                }
            };
            let record = {
                let mut tools = tools.lock().unwrap_or_else(PoisonError::into_inner);
                // The latest call of that id, as `finish_tool` marks it (a
                // provider may reuse ids across rounds).
                let Some(record) = tools.iter_mut().rev().find(|r| r.call_id == call_id) else { return };
                let verified = match (&live, record.display.as_mut()) {
                    (Some(items), Some(display)) => apply_live(display, items),
                    _ => false,
                };
                record.status = if verified { ToolStatus::Verified } else { ToolStatus::Unverified };
                record.clone()
            };
            inner.bus.publish(session_id, Arc::new(super::tools::tool_event(turn_id, &record)));
        };
        self.checks.0.lock().unwrap_or_else(PoisonError::into_inner).spawn(check.instrument(span));
    }

    /// Waits for the turn's pending checks (each bounded by its timeout),
    /// the answer's lease renewed meanwhile; a stop ends the wait and the
    /// checks.
    pub(super) async fn settle_checks(&self, ticker: &mut Interval) {
        let mut checks = std::mem::take(&mut *self.checks.0.lock().unwrap_or_else(PoisonError::into_inner));
        if checks.is_empty() {
            return;
        }
        if !self.live.is_stopped() {
            let all = async { while checks.join_next().await.is_some() {} };
            if self.guarded(all, ticker).await.is_some() {
                return;
            }
        }
        checks.abort_all();
        // Ended before the answer's final state is read: none publishes after.
        while checks.join_next().await.is_some() {}
    }
}
