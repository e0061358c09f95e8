//! The query string of `GET /v1/admin/sessions` (SPEC §12) and its opaque
//! cursor. Parameters are checked all at once (every problem is reported),
//! unknown or repeated ones are refused, and a cursor only continues the
//! query it came from: it carries a fingerprint of the tenant, filters, sort
//! and order, so a cursor reused with another sort or filter set is
//! `request.invalid` instead of a silently wrong page.

use crate::http::ApiError;
use base64::Engine;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use switchboard_core::error::FieldProblem;
use switchboard_core::store::admin::{AdminSessionQuery, SessionKey, SessionSort};
use switchboard_core::time::{from_millis, Timestamp};
use switchboard_core::SessionStatus;
use uuid::Uuid;

/// Ascending or descending.
// The description's: `parse` reads the text.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Order {
    Asc,
    Desc,
}

const PARAMS: [&str; 9] =
    ["user_id", "status", "admin_assisted", "created_from", "created_to", "sort", "order", "limit", "cursor"];
/// Longest `user_id`, in characters as the API description counts them: a
/// JWT `sub` is at most this many bytes, so a longer id matches no one, and
/// one of as many characters but more bytes matches no one either.
const MAX_USER_ID_CHARS: usize = crate::identity::user::MAX_SUB_BYTES;
const CURSOR_VERSION: &str = "1";

/// Parses the query of one list request; `limit` is the page size asked for.
pub fn parse(tenant_id: &str, raw: Option<&str>) -> Result<AdminSessionQuery, ApiError> {
    let mut params: HashMap<String, String> = HashMap::new();
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !PARAMS.contains(&key.as_ref()) {
            problems.push(FieldProblem::new(key.as_ref(), "unknown parameter"));
        } else if params.insert(key.to_string(), value.into_owned()).is_some() {
            problems.push(FieldProblem::new(key.as_ref(), "must not be given more than once"));
        }
    }
    let mut q = AdminSessionQuery::new(tenant_id);
    let mut check = |name: &str, problem: Option<&str>| {
        if let Some(p) = problem {
            problems.push(FieldProblem::new(name, p));
        }
    };
    if let Some(v) = params.get("user_id") {
        let ok = !v.trim().is_empty()
            && v.chars().count() <= MAX_USER_ID_CHARS
            && !v.chars().any(char::is_control);
        q.owner = ok.then(|| format!("user:{v}"));
        check("user_id", (!ok).then_some("must be a user id (the JWT sub)"));
    }
    if let Some(v) = params.get("status") {
        q.status = SessionStatus::parse(v);
        check("status", q.status.is_none().then_some("must be active, waiting, human or closed"));
    }
    if let Some(v) = params.get("admin_assisted") {
        q.admin_assisted = match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        check("admin_assisted", q.admin_assisted.is_none().then_some("must be true or false"));
    }
    for (name, slot, round_up) in
        [("created_from", &mut q.created_from, true), ("created_to", &mut q.created_to, false)]
    {
        if let Some(v) = params.get(name) {
            *slot = instant(v, round_up);
            check(name, slot.is_none().then_some("must be an RFC 3339 date and time"));
        }
    }
    if let (Some(from), Some(to)) = (q.created_from, q.created_to) {
        check("created_from", (from > to).then_some("must not be after created_to"));
    }
    if let Some(v) = params.get("sort") {
        let sort = SessionSort::parse(v);
        q.sort = sort.unwrap_or(q.sort);
        check("sort", sort.is_none().then_some("must be created_at, last_activity_at or message_count"));
    }
    if let Some(v) = params.get("order") {
        q.descending = v == "desc";
        check("order", (v != "asc" && v != "desc").then_some("must be asc or desc"));
    }
    if let Some(v) = params.get("limit") {
        let limit = v.parse::<u32>().ok().filter(|n| (1..=200).contains(n));
        q.limit = limit.unwrap_or(q.limit);
        check("limit", limit.is_none().then_some("must be between 1 and 200"));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    if let Some(c) = params.get("cursor") {
        q.after = Some(decode_cursor(&q, c)?);
    }
    Ok(q)
}

/// An RFC 3339 instant at the store's millisecond precision, rounded so
/// that the bound stays exact: `created_from` up, `created_to` down.
fn instant(v: &str, round_up: bool) -> Option<Timestamp> {
    let t = DateTime::parse_from_rfc3339(v).ok()?.with_timezone(&Utc);
    let ms = t.timestamp_millis();
    let exact = t.timestamp_subsec_nanos() % 1_000_000 == 0;
    from_millis(if round_up && !exact { ms.checked_add(1)? } else { ms }).ok()
}

/// What a cursor must have been made for (FNV-1a of the query's shape).
fn fingerprint(q: &AdminSessionQuery) -> String {
    let shape = format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
        q.tenant_id,
        q.owner,
        q.status.map(SessionStatus::as_str),
        q.admin_assisted,
        q.created_from.map(|t| t.timestamp_millis()),
        q.created_to.map(|t| t.timestamp_millis()),
        q.sort.as_str(),
        q.descending
    );
    let hash = shape
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{hash:016x}")
}

/// The cursor after `key` for query `q`.
pub fn encode_cursor(q: &AdminSessionQuery, key: SessionKey) -> String {
    let raw = format!("{CURSOR_VERSION}.{}.{}.{}", fingerprint(q), key.key, key.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(q: &AdminSessionQuery, cursor: &str) -> Result<SessionKey, ApiError> {
    let bad = |problem: &str| ApiError::invalid_field("cursor", problem);
    let foreign = "is not a cursor from this API";
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad(foreign))?;
    let raw = String::from_utf8(raw).map_err(|_| bad(foreign))?;
    let mut parts = raw.split('.');
    let (Some(CURSOR_VERSION), Some(print), Some(key), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(foreign));
    };
    if print != fingerprint(q) {
        return Err(bad("belongs to another query: keep the filters, sort and order of the first page"));
    }
    Ok(SessionKey {
        key: key.parse().map_err(|_| bad(foreign))?,
        id: Uuid::parse_str(id).map_err(|_| bad(foreign))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: ApiError) -> Vec<String> {
        e.problem_fields()
    }

    #[test]
    fn defaults_and_every_parameter() {
        let q = parse("acme", None).unwrap();
        assert_eq!((q.sort, q.descending, q.limit, q.after), (SessionSort::CreatedAt, true, 50, None));
        let q = parse(
            "acme",
            Some(
                "user_id=al%20ice&status=human&admin_assisted=false&created_from=2026-01-01T00:00:00.0005Z\
                  &created_to=2026-01-02T00:00:00.9999Z&sort=message_count&order=asc&limit=200",
            ),
        )
        .unwrap();
        assert_eq!(q.owner.as_deref(), Some("user:al ice"));
        assert_eq!((q.status, q.admin_assisted), (Some(SessionStatus::Human), Some(false)));
        // Sub-millisecond bounds round inwards, so the filter stays exact.
        assert_eq!(q.created_from.unwrap().timestamp_millis() % 1000, 1);
        assert_eq!(q.created_to.unwrap().timestamp_millis() % 1000, 999);
        assert_eq!((q.sort, q.descending, q.limit), (SessionSort::MessageCount, false, 200));
    }

    #[test]
    fn every_problem_is_reported() {
        let e = parse(
            "a",
            Some("status=open&limit=0&order=up&sort=id&admin_assisted=1&created_to=yesterday&x=1"),
        )
        .unwrap_err();
        let mut got = fields(e);
        got.sort();
        assert_eq!(got, ["admin_assisted", "created_to", "limit", "order", "sort", "status", "x"]);
        assert_eq!(fields(parse("a", Some("limit=5&limit=6")).unwrap_err()), ["limit"]);
        assert_eq!(fields(parse("a", Some("user_id=")).unwrap_err()), ["user_id"]);
        // Characters, as the API description counts them (255 of `é` are 510 bytes).
        let long = "%C3%A9".repeat(255);
        assert!(parse("a", Some(&format!("user_id={long}"))).is_ok());
        assert_eq!(fields(parse("a", Some(&format!("user_id={long}x"))).unwrap_err()), ["user_id"]);
        let reversed = "created_from=2026-01-02T00:00:00Z&created_to=2026-01-01T00:00:00Z";
        assert_eq!(fields(parse("a", Some(reversed)).unwrap_err()), ["created_from"]);
    }

    #[test]
    fn a_cursor_continues_only_its_own_query() {
        let q = parse("acme", Some("sort=last_activity_at&status=active")).unwrap();
        let key = SessionKey { key: 42, id: Uuid::new_v4() };
        let c = encode_cursor(&q, key);
        let again =
            parse("acme", Some(&format!("sort=last_activity_at&status=active&limit=3&cursor={c}"))).unwrap();
        assert_eq!(again.after, Some(key));
        for other in [
            format!("sort=created_at&status=active&cursor={c}"),
            format!("sort=last_activity_at&status=active&order=asc&cursor={c}"),
            format!("sort=last_activity_at&cursor={c}"),
            "cursor=bm9wZQ".to_owned(),
            "cursor=***".to_owned(),
        ] {
            assert_eq!(fields(parse("acme", Some(&other)).unwrap_err()), ["cursor"], "{other}");
        }
        assert!(parse("other", Some(&format!("sort=last_activity_at&status=active&cursor={c}"))).is_err());
    }
}
