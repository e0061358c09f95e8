//! Usage events, per-day sums and budget reservations (SPEC §13). A
//! reservation is decided inside the transaction that starts its turn,
//! after the session's checks, one at a time per tenant (PostgreSQL locks the
//! tenant's row of the day, `postgres/turn.rs`; SQLite's one writer already
//! runs writes one at a time), so concurrent turns on any node see each
//! other's reservations and cannot overshoot a budget together. What counts
//! against a budget is read by each backend's turn statement.

use crate::db::Param;
use crate::store::SqlStore;
use switchboard_core::store::{Finish, StoreError};
use switchboard_core::usage::{DailyUsage, Reserve};

/// A budget reservation ([`reservation_params`]).
pub const INSERT_RESERVATION: &str = "INSERT INTO budget_reservations \
     (id, tenant_id, subject, day, tokens, cost_micro_usd, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// [`INSERT_RESERVATION`]'s parameters: `$1` id, `$2` tenant, `$3` subject,
/// `$4` day, `$5` tokens, `$6` cost, `$7` expiry.
pub fn reservation_params(r: &Reserve) -> [Param<'_>; 7] {
    [
        r.id.into(),
        (&r.tenant_id).into(),
        (&r.subject).into(),
        r.day.into(),
        r.tokens.into(),
        r.cost_micro_usd.into(),
        (&r.expires_at).into(),
    ]
}

/// A turn's reservation settled: `$1` id, `$2` tenant.
const DELETE_RESERVATION: &str = "DELETE FROM budget_reservations WHERE id = $1 AND tenant_id = $2";
/// Once per answer: a second finish of the same message writes nothing.
const INSERT_EVENT: &str = "INSERT INTO usage_events (session_id, seq, tenant_id, subject, day, provider, \
     model, prompt_tokens, completion_tokens, estimated, cost_micro_usd, first_token_ms, total_ms, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (session_id, seq) DO NOTHING";
/// `$1` tenant, `$2` day, `$3` prompt tokens, `$4` completion tokens, `$5` cost.
const ADD_DAILY: &str = "INSERT INTO usage_daily \
     (tenant_id, day, turns, prompt_tokens, completion_tokens, cost_micro_usd) VALUES ($1, $2, 1, $3, $4, $5) \
     ON CONFLICT (tenant_id, day) DO UPDATE SET turns = usage_daily.turns + 1, \
     prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, \
     cost_micro_usd = usage_daily.cost_micro_usd + excluded.cost_micro_usd";
/// `$1` tenant, `$2` subject, `$3` day, `$4` tokens.
const ADD_SUBJECT: &str = "INSERT INTO usage_subject_daily (tenant_id, subject, day, tokens) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, subject, day) \
     DO UPDATE SET tokens = usage_subject_daily.tokens + excluded.tokens";

/// The statements that settle a finished turn's usage, for the backend to run
/// in the finish's transaction: the turn's budget reservation deleted and,
/// when this finish ended the answer (`recorded`), its usage event and the
/// day's sums.
pub fn settle(f: &Finish, recorded: bool) -> Vec<(&'static str, Vec<Param<'_>>)> {
    let Some(u) = &f.usage else {
        return Vec::new();
    };
    let mut statements = Vec::with_capacity(4);
    if let Some(id) = u.reservation {
        statements.push((DELETE_RESERVATION, vec![id.into(), (&f.tenant_id).into()]));
    }
    if recorded {
        let day = switchboard_core::usage::day_of(&f.now);
        let (prompt, completion) = (i64::from(u.usage.prompt_tokens), i64::from(u.usage.completion_tokens));
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        statements.push((
            INSERT_EVENT,
            vec![
                f.session_id.into(),
                f.seq.into(),
                (&f.tenant_id).into(),
                (&u.subject).into(),
                day.into(),
                (&u.provider).into(),
                (&u.model).into(),
                prompt.into(),
                completion.into(),
                i64::from(u.usage.estimated).into(),
                u.cost_micro_usd.into(),
                u.first_token_ms.map(ms).into(),
                ms(u.total_ms).into(),
                (&f.now).into(),
            ],
        ));
        statements.push((
            ADD_DAILY,
            vec![
                (&f.tenant_id).into(),
                day.into(),
                prompt.into(),
                completion.into(),
                u.cost_micro_usd.into(),
            ],
        ));
        statements.push((
            ADD_SUBJECT,
            vec![(&f.tenant_id).into(), (&u.subject).into(), day.into(), (prompt + completion).into()],
        ));
    }
    statements
}

/// Tenant `$1`'s days from `$2` to `$3` with at least one turn.
const DAILY: &str = "SELECT day, turns, prompt_tokens, completion_tokens, cost_micro_usd FROM usage_daily \
     WHERE tenant_id = $1 AND day >= $2 AND day <= $3 AND turns > 0 ORDER BY day";

pub async fn daily(
    store: &SqlStore,
    tenant_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<DailyUsage>, StoreError> {
    let rows: Vec<(i64, i64, i64, i64, i64)> =
        store.reader.all(DAILY, &[tenant_id.into(), from.into(), to.into()]).await?;
    Ok(rows
        .into_iter()
        .map(|(day, turns, prompt_tokens, completion_tokens, cost_micro_usd)| DailyUsage {
            day,
            turns,
            prompt_tokens,
            completion_tokens,
            cost_micro_usd,
        })
        .collect())
}
