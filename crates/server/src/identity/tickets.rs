//! Tickets (SPEC §3): short-lived runtime-signed credentials (`typ:
//! "ticket"`) that travel in URLs where `EventSource` and WebSocket cannot
//! send headers. Bound to a tenant and a subject, and optionally to one
//! session; reusable until they expire. Never accepted as a bearer token.

use super::revoked::RevokedVisitors;
use crate::gate::Caller;
use crate::http::ApiError;
use crate::state::AppState;
use crate::tokens::{Signer, TokenType};
use switchboard_core::tenant::Tenant;
use switchboard_core::time::Timestamp;
use switchboard_core::{ErrorCode, Subject};
use uuid::Uuid;

/// Why a ticket is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketRefusal {
    /// Bad, expired, not a ticket, or its visitor was linked: `auth.invalid`.
    #[error("ticket refused: {0}")]
    Invalid(String),
    /// A good ticket of another tenant: `auth.context_mismatch`.
    #[error("ticket of another tenant")]
    OtherTenant,
    /// Bound to another session than the one asked for: `session.not_found`.
    #[error("ticket bound to another session")]
    OtherSession,
}

/// Signs a ticket for `subject` in `tenant`, optionally bound to `session`,
/// valid for the configured `ticket_ttl`.
pub fn mint(
    state: &AppState,
    tenant: &str,
    subject: &Subject,
    session: Option<Uuid>,
) -> Result<(String, Timestamp), ApiError> {
    let now = state.clock.now();
    state
        .signer
        .sign(TokenType::Ticket, tenant, &subject.to_string(), session, now, state.config.ticket_ttl)
        .map_err(ApiError::internal)
}

/// Verifies a ticket presented in a URL (`?ticket=`) for `tenant`.
///
/// `session` is the session the request opens, if any: a bound ticket opens
/// only its own session (and nothing when `session` is `None`); an unbound one
/// opens any session, so the caller must still check that the returned
/// subject owns it (`sessions::owned_session`). Refusals: `auth.invalid`,
/// `auth.context_mismatch` (another tenant's ticket), `session.not_found`.
pub fn verify_ticket(
    state: &AppState,
    token: &str,
    tenant: &Tenant,
    session: Option<Uuid>,
) -> Result<Caller, ApiError> {
    check_ticket(&state.signer, &state.identity.revoked, token, &tenant.id, session).map_err(|e| match e {
        TicketRefusal::Invalid(reason) => ApiError::auth_invalid(reason),
        TicketRefusal::OtherTenant => {
            tracing::info!(reason = %e, "ticket refused");
            ErrorCode::AuthContextMismatch.into()
        }
        TicketRefusal::OtherSession => ErrorCode::SessionNotFound.into(),
    })
}

/// [`verify_ticket`] without the HTTP mapping.
pub fn check_ticket(
    signer: &Signer,
    revoked: &RevokedVisitors,
    token: &str,
    tenant: &str,
    session: Option<Uuid>,
) -> Result<Caller, TicketRefusal> {
    let claims =
        signer.verify(token, TokenType::Ticket).map_err(|e| TicketRefusal::Invalid(e.to_string()))?;
    if claims.tid != tenant {
        return Err(TicketRefusal::OtherTenant);
    }
    let subject = Subject::parse(&claims.sub)
        .ok_or_else(|| TicketRefusal::Invalid("a ticket without a subject".into()))?;
    if let Subject::Visitor(id) = &subject {
        if revoked.contains(tenant, *id) {
            return Err(TicketRefusal::Invalid("the ticket's visitor was linked to a user".into()));
        }
    }
    if let Some(bound) = &claims.sid {
        let bound =
            Uuid::parse_str(bound).map_err(|_| TicketRefusal::Invalid("a ticket bound to no UUID".into()))?;
        if session != Some(bound) {
            return Err(TicketRefusal::OtherSession);
        }
    }
    // Tickets carry no role: an end-user ticket never opens admin views.
    Ok(Caller { subject, name: None, admin: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::time::Duration;
    use switchboard_store::Keyring;

    const TTL: Duration = Duration::from_secs(300);

    struct Fixture {
        signer: Signer,
        revoked: RevokedVisitors,
        visitor: Uuid,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                signer: Signer::new(Keyring::generate("k1")),
                revoked: RevokedVisitors::new(Duration::from_secs(86_400)),
                visitor: Uuid::new_v4(),
            }
        }

        fn subject(&self) -> String {
            format!("visitor:{}", self.visitor)
        }

        fn ticket(&self, tenant: &str, session: Option<Uuid>) -> String {
            self.signer.sign(TokenType::Ticket, tenant, &self.subject(), session, Utc::now(), TTL).unwrap().0
        }

        fn check(&self, token: &str, tenant: &str, session: Option<Uuid>) -> Result<Caller, TicketRefusal> {
            check_ticket(&self.signer, &self.revoked, token, tenant, session)
        }
    }

    fn invalid(r: Result<Caller, TicketRefusal>) -> bool {
        matches!(r, Err(TicketRefusal::Invalid(_)))
    }

    #[test]
    fn an_unbound_ticket_opens_any_session_of_its_tenant() {
        let f = Fixture::new();
        let ticket = f.ticket("acme", None);
        let caller = f.check(&ticket, "acme", None).unwrap();
        assert_eq!(caller, Caller { subject: Subject::Visitor(f.visitor), name: None, admin: false });
        assert_eq!(f.check(&ticket, "acme", Some(Uuid::new_v4())).unwrap(), caller);
        // Reusable within its lifetime.
        assert_eq!(f.check(&ticket, "acme", None).unwrap(), caller);
    }

    #[test]
    fn a_bound_ticket_opens_only_its_session() {
        let f = Fixture::new();
        let session = Uuid::new_v4();
        let ticket = f.ticket("acme", Some(session));
        assert!(f.check(&ticket, "acme", Some(session)).is_ok());
        assert!(f.check(&ticket, "acme", Some(session)).is_ok());
        assert_eq!(f.check(&ticket, "acme", Some(Uuid::new_v4())), Err(TicketRefusal::OtherSession));
        assert_eq!(f.check(&ticket, "acme", None), Err(TicketRefusal::OtherSession));
    }

    #[test]
    fn another_tenants_ticket_is_a_mismatch() {
        let f = Fixture::new();
        let session = Uuid::new_v4();
        assert_eq!(f.check(&f.ticket("globex", None), "acme", None), Err(TicketRefusal::OtherTenant));
        assert_eq!(
            f.check(&f.ticket("globex", Some(session)), "acme", Some(session)),
            Err(TicketRefusal::OtherTenant)
        );
    }

    #[test]
    fn expired_foreign_tampered_and_non_tickets_are_invalid() {
        let f = Fixture::new();
        let long_ago = Utc::now() - chrono::Duration::seconds(400);
        let expired = f.signer.sign(TokenType::Ticket, "acme", &f.subject(), None, long_ago, TTL).unwrap().0;
        assert!(invalid(f.check(&expired, "acme", None)));
        // Within the 30 s leeway it still opens.
        let recent = Utc::now() - chrono::Duration::seconds(310);
        let just_expired =
            f.signer.sign(TokenType::Ticket, "acme", &f.subject(), None, recent, TTL).unwrap().0;
        assert!(f.check(&just_expired, "acme", None).is_ok());

        let visitor_token =
            f.signer.sign(TokenType::Visitor, "acme", &f.subject(), None, Utc::now(), TTL).unwrap().0;
        assert!(invalid(f.check(&visitor_token, "acme", None)), "a visitor token is never a ticket");
        let other_key = Signer::new(Keyring::generate("k1"));
        let foreign =
            other_key.sign(TokenType::Ticket, "acme", &f.subject(), None, Utc::now(), TTL).unwrap().0;
        assert!(invalid(f.check(&foreign, "acme", None)));
        let ticket = f.ticket("acme", None);
        let mut parts: Vec<String> = ticket.split('.').map(str::to_owned).collect();
        parts[1] = f.ticket("globex", None).split('.').nth(1).unwrap().to_owned();
        assert!(invalid(f.check(&parts.join("."), "acme", None)), "tampered payload");
        for garbage in ["", "garbage", "a.b.c"] {
            assert!(invalid(f.check(garbage, "acme", None)), "{garbage}");
        }
    }

    #[test]
    fn a_linked_visitors_tickets_are_revoked_and_users_tickets_work() {
        let f = Fixture::new();
        let ticket = f.ticket("acme", None);
        f.revoked.insert("acme", f.visitor, Utc::now());
        assert!(invalid(f.check(&ticket, "acme", None)));
        let user = f.signer.sign(TokenType::Ticket, "acme", "user:alice", None, Utc::now(), TTL).unwrap().0;
        assert_eq!(f.check(&user, "acme", None).unwrap().subject, Subject::User("alice".into()));
    }
}
