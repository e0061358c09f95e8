//! Usage and budgets (SPEC §13). Every finished turn records a usage event
//! (tokens, cost from the price table, latency) and adds it to per-day
//! aggregates in the same transaction. Budgets are checked before a turn is
//! stored: the turn takes a reservation sized for the most it is expected to
//! use, and settles it with what it really used when it ends. Days are UTC.
//! Money is counted in integer micro-dollars, so sums never drift.

use crate::model::Usage;
use crate::time::{from_millis, OutOfRange, Timestamp};
use std::time::Duration;
use uuid::Uuid;

const DAY_MS: i64 = 86_400_000;

/// What a model's tokens cost: USD per million tokens (the `[prices]` table).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// A tenant's daily budgets (`[tenants.budget]`); `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget {
    pub daily_tokens: Option<u64>,
    pub daily_cost_usd: Option<f64>,
    pub per_subject_daily_tokens: Option<u64>,
}

/// The UTC day of an instant, as days since 1970-01-01.
pub fn day_of(t: &Timestamp) -> i64 {
    t.timestamp_millis().div_euclid(DAY_MS)
}

/// When a day starts (and the one before it ends); an error for a day no
/// timestamp can hold.
pub fn day_start(day: i64) -> Result<Timestamp, OutOfRange> {
    from_millis(day.saturating_mul(DAY_MS))
}

/// `2026-11-22`: a day as the admin API shows it.
pub fn day_name(day: i64) -> Result<String, OutOfRange> {
    Ok(day_start(day)?.format("%Y-%m-%d").to_string())
}

/// Micro-dollars of `usage` at `price`; nothing when the model has no price.
pub fn cost_micro_usd(prompt_tokens: u64, completion_tokens: u64, price: Option<&Price>) -> i64 {
    let Some(p) = price else { return 0 };
    // USD per million tokens is micro-dollars per token.
    let micro = prompt_tokens as f64 * p.input + completion_tokens as f64 * p.output;
    micro.round().clamp(0.0, i64::MAX as f64) as i64
}

/// What one finished turn used, as stored with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// The caller (`visitor:<uuid>` or `user:<sub>`), for per-subject budgets.
    pub subject: String,
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    pub cost_micro_usd: i64,
    pub first_token_ms: Option<u64>,
    pub total_ms: u64,
    /// The reservation the turn took, settled by this record.
    pub reservation: Option<Uuid>,
}

/// A budget reservation to take, with the limits it must fit in.
#[derive(Debug, Clone, PartialEq)]
pub struct Reserve {
    pub id: Uuid,
    pub tenant_id: String,
    pub subject: String,
    pub day: i64,
    pub tokens: i64,
    pub cost_micro_usd: i64,
    pub limits: Limits,
    pub now: Timestamp,
    /// After this a reservation no one settled (its node died) stops counting.
    pub expires_at: Timestamp,
}

/// Budgets in the store's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub daily_tokens: Option<i64>,
    pub daily_cost_micro_usd: Option<i64>,
    pub subject_daily_tokens: Option<i64>,
}

impl From<&Budget> for Limits {
    fn from(b: &Budget) -> Self {
        let tokens = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        Self {
            daily_tokens: tokens(b.daily_tokens),
            daily_cost_micro_usd: b
                .daily_cost_usd
                .map(|usd| (usd * 1e6).round().clamp(0.0, i64::MAX as f64) as i64),
            subject_daily_tokens: tokens(b.per_subject_daily_tokens),
        }
    }
}

/// Which budget refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    TenantTokens,
    TenantCost,
    SubjectTokens,
}

/// What is counted against a budget on one day: settled usage plus live
/// reservations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    pub tenant_tokens: i64,
    pub tenant_cost_micro_usd: i64,
    pub subject_tokens: i64,
}

impl Reserve {
    /// Whether this reservation fits on top of what is counted already; the
    /// one rule both store backends apply inside their transaction.
    pub fn refused_by(&self, counted: &Counted) -> Option<Spent> {
        let over =
            |limit: Option<i64>, used: i64, more: i64| limit.is_some_and(|l| used.saturating_add(more) > l);
        if over(self.limits.daily_tokens, counted.tenant_tokens, self.tokens) {
            Some(Spent::TenantTokens)
        } else if over(self.limits.daily_cost_micro_usd, counted.tenant_cost_micro_usd, self.cost_micro_usd) {
            Some(Spent::TenantCost)
        } else if over(self.limits.subject_daily_tokens, counted.subject_tokens, self.tokens) {
            Some(Spent::SubjectTokens)
        } else {
            None
        }
    }
}

/// One day of a tenant's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DailyUsage {
    pub day: i64,
    pub turns: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micro_usd: i64,
}

/// How long an unsettled reservation counts: the turn's own time limit plus
/// a margin for writing its end.
pub fn reservation_lifetime(total_timeout: Duration) -> Duration {
    total_timeout + Duration::from_secs(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc() {
        let t = from_millis(1_763_769_600_000 + 3_600_000).unwrap(); // 2025-11-22T01:00Z
        let day = day_of(&t);
        assert_eq!(day_name(day).unwrap(), "2025-11-22");
        assert_eq!(day_start(day + 1).unwrap().timestamp_millis(), 1_763_769_600_000 + DAY_MS);
        assert_eq!(day_of(&day_start(day).unwrap()), day);
    }

    #[test]
    fn a_day_no_timestamp_can_hold_is_an_error() {
        let last = day_of(&chrono::DateTime::<chrono::Utc>::MAX_UTC);
        assert!(day_start(last).is_ok());
        assert_eq!(day_start(last + 1).unwrap_err(), OutOfRange((last + 1) * DAY_MS));
        assert_eq!(day_name(i64::MAX).unwrap_err(), OutOfRange(i64::MAX));
        assert!(day_name(i64::MIN).is_err());
    }

    #[test]
    fn cost_is_per_million_tokens_in_micro_dollars() {
        let price = Price { input: 0.15, output: 0.60 };
        assert_eq!(cost_micro_usd(1_000_000, 0, Some(&price)), 150_000);
        assert_eq!(cost_micro_usd(14, 30, Some(&price)), 20); // 2.1 + 18 = 20.1
        assert_eq!(cost_micro_usd(14, 30, None), 0);
    }

    #[test]
    fn a_reservation_fits_or_names_the_budget_it_breaks() {
        let limits = Limits {
            daily_tokens: Some(100),
            daily_cost_micro_usd: Some(50),
            subject_daily_tokens: Some(40),
        };
        let r = Reserve {
            id: Uuid::nil(),
            tenant_id: "t".into(),
            subject: "s".into(),
            day: 0,
            tokens: 30,
            cost_micro_usd: 10,
            limits,
            now: day_start(0).unwrap(),
            expires_at: day_start(0).unwrap(),
        };
        assert_eq!(r.refused_by(&Counted::default()), None);
        let c = |t, m, s| Counted { tenant_tokens: t, tenant_cost_micro_usd: m, subject_tokens: s };
        assert_eq!(r.refused_by(&c(70, 40, 10)), None, "exactly at every limit fits");
        assert_eq!(r.refused_by(&c(71, 0, 0)), Some(Spent::TenantTokens));
        assert_eq!(r.refused_by(&c(0, 41, 0)), Some(Spent::TenantCost));
        assert_eq!(r.refused_by(&c(0, 0, 11)), Some(Spent::SubjectTokens));
        let free = Reserve { limits: Limits::default(), ..r };
        assert_eq!(free.refused_by(&c(i64::MAX, i64::MAX, i64::MAX)), None);
    }
}
