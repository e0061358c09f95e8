//! Runtime-signed tokens: visitor tokens (bearer credentials of anonymous
//! visitors) and tickets (short-lived credentials that travel in URLs). Both
//! are HS256 JWTs under the runtime's signing key, told apart by `typ`, so one
//! is never accepted where the other belongs. `kid` names the key, so keys can
//! rotate while older tokens still verify.

use base64::Engine;
use chrono::SubsecRound;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use switchboard_core::time::Timestamp;
use switchboard_store::Keyring;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Visitor,
    Ticket,
    /// An agent's (or the operator's) ticket for the admin live view: a type
    /// of its own, so it never opens an end-user view and an end-user ticket
    /// never opens an admin one.
    #[serde(rename = "admin_ticket")]
    AdminTicket,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub typ: TokenType,
    pub sub: String,
    pub tid: String,
    pub exp: i64,
    pub iat: i64,
    /// The one session a ticket opens, if bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token has no known key id")]
    UnknownKey,
    #[error("token is of type {0:?}, not accepted here")]
    WrongType(TokenType),
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Signs and verifies runtime tokens.
pub struct Signer {
    keys: Keyring,
}

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 30;

impl Signer {
    pub fn new(keys: Keyring) -> Self {
        Self { keys }
    }

    /// Signs claims for `subject` in `tenant`, valid for `ttl` from `now`.
    pub fn sign(
        &self,
        typ: TokenType,
        tenant: &str,
        subject: &str,
        session: Option<uuid::Uuid>,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(String, Timestamp), TokenError> {
        let expires = now + ttl;
        let claims = Claims {
            typ,
            sub: subject.to_owned(),
            tid: tenant.to_owned(),
            exp: expires.timestamp(),
            iat: now.timestamp(),
            sid: session.map(|s| s.to_string()),
        };
        let kid = self.keys.current_kid();
        let key = self.keys.key(kid).ok_or(TokenError::UnknownKey)?;
        let header = Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::HS256) };
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key))?;
        // The token's `exp` is in whole seconds; so is the expiry shown.
        Ok((token, expires.trunc_subsecs(0)))
    }

    /// Verifies signature, expiry and type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.key(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key), &validation)?.claims;
        if claims.typ != expected {
            return Err(TokenError::WrongType(claims.typ));
        }
        Ok(claims)
    }
}

/// The tenant a token claims, read without verifying it: only to pick the
/// tenant whose rules then verify the token. `tid`, else an `aud` naming one
/// audience (a string, or an array of one); with several audiences the
/// request must name its tenant.
pub fn claimed_tenant(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    struct Tid {
        tid: Option<String>,
        aud: Option<Aud>,
    }
    let claims = serde_json::from_slice::<Tid>(&bytes).ok()?;
    claims.tid.or(match claims.aud {
        Some(Aud::One(aud)) => Some(aud),
        Some(Aud::Many(mut all)) if all.len() == 1 => all.pop(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn signer() -> Signer {
        Signer::new(Keyring::generate("k1"))
    }

    #[test]
    fn visitor_tokens_verify_and_name_their_tenant() {
        let s = signer();
        let (t, _) = s
            .sign(TokenType::Visitor, "acme", "visitor:x", None, Utc::now(), Duration::from_secs(60))
            .unwrap();
        let c = s.verify(&t, TokenType::Visitor).unwrap();
        assert_eq!((c.tid.as_str(), c.sub.as_str()), ("acme", "visitor:x"));
        assert_eq!(claimed_tenant(&t).as_deref(), Some("acme"));
    }

    #[test]
    fn the_claimed_tenant_falls_back_to_a_single_audience() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claimed = |payload: &str| claimed_tenant(&format!("{}.{}.sig", b64("{}"), b64(payload)));
        assert_eq!(claimed(r#"{"tid":"a","aud":"b"}"#).as_deref(), Some("a"));
        assert_eq!(claimed(r#"{"aud":"b"}"#).as_deref(), Some("b"));
        assert_eq!(claimed(r#"{"aud":["c"]}"#).as_deref(), Some("c"));
        assert_eq!(claimed(r#"{"aud":["c","d"]}"#), None);
        assert_eq!(claimed(r#"{"sub":"x"}"#), None);
        assert_eq!(claimed("not json"), None);
    }

    #[test]
    fn types_keys_and_expiry_are_enforced() {
        let s = signer();
        let now = Utc::now();
        let (ticket, _) =
            s.sign(TokenType::Ticket, "a", "visitor:x", None, now, Duration::from_secs(60)).unwrap();
        assert!(matches!(s.verify(&ticket, TokenType::Visitor), Err(TokenError::WrongType(_))));
        assert!(matches!(s.verify(&ticket, TokenType::AdminTicket), Err(TokenError::WrongType(_))));
        let (admin, _) =
            s.sign(TokenType::AdminTicket, "a", "agent:ada", None, now, Duration::from_secs(60)).unwrap();
        assert!(matches!(s.verify(&admin, TokenType::Ticket), Err(TokenError::WrongType(_))));
        assert_eq!(s.verify(&admin, TokenType::AdminTicket).unwrap().sub, "agent:ada");
        let (old, _) = s
            .sign(
                TokenType::Visitor,
                "a",
                "visitor:x",
                None,
                now - chrono::Duration::hours(2),
                Duration::from_secs(60),
            )
            .unwrap();
        assert!(s.verify(&old, TokenType::Visitor).is_err());
        let (foreign, _) =
            signer().sign(TokenType::Visitor, "a", "visitor:x", None, now, Duration::from_secs(60)).unwrap();
        assert!(s.verify(&foreign, TokenType::Visitor).is_err());
        assert!(s.verify("not.a.token", TokenType::Visitor).is_err());
    }
}
