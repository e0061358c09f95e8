//! A turn's budget reservation (SPEC §13): taken before anything of the turn
//! is stored, sized for the most the turn is expected to use — the system
//! prompt, the new message and the completion allowance (`max_tokens`, or
//! [`COMPLETION_ALLOWANCE`]) — and settled with the real usage when the turn
//! ends (or given back when no turn starts). Earlier history is not in the
//! estimate: the settlement counts it, and later turns see it.

use super::{Inner, SendError, SendMessage};
use crate::model::estimate_tokens;
use crate::usage::{cost_micro_usd, day_of, day_start, reservation_lifetime, Limits, Reserve};
use uuid::Uuid;

/// Completion tokens reserved when the provider sets no `max_tokens`.
pub const COMPLETION_ALLOWANCE: u32 = 1024;

/// Takes the reservation of a turn about to start; `None` when the tenant
/// has no budget.
pub(super) async fn reserve(inner: &Inner, msg: &SendMessage) -> Result<Option<Uuid>, SendError> {
    let Some(budget) = &msg.tenant.budget else { return Ok(None) };
    let settings = &msg.tenant.primary.settings;
    let prompt = settings.system_prompt.as_deref().map_or(0, estimate_tokens) + estimate_tokens(&msg.content);
    let completion = settings.max_tokens.unwrap_or(COMPLETION_ALLOWANCE);
    let price = inner.config.prices.get(&settings.model);
    let now = inner.clock.now();
    let day = day_of(&now);
    let reserve = Reserve {
        id: Uuid::now_v7(),
        tenant_id: msg.tenant.id.clone(),
        subject: msg.subject.to_string(),
        day,
        tokens: i64::from(prompt) + i64::from(completion),
        cost_micro_usd: cost_micro_usd(u64::from(prompt), u64::from(completion), price),
        limits: Limits::from(budget),
        now,
        expires_at: now + reservation_lifetime(settings.timeouts.total),
    };
    match inner.store.reserve_budget(&reserve).await? {
        Ok(()) => Ok(Some(reserve.id)),
        Err(spent) => {
            tracing::info!(tenant = %msg.tenant.id, ?spent, "turn refused: budget spent");
            Err(SendError::QuotaExceeded { reset_at: day_start(day + 1) })
        }
    }
}

/// Gives a reservation back when its turn did not start.
pub(super) async fn release(inner: &Inner, msg: &SendMessage, reservation: Option<Uuid>) {
    let Some(id) = reservation else { return };
    if let Err(e) = inner.store.release_budget(&msg.tenant.id, id).await {
        // It stops counting when it expires.
        tracing::warn!(tenant = %msg.tenant.id, error = %e, "could not release a budget reservation");
    }
}
