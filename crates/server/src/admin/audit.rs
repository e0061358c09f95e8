//! The one door every mutating admin action passes through on its way out:
//! [`record`]. Today it writes one structured log line (target
//! `switchboard::audit`) naming who did what to what. The HMAC-chained,
//! append-only audit store of SPEC §12 replaces the body of `record` and
//! nothing else: callers already await it and stop on its error, so an
//! action whose entry cannot be written will fail loudly rather than go
//! unrecorded.

use super::auth::Actor;
use crate::http::ApiError;
use crate::state::AppState;

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
        }
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
    let _ = state;
    tracing::info!(
        target: "switchboard::audit",
        trace_id = %crate::http::trace::current(),
        actor = %actor.label(),
        actor_name = actor.display_name(),
        tenant = actor.tenant_id().unwrap_or("-"),
        action = action.as_str(),
        object = target,
        detail = %detail,
        "admin action"
    );
    Ok(())
}
