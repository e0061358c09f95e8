//! The one door every mutating admin action passes through on its way out:
//! [`record`] appends it to the HMAC-chained audit log of SPEC §12 (and logs
//! a structured line, target `switchboard::audit`). Callers await it and stop
//! on its error, so an action whose entry cannot be written fails loudly
//! rather than going unrecorded. `GET /v1/admin/audit` pages through the log;
//! `GET /v1/admin/audit/verify` walks the whole chain.

use super::auth::Actor;
use crate::http::ApiError;
use crate::state::AppState;
use switchboard_core::audit::NewAuditEntry;
use switchboard_core::Subject;

/// The actor of what the command line (`switchboard tenant …`) does: only
/// someone who can run the binary with the database's keys gets there.
pub const CLI_ACTOR: &str = "cli";

/// What was done, by its stable name (what the audit log will store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SessionClose,
    SessionTakeover,
    SessionRelease,
    SessionMessage,
    TenantCreate,
    TenantUpdate,
    TenantDelete,
    TenantKillSwitch,
    GlobalKillSwitch,
    SubjectExported,
    SubjectErased,
    DeliveryRetry,
    DeliveriesResume,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionClose => "session.close",
            Self::SessionTakeover => "session.takeover",
            Self::SessionRelease => "session.release",
            Self::SessionMessage => "session.message",
            Self::TenantCreate => "tenant.create",
            Self::TenantUpdate => "tenant.update",
            Self::TenantDelete => "tenant.delete",
            Self::TenantKillSwitch => "tenant.kill_switch",
            Self::GlobalKillSwitch => "kill_switch",
            Self::SubjectExported => "subject.exported",
            Self::SubjectErased => "subject.erased",
            Self::DeliveryRetry => "delivery.retry",
            Self::DeliveriesResume => "deliveries.resume",
        }
    }
}

/// The tenant an entry belongs to (what a tenant's agents may read): an
/// agent's own; for the operator, the tenant its detail names (session
/// actions) or the tenant a tenant action is about.
fn tenant_of(actor: &Actor, action: Action, target: &str, detail: &serde_json::Value) -> Option<String> {
    if let Some(tenant) = actor.tenant_id().or(detail["tenant_id"].as_str()) {
        return Some(tenant.to_owned());
    }
    match action {
        Action::TenantCreate | Action::TenantUpdate | Action::TenantDelete | Action::TenantKillSwitch => {
            Some(target.to_owned())
        }
        _ => None,
    }
}

/// Records that `actor` did `action` to `target` (a session id, a tenant id,
/// `global`), with `detail` (a small JSON object: the new switch state and
/// its reason, the fields a PATCH changed). Never given secrets: settings
/// only name their variables.
pub async fn record(
    state: &AppState,
    actor: &Actor,
    action: Action,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let by = By {
        label: actor.label(),
        name: actor.display_name(),
        tenant_id: tenant_of(actor, action, target, &detail),
    };
    append(state, by, action, target, detail).await
}

/// The actor of an action a subject took on its own data (`DELETE /v1/me`).
pub const SELF_ACTOR: &str = "self";

/// Records that a visitor or user erased its own data: the entry names it
/// only by [`subject_fingerprint`].
pub async fn record_self(
    state: &AppState,
    tenant_id: &str,
    subject: &Subject,
    action: Action,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let name = match subject {
        Subject::Visitor(_) => "Visitor",
        Subject::User(_) => "User",
    };
    let by = By { label: SELF_ACTOR.into(), name, tenant_id: Some(tenant_id.to_owned()) };
    append(state, by, action, &subject_fingerprint(tenant_id, subject), detail).await
}

/// How the audit log names a subject: never by its id, which must not
/// outlive an erase, but as `sha256:<hex>` of `<tenant>:<subject>`, so
/// whoever knows the id can tell which entries are about it.
pub fn subject_fingerprint(tenant_id: &str, subject: &Subject) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{tenant_id}:{subject}").as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

/// Who an entry says acted, and the tenant it belongs to.
struct By<'a> {
    label: String,
    name: &'a str,
    tenant_id: Option<String>,
}

async fn append(
    state: &AppState,
    by: By<'_>,
    action: Action,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let entry = NewAuditEntry {
        at: state.clock.now(),
        actor: by.label,
        actor_name: by.name.to_owned(),
        tenant_id: by.tenant_id,
        action: action.as_str().to_owned(),
        target: target.to_owned(),
        detail: detail.to_string(),
    };
    let keys = &state.audit_keys;
    let sealed = state.store.append_audit(&entry, keys.current_kid(), keys.current_key()).await;
    let sealed = sealed.map_err(ApiError::internal)?;
    tracing::info!(
        target: "switchboard::audit",
        seq = sealed.seq,
        trace_id = %crate::http::trace::current(),
        actor = %sealed.entry.actor,
        actor_name = %sealed.entry.actor_name,
        tenant = sealed.entry.tenant_id.as_deref().unwrap_or("-"),
        action = action.as_str(),
        object = target,
        detail = %detail,
        "admin action"
    );
    Ok(())
}
