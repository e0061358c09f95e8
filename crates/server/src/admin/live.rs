//! The agent's live view of a session (SPEC §12): `POST /v1/admin/tickets`
//! mints a short-lived ticket bound to the agent, tenant and session, since
//! an `EventSource` cannot send the agent's token; `GET
//! /v1/admin/sessions/{id}/events` is the SSE subscription of SPEC §6 (the
//! same feed, cursor rules, replay and live events as the visitor's),
//! opened with the admin bearer token or that ticket. Admin tickets have a
//! type of their own (`admin_ticket`): end-user endpoints refuse them, and
//! this view refuses end-user tickets.

use super::auth::{self, Actor};
use crate::edge::query_param;
use crate::http::extract::{self, Path};
use crate::http::{trace, ApiError};
use crate::limits;
use crate::realtime::connections::Transport;
use crate::realtime::{cursor, subscribe};
use crate::state::AppState;
use crate::tokens::TokenType;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_core::error::FieldProblem;
use switchboard_core::feed::Feed;
use switchboard_core::tenant::Tenant;
use switchboard_core::time::format;
use switchboard_core::ErrorCode;
use uuid::Uuid;

/// Live views one agent (or the operator) may hold open on a node: a
/// console watches several sessions, so more than a visitor's devices.
pub const VIEWS_PER_AGENT: u32 = 50;

/// The session an admin ticket is for.
// The description's: `parse` reads the JSON.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AdminTicketRequest {
    /// A session of the caller's tenant.
    session_id: Uuid,
}

/// A ticket for the live view of one session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminTicket {
    /// Goes in `?ticket=` of `GET /v1/admin/sessions/{id}/events`.
    pub ticket: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A short-lived ticket for the live view of one session.
///
/// Bound to the caller, the tenant and the session (`session.not_found` for
/// a session of another tenant), valid `ticket_ttl_secs`; for an
/// `EventSource`, which cannot send the bearer token.
#[utoipa::path(
    post,
    path = "/v1/admin/tickets",
    operation_id = "admin_create_ticket",
    tag = crate::openapi::tag::ADMIN,
    params(("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)")),
    request_body(content = AdminTicketRequest, content_type = "application/json"),
    responses((status = 200, body = AdminTicket)),
    security(("user_jwt" = []), ("operator_token" = []))
)]
pub async fn mint(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AdminTicket>, ApiError> {
    let bytes =
        extract::json_body(&headers, body, state.config.max_body_bytes, true).await?.unwrap_or_default();
    let actor = auth::authenticate(&state, &headers)?;
    let tenant = auth::scoped_tenant(&state, &headers, &actor)?;
    let session_id = parse(extract::json_object(&bytes)?)?;
    let found = state.store.get_session(&tenant.id, session_id).await.map_err(ApiError::internal)?;
    if found.is_none() {
        return Err(ErrorCode::SessionNotFound.into());
    }
    let now = state.clock.now();
    let (ticket, expires) = state
        .signer
        .sign(
            TokenType::AdminTicket,
            &tenant.id,
            &actor.label(),
            Some(session_id),
            now,
            state.config.ticket_ttl,
        )
        .map_err(ApiError::internal)?;
    Ok(Json(AdminTicket { ticket, expires_at: format(&expires) }))
}

/// The live view of a session (SSE): agents see everything of it.
///
/// The subscription of SPEC §6 (same feed, cursor rules, replay and live
/// events as the visitor's), opened with the admin bearer token (the
/// operator names the tenant with `X-Tenant-Id`) or an admin ticket in
/// `?ticket=`.
#[utoipa::path(
    get,
    path = "/v1/admin/sessions/{id}/events",
    operation_id = "admin_session_events",
    tag = crate::openapi::tag::ADMIN,
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("X-Tenant-Id" = Option<String>, Header, nullable = false, description = "The tenant (operator)"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]*$", description = "Resume after this seq (what the stream's `id:` lines said)"),
        ("last_event_id" = Option<String>, Query, pattern = "^[0-9]*$", description = "The cursor, where a client cannot set the header")
    ),
    responses(
        (status = 200, description = "The session's events until the client leaves", content_type = "text/event-stream", body = crate::openapi::events::SseEvent),
        (status = 410, description = "The cursor is not valid; reload the history")
    ),
    security(("user_jwt" = []), ("operator_token" = []), ("ticket" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (label, tenant) = viewer(&state, &headers, uri.query(), &raw_id)?;
    known_params(uri.query())?;
    let session_id = extract::session_id(&raw_id)?;
    let session = state.store.get_session(&tenant.id, session_id).await.map_err(ApiError::internal)?;
    let session = session.ok_or(ApiError::new(ErrorCode::SessionNotFound))?;
    let cursor = cursor::from_request(&headers, uri.query())?;
    let ip = limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    let mut slot = state
        .connections
        .open(ip, Transport::Sse, false)
        .map_err(|_| ApiError::new(ErrorCode::ConnectionLimit))?;
    slot.identify(&tenant.id, &label, VIEWS_PER_AGENT)
        .map_err(|_| ApiError::new(ErrorCode::ConnectionLimit))?;
    let feed =
        Feed::open(&state.engine, &tenant, session.id, cursor).await.map_err(subscribe::feed_refusal)?;
    Ok(subscribe::stream(feed, slot, state.config.heartbeat, trace::current()))
}

/// Who is watching, and in which tenant: the admin bearer token (the
/// operator names the tenant with `X-Tenant-Id`), else `?ticket=`.
fn viewer(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    raw_id: &str,
) -> Result<(String, Arc<Tenant>), ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        let actor: Actor = auth::authenticate(state, headers)?;
        let tenant = auth::scoped_tenant(state, headers, &actor)?;
        return Ok((actor.label(), tenant));
    }
    let ticket = query_param(query, "ticket").ok_or(ApiError::new(ErrorCode::AuthMissing))?;
    let claims = state
        .signer
        .verify(&ticket, TokenType::AdminTicket)
        .map_err(|e| ApiError::auth_invalid(format!("admin ticket refused: {e}")))?;
    let tenant = state
        .tenants
        .get(&claims.tid)
        .ok_or_else(|| ApiError::auth_invalid("the admin ticket's tenant is gone"))?;
    // Bound to one session: any other is not found, as for end-user tickets.
    if claims.sid.as_deref().and_then(|s| Uuid::parse_str(s).ok()) != Uuid::parse_str(raw_id).ok() {
        return Err(ErrorCode::SessionNotFound.into());
    }
    Ok((claims.sub, tenant))
}

/// The view takes `ticket` and `last_event_id`; anything else is refused,
/// like unknown parameters elsewhere in the admin API.
fn known_params(query: Option<&str>) -> Result<(), ApiError> {
    let problems: Vec<FieldProblem> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k != "ticket" && k != "last_event_id")
        .map(|(k, _)| FieldProblem::new(k.as_ref(), "unknown parameter"))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// `{session_id}`: required, a UUID; nothing else.
pub(crate) fn parse(mut body: Map<String, Value>) -> Result<Uuid, ApiError> {
    let session = crate::handlers::chat_body::session_id(body.remove("session_id"));
    let mut problems = Vec::new();
    if let Err(p) = &session {
        problems.push(FieldProblem::new("session_id", *p));
    }
    problems.extend(extract::unknown_fields(&body));
    match session {
        Ok(id) if problems.is_empty() => Ok(id),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_ticket_names_exactly_one_session() {
        let id = Uuid::new_v4();
        let fields = |v: Value| parse(v.as_object().unwrap().clone()).map_err(|e| e.problem_fields());
        assert_eq!(fields(json!({"session_id": id})), Ok(id));
        assert_eq!(fields(json!({})), Err(vec!["session_id".into()]));
        assert_eq!(fields(json!({"session_id": "x", "y": 1})), Err(vec!["session_id".into(), "y".into()]));
        assert!(known_params(Some("ticket=a&last_event_id=3")).is_ok());
        assert!(known_params(None).is_ok());
        assert!(known_params(Some("tenant=acme")).is_err());
    }
}
