//! Tenants' user JWTs (SPEC §3): what a token must carry and how it is
//! verified. Only the tenant's one configured algorithm is accepted, `exp` and
//! `sub` are required, `nbf` is honoured, and the token must name the tenant
//! (`tid`, or `aud` as a string or an array). The reason a token fails is for
//! the log only; clients get one `auth.invalid`.

use super::keys::UserKey;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Clock skew tolerated on `exp`, `nbf` and the agent lifetime, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Longest `sub` accepted (it becomes the owner `user:<sub>` of sessions).
pub const MAX_SUB_BYTES: usize = 255;
/// Longest display name kept from `name`; longer ones are cut.
pub const MAX_NAME_CHARS: usize = 100;

/// `aud`: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, tenant: &str) -> bool {
        match self {
            Self::One(a) => a == tenant,
            Self::Many(all) => all.iter().any(|a| a == tenant),
        }
    }
}

/// The claims of a user JWT, as tenants' backends (and `switchboard token
/// mint`) write them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// `user` (the default) or `admin` (an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A verified user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserToken {
    pub sub: String,
    /// The `name` claim, trimmed; `None` when absent or blank.
    pub name: Option<String>,
    pub admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserTokenError {
    /// Bad, expired or foreign: `auth.invalid`.
    #[error("user token refused: {0}")]
    Invalid(String),
    /// Verified with this tenant's key, but it names another tenant:
    /// `auth.context_mismatch`.
    #[error("user token names another tenant")]
    OtherTenant,
}

fn invalid(reason: impl Into<String>) -> UserTokenError {
    UserTokenError::Invalid(reason.into())
}

/// Verifies `token` for `tenant` with its key. `now` (unix seconds) judges the
/// agent lifetime; `exp` and `nbf` are judged by the system clock.
pub fn verify(
    key: &UserKey,
    token: &str,
    tenant: &str,
    now: i64,
    agent_max_ttl: Duration,
) -> Result<UserToken, UserTokenError> {
    // `alg: none` and unknown algorithms do not even parse as a header.
    let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("malformed: {e}")))?;
    if header.alg != key.algorithm {
        return Err(invalid(format!("algorithm {:?} where the tenant uses {:?}", header.alg, key.algorithm)));
    }
    let claims = jsonwebtoken::decode::<UserClaims>(token, &key.key, &validation(key.algorithm))
        .map_err(|e| invalid(reason(e.kind())))?
        .claims;
    if claims.sub.trim().is_empty()
        || claims.sub.len() > MAX_SUB_BYTES
        || claims.sub.chars().any(char::is_control)
    {
        return Err(invalid("sub is empty, too long or has control characters"));
    }
    match (&claims.tid, &claims.aud) {
        (Some(tid), _) if tid == tenant => {}
        (None, Some(aud)) if aud.contains(tenant) => {}
        (None, None) => return Err(invalid("names no tenant (neither tid nor aud)")),
        _ => return Err(UserTokenError::OtherTenant),
    }
    let admin = match claims.role.as_deref() {
        None | Some("user") => false,
        Some("admin") => true,
        Some(_) => return Err(invalid("role is neither user nor admin")),
    };
    if admin {
        // The longer of the two, so a future `iat` cannot stretch a token.
        let lifetime = (claims.exp - claims.iat.unwrap_or(now)).max(claims.exp - now);
        let max = i64::try_from(agent_max_ttl.as_secs()).unwrap_or(i64::MAX);
        if lifetime > max.saturating_add(LEEWAY_SECS as i64) {
            return Err(invalid(format!("an admin token living {lifetime} s, over the {max} s allowed")));
        }
    }
    Ok(UserToken { sub: claims.sub, name: display_name(claims.name.as_deref()), admin })
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut v = Validation::new(algorithm);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    // `aud` is checked above against the tenant, with `tid` as the alternative.
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "sub"]);
    v
}

fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "expired".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => "wrong algorithm".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
        other => format!("{other:?}"),
    }
}

/// The `name` claim as a display name: trimmed, without control characters,
/// at most `MAX_NAME_CHARS`; `None` when nothing is left.
fn display_name(name: Option<&str>) -> Option<String> {
    let clean: String = name?.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.chars().take(MAX_NAME_CHARS).collect::<String>().trim_end().to_owned())
}

/// What an agent is called where others see it: its `name`, else "Agent",
/// never its `sub` (which may be an email address or an internal id).
pub fn agent_display_name(name: Option<&str>) -> &str {
    name.filter(|n| !n.trim().is_empty()).unwrap_or("Agent")
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
