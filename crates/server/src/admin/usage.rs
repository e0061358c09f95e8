//! `GET /v1/admin/usage?from=&to=` (SPEC §12): a tenant's usage and cost per
//! UTC day. `from` and `to` are days (`2026-11-22`) or RFC 3339 instants
//! (their UTC day counts), both included; without them, the last 30 days up
//! to today. At most 366 days per request.

use super::auth;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::Serialize;
use switchboard_core::error::FieldProblem;
use switchboard_core::usage::{day_name, day_of, day_start, DailyUsage};

/// The longest range one request may ask for.
const MAX_DAYS: i64 = 366;
/// The range when none is given.
const DEFAULT_DAYS: i64 = 30;

/// Usage and cost of a range of days.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// The first day counted (UTC).
    #[schema(format = Date)]
    pub from: String,
    /// The last day counted (UTC), included.
    #[schema(format = Date)]
    pub to: String,
    /// Per day, oldest first.
    pub items: Vec<UsageDay>,
}

/// One UTC day of a tenant's usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    #[schema(format = Date)]
    pub day: String,
    pub turns: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// In dollars, at the configured prices.
    pub cost_usd: f64,
}

/// A tenant's usage and cost per UTC day.
#[utoipa::path(
    get,
    path = "/v1/admin/usage",
    operation_id = "admin_usage",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)"),
        ("from" = Option<String>, Query, description = "First day, `YYYY-MM-DD` or an RFC 3339 time (its UTC day); \
                                                        default 29 days before `to`"),
        ("to" = Option<String>, Query, description = "Last day, included, `YYYY-MM-DD` or an RFC 3339 time; default \
                                                      today; at most 366 days after `from`")
    ),
    responses((status = 200, body = UsageReport)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<UsageReport>, ApiError> {
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let today = day_of(&state.clock.now());
    let (from, to) = range(uri.query(), today)?;
    let days = state.store.daily_usage(&tenant.id, from, to).await.map_err(ApiError::internal)?;
    let items = days.iter().map(day_json).collect::<Result<Vec<UsageDay>, _>>()?;
    Ok(Json(UsageReport { from: name(from)?, to: name(to)?, items }))
}

/// A day's name; a stored day no timestamp can hold is an internal error.
fn name(day: i64) -> Result<String, ApiError> {
    day_name(day).map_err(ApiError::internal)
}

fn day_json(d: &DailyUsage) -> Result<UsageDay, ApiError> {
    Ok(UsageDay {
        day: name(d.day)?,
        turns: d.turns,
        prompt_tokens: d.prompt_tokens,
        completion_tokens: d.completion_tokens,
        total_tokens: d.prompt_tokens + d.completion_tokens,
        // Stored in micro-dollars; shown in dollars.
        cost_usd: d.cost_micro_usd as f64 / 1e6,
    })
}

/// The days asked for, checked.
fn range(query: Option<&str>, today: i64) -> Result<(i64, i64), ApiError> {
    let mut from = None;
    let mut to = None;
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "from" => &mut from,
            "to" => &mut to,
            other => {
                problems.push(FieldProblem::new(other, "unknown parameter"));
                continue;
            }
        };
        match parse_day(&value) {
            Some(day) if slot.is_none() => *slot = Some(day),
            Some(_) => problems.push(FieldProblem::new(key.as_ref(), "must not be given more than once")),
            None => problems
                .push(FieldProblem::new(key.as_ref(), "must be a day (YYYY-MM-DD) or an RFC 3339 time")),
        }
    }
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to - (DEFAULT_DAYS - 1));
    if problems.is_empty() && from > to {
        problems.push(FieldProblem::new("from", "must not be after `to`"));
    }
    if problems.is_empty() && to - from >= MAX_DAYS {
        problems.push(FieldProblem::new("to", "the range may span at most 366 days"));
    }
    if problems.is_empty() && day_start(from).is_err() {
        problems.push(FieldProblem::new("from", "is before the first day a time can name"));
    }
    if problems.is_empty() {
        Ok((from, to))
    } else {
        Err(ApiError::invalid(problems))
    }
}

fn parse_day(v: &str) -> Option<i64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(day_of(&date.and_hms_opt(0, 0, 0)?.and_utc()));
    }
    chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| day_of(&t.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: i64 = 20_414; // 2025-11-22

    #[test]
    fn ranges_default_to_the_last_thirty_days() {
        assert_eq!(range(None, TODAY).ok(), Some((TODAY - 29, TODAY)));
        assert_eq!(range(Some("from=2025-11-20&to=2025-11-22"), TODAY).ok(), Some((TODAY - 2, TODAY)));
        assert_eq!(range(Some("from=2025-11-21T23:59:59-01:00"), TODAY).ok(), Some((TODAY, TODAY)));
    }

    #[test]
    fn bad_ranges_are_named() {
        for bad in [
            "from=yesterday",
            "from=2025-11-23&to=2025-11-22",
            "to=2025-11-22&to=2025-11-22",
            "x=1",
            "from=2024-01-01",
        ] {
            assert!(range(Some(bad), TODAY).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_default_range_reaching_before_the_first_nameable_day_is_refused() {
        let first = day_of(&chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let e = range(None, first + 1).unwrap_err();
        assert_eq!(e.problem_fields(), ["from"]);
        assert!(range(None, first + 29).is_ok());
    }

    #[test]
    fn a_stored_day_no_timestamp_can_hold_is_an_internal_error() {
        let day = DailyUsage { day: i64::MAX, ..DailyUsage::default() };
        assert_eq!(day_json(&day).unwrap_err().code, switchboard_core::error::ErrorCode::Internal);
        assert_eq!(day_json(&DailyUsage { day: TODAY, ..day }).unwrap().day, "2025-11-22");
    }
}
