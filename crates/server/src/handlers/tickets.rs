//! `POST /v1/tickets`: a short-lived ticket for the caller, optionally bound
//! to one of its sessions, for the endpoints that take `?ticket=` (SPEC §3).

use super::sessions::owned_session;
use crate::edge::Edge;
use crate::gate;
use crate::http::{extract, ApiError};
use crate::identity::tickets;
use crate::limits;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use switchboard_core::time::format;
use uuid::Uuid;

/// A new ticket, for `?ticket=` of the SSE subscription and the WebSocket.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ticket {
    ticket: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

// The description's shape of what `parse` accepts.
/// Optional: the session to bind the ticket to.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the description's; `parse` reads the JSON
pub struct TicketRequest {
    /// Binds the ticket to this session of the caller's.
    session_id: Option<Uuid>,
}

/// Mint a ticket, optionally bound to one of the caller's sessions.
#[utoipa::path(
    post,
    path = "/v1/tickets",
    operation_id = "create_ticket",
    tag = crate::openapi::tag::IDENTITY,
    request_body(content = Option<TicketRequest>, content_type = "application/json"),
    responses((status = 200, body = Ticket)),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Ticket>, ApiError> {
    let bytes = extract::json_body(&headers, body, state.config.max_body_bytes, false).await?;
    let caller = gate::caller(&state, &headers, &edge)?;
    gate::kill_switch(&state, &edge.tenant)?;
    limits::admit(&state, &edge, &headers, Some(&caller)).await?;
    let session = match bytes {
        Some(b) => parse(extract::json_object(&b)?)?,
        None => None,
    };
    if let Some(id) = session {
        owned_session(&state, &edge.tenant, &caller.subject, &id.to_string()).await?;
    }
    let (ticket, expires) = tickets::mint(&state, &edge.tenant.id, &caller.subject, session)?;
    Ok(Json(Ticket { ticket, expires_at: format(&expires) }))
}

/// `{session_id?}`: a UUID or null; nothing else.
pub(crate) fn parse(mut body: Map<String, Value>) -> Result<Option<Uuid>, ApiError> {
    let mut problems = Vec::new();
    let session = match body.remove("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Uuid::parse_str(&s) {
            Ok(id) => Some(id),
            Err(_) => {
                problems.push(FieldProblem::new("session_id", "must be a UUID"));
                None
            }
        },
        Some(_) => {
            problems.push(FieldProblem::new("session_id", "must be a string (a UUID)"));
            None
        }
    };
    problems.extend(extract::unknown_fields(&body));
    if problems.is_empty() {
        Ok(session)
    } else {
        Err(ApiError::invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Result<Option<Uuid>, Vec<String>> {
        parse(v.as_object().unwrap().clone()).map_err(|e| e.problem_fields())
    }

    #[test]
    fn session_id_is_optional_and_nothing_else_is_allowed() {
        let id = Uuid::new_v4();
        assert_eq!(fields(json!({})), Ok(None));
        assert_eq!(fields(json!({"session_id": null})), Ok(None));
        assert_eq!(fields(json!({"session_id": id})), Ok(Some(id)));
        assert_eq!(fields(json!({"session_id": "nope"})), Err(vec!["session_id".into()]));
        assert_eq!(
            fields(json!({"session_id": 7, "b": 1, "a": 2})),
            Err(vec!["session_id".into(), "a".into(), "b".into()])
        );
    }
}
