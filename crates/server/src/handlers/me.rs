//! The caller's own data (SPEC §18), and the same for an operator acting on
//! a tenant's subject (`admin::subjects`).
//!
//! `GET /v1/me/export`: everything stored about the visitor or user as one
//! JSON document — their sessions with their messages (as they see them:
//! tool displays, never the tenant's raw tool payloads) and, for a user,
//! their memory. Streamed page by page through a small bounded channel, so
//! a subject with thousands of messages is never held in memory whole; a
//! store failure midway ends the body early (a truncated document, never a
//! wrong one).
//!
//! `DELETE /v1/me`: every running answer of the subject stopped, then every
//! row of it wiped in one transaction (`SessionLifecycle::erase_subject`);
//! a visitor's token is refused from then on, on every node. The audit entry
//! holds counts and the subject's fingerprint, no content and no id.

use crate::admin::audit::{self, Action};
use crate::edge::Edge;
use crate::gate;
use crate::http::ApiError;
use crate::realtime::connections::CloseReason;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use switchboard_core::memory::Memory;
use switchboard_core::retention::retained_since;
use switchboard_core::store::Erased;
use switchboard_core::store::{SessionCursor, StoreError};
use switchboard_core::tenant::Tenant;
use switchboard_core::time::format;
use switchboard_core::{Session, Subject};
use tokio::sync::mpsc;

/// Sessions and messages read per round trip.
const PAGE: u32 = 200;
/// Chunks written ahead of the client.
const AHEAD: usize = 8;

type Chunk = Result<Bytes, std::io::Error>;

// The description's shape of what `write_export` streams.
/// Everything stored about a subject: one JSON document, streamed as it is read.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the description's; `write_export` writes the JSON
pub struct Export {
    subject: ExportSubject,
    #[schema(format = DateTime)]
    exported_at: String,
    sessions: Vec<ExportSession>,
    memory: super::memory::MemoryList,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExportSubject {
    /// `visitor` or `user`.
    kind: String,
    id: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExportSession {
    session: Session,
    /// Oldest first, within the tenant's retention.
    messages: Vec<switchboard_core::Message>,
}

/// Everything stored about the caller, as one JSON document.
#[utoipa::path(
    get,
    path = "/v1/me/export",
    operation_id = "export_me",
    tag = crate::openapi::tag::ME,
    responses((status = 200, body = Export)),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = gate::authorized(&state, &headers, &edge)?;
    // Heavy for the store, so held by the rate limits as chat is.
    crate::limits::admit(&state, &edge, &headers, Some(&caller)).await?;
    Ok(export_response(state, edge.tenant.clone(), caller.subject))
}

/// Erase everything stored about the caller.
#[utoipa::path(
    delete,
    path = "/v1/me",
    operation_id = "erase_me",
    tag = crate::openapi::tag::ME,
    responses((status = 204, description = "Erased")),
    security(("visitor_token" = []), ("user_jwt" = []))
)]
pub async fn erase(
    State(state): State<AppState>,
    Extension(edge): Extension<Edge>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = gate::authorized(&state, &headers, &edge)?;
    // Each erase is a transaction and an audit entry: held by the limits too.
    crate::limits::admit(&state, &edge, &headers, Some(&caller)).await?;
    let subject = caller.subject;
    let erased = erase_subject(&state, &edge.tenant.id, &subject).await?;
    audit::record_self(
        &state,
        &edge.tenant.id,
        &subject,
        Action::SubjectErased,
        json!({"kind": subject.kind(), "erased": erased}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erases everything stored about `subject` in the tenant; a visitor's
/// token is refused at once here (other nodes read the revocation from the
/// store) and its open connections close.
pub async fn erase_subject(state: &AppState, tenant_id: &str, subject: &Subject) -> Result<Erased, ApiError> {
    let now = state.clock.now();
    let erased =
        state.lifecycle().erase_subject(tenant_id, subject, now).await.map_err(ApiError::internal)?;
    if let Subject::Visitor(visitor) = subject {
        state.identity.revoked.insert(tenant_id, *visitor, now);
        state.connections.close_subject(tenant_id, &subject.to_string(), CloseReason::Revoked);
    }
    tracing::info!(tenant = %tenant_id, sessions = erased.sessions, messages = erased.messages, "subject erased");
    Ok(erased)
}

/// The export document of `subject`, streamed.
pub fn export_response(state: AppState, tenant: Arc<Tenant>, subject: Subject) -> Response {
    let (tx, rx) = mpsc::channel::<Chunk>(AHEAD);
    tokio::spawn(async move {
        if let Err(e) = write_export(&state, &tenant, &subject, &tx).await {
            tracing::error!(error = %e, "an export stopped midway");
            let _ = tx.send(Err(std::io::Error::other("the export stopped midway"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
}

/// Why an export stopped: the store failed, or the client left.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the client left")]
    Gone,
}

async fn send(tx: &mpsc::Sender<Chunk>, text: String) -> Result<(), Stopped> {
    tx.send(Ok(Bytes::from(text))).await.map_err(|_| Stopped::Gone)
}

async fn write_export(
    state: &AppState,
    tenant: &Tenant,
    subject: &Subject,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Stopped> {
    let now = state.clock.now();
    let head = switchboard_core::outbound::subject_json(subject);
    send(tx, format!(r#"{{"subject":{head},"exported_at":"{}","sessions":["#, format(&now))).await?;
    let (owner, since) = (subject.to_string(), retained_since(now, tenant.retention_days));
    let mut after: Option<SessionCursor> = None;
    let mut first = true;
    loop {
        let sessions = state.store.list_sessions(&tenant.id, &owner, PAGE, after.as_ref()).await?;
        for session in &sessions {
            let comma = if std::mem::take(&mut first) { "" } else { "," };
            send(tx, format!(r#"{comma}{{"session":{},"messages":["#, to_json(session))).await?;
            write_messages(state, tenant, session, since, tx).await?;
            send(tx, "]}".into()).await?;
        }
        match sessions.last() {
            Some(last) if sessions.len() == PAGE as usize => {
                after = Some(SessionCursor { last_activity_at: last.last_activity_at, id: last.id });
            }
            _ => break,
        }
    }
    let items = match Memory::of(state.store.as_ref(), &tenant.id, subject) {
        Ok(memory) => memory.list().await.map_err(|e| StoreError::Database(e.to_string()))?,
        Err(_) => Vec::new(),
    };
    send(tx, format!(r#"],"memory":{{"items":{}}}}}"#, to_json(&items))).await
}

/// A session's messages, oldest first, those past the tenant's retention left out.
async fn write_messages(
    state: &AppState,
    tenant: &Tenant,
    session: &Session,
    since: switchboard_core::time::Timestamp,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Stopped> {
    let (mut after, mut first) = (0, true);
    loop {
        let page = state.store.messages_after(&tenant.id, session.id, after, PAGE).await?;
        let mut text = String::new();
        for message in page.iter().filter(|m| m.created_at >= since) {
            if !std::mem::take(&mut first) {
                text.push(',');
            }
            text.push_str(&to_json(message));
        }
        if !text.is_empty() {
            send(tx, text).await?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => return Ok(()),
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
