//! Bearer tokens: the runtime's own (visitor, ticket, admin ticket) and a
//! tenant's user JWTs, with the tenant a token claims read unverified (to
//! pick whose rules verify it). What verifies must claim the tenant it was
//! verified for, so the unverified read can never route a token to a
//! tenant other than the one whose key accepted it.

use switchboard_server::fuzz::{self as server, JWT_TENANT};

pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let out = server::jwt(token);
    if let Some((_, tenant, _)) = &out.runtime {
        assert_eq!(out.claimed_tenant.as_ref(), Some(tenant), "a runtime token claims another tenant");
    }
    if out.user.is_some() {
        let claimed = out.claimed_tenant.as_deref();
        assert!(claimed.is_none_or(|t| t == JWT_TENANT), "a user token of {JWT_TENANT} claims {claimed:?}");
    }
    if out.user_other_tenant {
        assert_ne!(out.claimed_tenant.as_deref(), Some(JWT_TENANT), "refused as foreign, yet claims us");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> String {
        let path = format!("{}/../../fuzz/corpus/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    /// The signed seeds reach the verified paths, so the checks above run.
    #[test]
    fn signed_seeds_verify() {
        let user = server::jwt(&seed("user_tid"));
        assert_eq!(
            (user.user, user.claimed_tenant.as_deref()),
            (Some(("alice".into(), false)), Some("acme"))
        );
        assert!(server::jwt(&seed("user_other_tenant")).user_other_tenant);
        let visitor = server::jwt(&seed("runtime_visitor")).runtime.unwrap();
        assert_eq!((visitor.1.as_str(), visitor.2.as_str()), ("acme", "visitor:v1"));
    }
}
