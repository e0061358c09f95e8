//! Who is calling (SPEC §3): runtime-signed visitor tokens, tenants' user
//! JWTs, tickets, and the revocation of linked visitors. `tokens.rs` signs the
//! runtime's own tokens; this module decides what a presented credential
//! proves. It must not do I/O per request: keys and revocations are in memory.

pub mod keys;
pub mod revoked;
pub mod tickets;
pub mod user;
pub mod visitor;

pub use keys::UserKeys;
pub use revoked::RevokedVisitors;

use crate::config::Config;
use crate::gate::Caller;
use crate::http::ApiError;
use crate::state::AppState;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use switchboard_core::store::Store;
use switchboard_core::tenant::Tenant;
use switchboard_core::time::Clock;
use switchboard_core::{ErrorCode, Subject};
use visitor::VisitorRefusal;

/// The identity state every request consults (an `AppState` field).
pub struct Identity {
    pub keys: UserKeys,
    pub revoked: Arc<RevokedVisitors>,
    /// The operator token, so it can be refused on end-user endpoints.
    operator: Option<SecretString>,
}

impl Identity {
    pub fn new(keys: UserKeys, revoked: Arc<RevokedVisitors>, operator: Option<String>) -> Self {
        Self { keys, revoked, operator: operator.filter(|t| !t.is_empty()).map(SecretString::from) }
    }

    /// Whether `token` is the operator's, compared in constant time.
    pub fn is_operator_token(&self, token: &str) -> bool {
        self.operator
            .as_ref()
            .is_some_and(|op| constant_time_eq(op.expose_secret().as_bytes(), token.as_bytes()))
    }
}

/// Loads every configured tenant's key (a missing variable or unreadable file
/// is a startup error naming it), the operator token, and the links that
/// still revoke visitor tokens; then keeps those links fresh.
pub async fn start(
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> Result<Identity, String> {
    let keys =
        UserKeys::preload(config.tenants.iter().filter_map(|t| t.jwt.as_ref().map(|j| (t.id.as_str(), j))))
            .map_err(|e| e.to_string())?;
    // Two leeways: one for the token's own `exp`, one for clocks between nodes.
    let retain = config.visitor_token_ttl + std::time::Duration::from_secs(2 * user::LEEWAY_SECS);
    let revoked = Arc::new(RevokedVisitors::new(retain));
    let now = clock.now();
    revoked.load(store.as_ref(), now).await.map_err(|e| format!("database: {e}"))?;
    tracing::debug!(links = revoked.count(), "linked visitors loaded");
    revoked.clone().spawn_refresher(store.clone(), clock.clone(), now);
    Ok(Identity::new(keys, revoked, std::env::var(&config.operator_token_env).ok()))
}

/// Compares without stopping at the first difference, so the time taken says
/// nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What a bearer token proves in `tenant`: a visitor (runtime-signed visitor
/// token) or a user (the tenant's JWT). Tickets and the operator token are
/// never bearer credentials of end-user endpoints.
pub fn bearer_caller(state: &AppState, token: &str, tenant: &Tenant) -> Result<Caller, ApiError> {
    if state.identity.is_operator_token(token) {
        return Err(ApiError::auth_invalid("the operator token on an end-user endpoint"));
    }
    if runtime_signed(token) {
        visitor_caller(state, token, tenant)
    } else {
        user_caller(state, token, tenant)
    }
}

fn visitor_caller(state: &AppState, token: &str, tenant: &Tenant) -> Result<Caller, ApiError> {
    let now = state.clock.now();
    let ttl = state.config.visitor_token_ttl;
    match visitor::check_visitor(&state.signer, &state.identity.revoked, token, &tenant.id, now, ttl) {
        Ok(id) => Ok(Caller { subject: Subject::Visitor(id), name: None, admin: false }),
        Err(e @ VisitorRefusal::OtherTenant) => Err(mismatch(e)),
        Err(e) => Err(ApiError::auth_invalid(e)),
    }
}

fn user_caller(state: &AppState, token: &str, tenant: &Tenant) -> Result<Caller, ApiError> {
    let key = match state.identity.keys.get(tenant) {
        Some(Ok(key)) => key,
        Some(Err(e)) => return Err(ApiError::auth_invalid(format!("the tenant's JWT key is unusable: {e}"))),
        None => {
            return Err(ApiError::auth_invalid("not a runtime token, and the tenant accepts no user JWTs"))
        }
    };
    let now = state.clock.now().timestamp();
    match user::verify(&key, token, &tenant.id, now, state.config.agent_token_max_ttl) {
        Ok(user) => Ok(Caller { subject: Subject::User(user.sub), name: user.name, admin: user.admin }),
        Err(e @ user::UserTokenError::OtherTenant) => Err(mismatch(e)),
        Err(e) => Err(ApiError::auth_invalid(e)),
    }
}

fn mismatch(reason: impl std::fmt::Display) -> ApiError {
    tracing::info!(trace_id = %crate::http::trace::current(), reason = %reason, "credentials refused");
    ErrorCode::AuthContextMismatch.into()
}

/// Whether the token claims to be one of the runtime's own (`typ` visitor,
/// ticket or admin ticket). Read unverified, only to choose which verification applies; the
/// chosen one then checks everything. Other `typ` values (some identity
/// providers write `typ: "Bearer"`) are tenants' tokens.
fn runtime_signed(token: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Typ {
        typ: Option<serde_json::Value>,
    }
    let Some(payload) = token.split('.').nth(1) else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else { return false };
    let typ = serde_json::from_slice::<Typ>(&bytes).ok().and_then(|t| t.typ);
    // An admin ticket too: verified as a visitor token, it is refused for
    // its type (and logged as such), not tried as a tenant's JWT.
    matches!(typ.as_ref().and_then(|v| v.as_str()), Some("visitor" | "ticket" | "admin_ticket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"HS256"}"#), b64(payload))
    }

    #[test]
    fn runtime_tokens_are_told_by_their_typ() {
        assert!(runtime_signed(&token_with(r#"{"typ":"visitor","sub":"x"}"#)));
        assert!(runtime_signed(&token_with(r#"{"typ":"ticket"}"#)));
        assert!(runtime_signed(&token_with(r#"{"typ":"admin_ticket"}"#)));
        assert!(!runtime_signed(&token_with(r#"{"typ":"Bearer","sub":"x"}"#)));
        assert!(!runtime_signed(&token_with(r#"{"sub":"x"}"#)));
        assert!(!runtime_signed(&token_with(r#"{"typ":1}"#)));
        assert!(!runtime_signed("garbage"));
        assert!(!runtime_signed(""));
    }

    #[test]
    fn operator_tokens_compare_exactly() {
        let keys = UserKeys::default();
        let revoked = Arc::new(RevokedVisitors::new(std::time::Duration::from_secs(60)));
        let id = Identity::new(keys, revoked.clone(), Some("s3cret-operator".into()));
        assert!(id.is_operator_token("s3cret-operator"));
        assert!(!id.is_operator_token("s3cret-operatoR"));
        assert!(!id.is_operator_token("s3cret"));
        assert!(!id.is_operator_token(""));
        let none = Identity::new(UserKeys::default(), revoked, Some(String::new()));
        assert!(!none.is_operator_token(""));
    }
}
