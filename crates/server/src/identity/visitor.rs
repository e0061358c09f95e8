//! Visitor tokens (runtime-signed, `typ: "visitor"`) as bearer credentials
//! and as the proof a guest-to-user link is given: signature, type, tenant,
//! age, and whether the visitor was linked (then its tokens are revoked).

use super::revoked::RevokedVisitors;
use crate::tokens::{Signer, TokenType};
use std::time::Duration;
use switchboard_core::time::Timestamp;
use switchboard_core::Subject;
use uuid::Uuid;

/// Why a visitor token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisitorRefusal {
    /// Bad signature or key, wrong type, expired, too old, malformed.
    #[error("visitor token refused: {0}")]
    Invalid(String),
    /// A good token of another tenant.
    #[error("visitor token of another tenant")]
    OtherTenant,
    /// The visitor was linked to a user: its tokens are revoked.
    #[error("the visitor was linked to a user; its tokens are revoked")]
    Linked,
}

/// The visitor a token proves, in `tenant`. `ttl` is the configured visitor
/// token lifetime: a token issued longer ago than that is refused whatever
/// its `exp` says, so a link needs remembering only that long.
pub fn check_visitor(
    signer: &Signer,
    revoked: &RevokedVisitors,
    token: &str,
    tenant: &str,
    now: Timestamp,
    ttl: Duration,
) -> Result<Uuid, VisitorRefusal> {
    let claims =
        signer.verify(token, TokenType::Visitor).map_err(|e| VisitorRefusal::Invalid(e.to_string()))?;
    if claims.tid != tenant {
        return Err(VisitorRefusal::OtherTenant);
    }
    let Some(Subject::Visitor(id)) = Subject::parse(&claims.sub) else {
        return Err(VisitorRefusal::Invalid("a visitor token whose subject is not a visitor".into()));
    };
    let max_age =
        i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).saturating_add(super::user::LEEWAY_SECS as i64);
    if now.timestamp().saturating_sub(claims.iat) > max_age {
        return Err(VisitorRefusal::Invalid("issued longer ago than visitor_token_ttl_secs".into()));
    }
    if revoked.contains(tenant, id) {
        return Err(VisitorRefusal::Linked);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use switchboard_store::Keyring;

    const TTL: Duration = Duration::from_secs(3600);

    fn sign(
        signer: &Signer,
        typ: TokenType,
        tenant: &str,
        sub: &str,
        issued: Timestamp,
        ttl: Duration,
    ) -> String {
        signer.sign(typ, tenant, sub, None, issued, ttl).unwrap().0
    }

    #[test]
    fn checks_type_tenant_age_and_links() {
        let signer = Signer::new(Keyring::generate("k1"));
        let revoked = RevokedVisitors::new(TTL);
        let now = Utc::now();
        let id = Uuid::new_v4();
        let sub = format!("visitor:{id}");
        let good = sign(&signer, TokenType::Visitor, "acme", &sub, now, TTL);
        let check = |token: &str| check_visitor(&signer, &revoked, token, "acme", now, TTL);
        assert_eq!(check(&good), Ok(id));
        assert_eq!(
            check_visitor(&signer, &revoked, &good, "globex", now, TTL),
            Err(VisitorRefusal::OtherTenant)
        );
        let ticket = sign(&signer, TokenType::Ticket, "acme", &sub, now, TTL);
        assert!(matches!(check(&ticket), Err(VisitorRefusal::Invalid(_))));
        let user = sign(&signer, TokenType::Visitor, "acme", "user:bob", now, TTL);
        assert!(matches!(check(&user), Err(VisitorRefusal::Invalid(_))));
        // Signed with a long lifetime, but older than the configured TTL.
        let old = sign(&signer, TokenType::Visitor, "acme", &sub, now - chrono::Duration::hours(2), TTL * 10);
        assert!(matches!(check(&old), Err(VisitorRefusal::Invalid(_))));
        let foreign = sign(&Signer::new(Keyring::generate("k1")), TokenType::Visitor, "acme", &sub, now, TTL);
        assert!(matches!(check(&foreign), Err(VisitorRefusal::Invalid(_))));
        revoked.insert("acme", id, now);
        assert_eq!(check(&good), Err(VisitorRefusal::Linked));
    }
}
