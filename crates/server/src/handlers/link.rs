//! `POST /v1/identity/link` (SPEC §3, guest to user): a user, authenticated
//! with the tenant's JWT, presents the visitor token the widget held before
//! login; the visitor's sessions move to the user and the visitor token is
//! revoked. A visitor is linked once.
//!
//! Refusals: a caller that is not a user → 403 `auth.forbidden`; a missing or
//! malformed `visitor_token`, one that is not a valid unexpired visitor token
//! of this tenant, or one whose visitor is already linked → 400
//! `request.invalid` on the field `visitor_token`, the problem saying which
//! (invalid or already linked, never why a token is invalid).

use crate::edge::Edge;
use crate::gate;
use crate::http::{extract, ApiError};
use crate::identity::visitor::{check_visitor, VisitorRefusal};
use crate::realtime::connections::CloseReason;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{Map, Value};
use switchboard_core::error::FieldProblem;
use switchboard_core::store::LinkOutcome;
use switchboard_core::{ErrorCode, Subject};

const NOT_A_VISITOR_TOKEN: &str = "is not a valid visitor token of this tenant";
const ALREADY_LINKED: &str = "was already linked to a user";

// The description's shape of what `parse` accepts.
/// The visitor to link to the signed-in user.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the description's; `parse` reads the JSON
pub struct LinkRequest {
    /// The visitor token the widget held before login.
    #[schema(min_length = 1, pattern = "\\S")]
    visitor_token: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Linked {
    /// How many sessions moved to the user.
    linked_sessions: u64,
    user_id: String,
}

/// Move a visitor's sessions to the signed-in user.
#[utoipa::path(
    post,
    path = "/v1/identity/link",
    tag = crate::openapi::tag::IDENTITY,
    request_body(content = LinkRequest, content_type = "application/json"),
    responses((status = 200, body = Linked)),
    security(("user_jwt" = []))
)]
pub async fn link(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Linked>, ApiError> {
    let bytes =
        extract::json_body(&headers, body, state.config.max_body_bytes, true).await?.unwrap_or_default();
    let caller = gate::caller(&state, &headers, &edge)?;
    let Subject::User(user_id) = &caller.subject else {
        return Err(ErrorCode::AuthForbidden.into());
    };
    let tenant = &edge.tenant;
    gate::kill_switch(&state, tenant)?;
    let token = parse(extract::json_object(&bytes)?)?;
    let now = state.clock.now();
    let revoked = &state.identity.revoked;
    let visitor =
        check_visitor(&state.signer, revoked, &token, &tenant.id, now, state.config.visitor_token_ttl)
            .map_err(|e| {
                tracing::info!(reason = %e, "visitor token refused for a link");
                match e {
                    VisitorRefusal::Linked => ApiError::invalid_field("visitor_token", ALREADY_LINKED),
                    _ => ApiError::invalid_field("visitor_token", NOT_A_VISITOR_TOKEN),
                }
            })?;
    let outcome = state
        .store
        .link_visitor(&tenant.id, &Subject::Visitor(visitor).to_string(), &caller.subject.to_string(), now)
        .await
        .map_err(ApiError::internal)?;
    // Revoked here at once; other nodes learn of it from the store.
    revoked.insert(&tenant.id, visitor, now);
    let subject = Subject::Visitor(visitor).to_string();
    state.connections.close_subject(&tenant.id, &subject, CloseReason::Revoked);
    match outcome {
        LinkOutcome::Linked { sessions } => {
            tracing::info!(tenant = %tenant.id, sessions, "visitor linked to a user");
            Ok(Json(Linked { linked_sessions: sessions, user_id: user_id.clone() }))
        }
        LinkOutcome::AlreadyLinked => Err(ApiError::invalid_field("visitor_token", ALREADY_LINKED)),
    }
}

/// `{visitor_token}`: a non-empty string; nothing else.
pub(crate) fn parse(mut body: Map<String, Value>) -> Result<String, ApiError> {
    let mut problems = Vec::new();
    let token = match body.remove("visitor_token") {
        None | Some(Value::Null) => {
            problems.push(FieldProblem::new("visitor_token", "is required"));
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => {
            problems.push(FieldProblem::new("visitor_token", "must not be empty"));
            None
        }
        Some(_) => {
            problems.push(FieldProblem::new("visitor_token", "must be a string"));
            None
        }
    };
    problems.extend(extract::unknown_fields(&body));
    match token {
        Some(t) if problems.is_empty() => Ok(t),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Result<String, Vec<String>> {
        parse(v.as_object().unwrap().clone()).map_err(|e| e.problem_fields())
    }

    #[test]
    fn visitor_token_is_required_and_alone() {
        assert_eq!(fields(json!({"visitor_token": "t"})), Ok("t".into()));
        for bad in [
            json!({}),
            json!({"visitor_token": null}),
            json!({"visitor_token": " "}),
            json!({"visitor_token": 1}),
        ] {
            assert_eq!(fields(bad), Err(vec!["visitor_token".into()]));
        }
        assert_eq!(fields(json!({"visitor_token": "t", "x": 1})), Err(vec!["x".into()]));
    }
}
