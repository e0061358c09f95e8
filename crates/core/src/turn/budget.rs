//! A turn's budget reservation (SPEC §13): sized for the most the turn is
//! expected to use — the system prompt, the new message and the completion
//! allowance (`max_tokens`, or [`COMPLETION_ALLOWANCE`]) — taken by the store
//! in the transaction that starts the turn, and settled with the real usage
//! when the turn ends. Earlier history is not in the estimate: the settlement
//! counts it, and later turns see it.

use super::{Inner, SendError, SendMessage};
use crate::model::estimate_tokens;
use crate::time::Timestamp;
use crate::usage::{cost_micro_usd, day_of, day_start, reservation_lifetime, Limits, Reserve, Spent};
use uuid::Uuid;

/// Completion tokens reserved when the provider sets no `max_tokens`.
pub const COMPLETION_ALLOWANCE: u32 = 1024;

/// The reservation a turn about to start takes; `None` when the tenant has no
/// budget.
pub(super) fn reservation(inner: &Inner, msg: &SendMessage, now: Timestamp) -> Option<Reserve> {
    let budget = msg.tenant.budget.as_ref()?;
    let settings = &msg.tenant.primary.settings;
    let prompt = settings.system_prompt.as_deref().map_or(0, estimate_tokens) + estimate_tokens(&msg.content);
    let completion = settings.max_tokens.unwrap_or(COMPLETION_ALLOWANCE);
    let price = inner.config.prices.get(&settings.model);
    Some(Reserve {
        id: Uuid::now_v7(),
        tenant_id: msg.tenant.id.clone(),
        subject: msg.subject.to_string(),
        day: day_of(&now),
        tokens: i64::from(prompt) + i64::from(completion),
        cost_micro_usd: cost_micro_usd(u64::from(prompt), u64::from(completion), price),
        limits: Limits::from(budget),
        now,
        expires_at: now + reservation_lifetime(settings.timeouts.total),
    })
}

/// The refusal of a turn whose reservation did not fit: the day's budget is
/// spent until the next UTC midnight.
pub(super) fn spent(msg: &SendMessage, now: &Timestamp, spent: Spent) -> SendError {
    tracing::info!(tenant = %msg.tenant.id, ?spent, "turn refused: budget spent");
    match day_start(day_of(now) + 1) {
        Ok(reset_at) => SendError::QuotaExceeded { reset_at },
        Err(e) => e.into(),
    }
}
