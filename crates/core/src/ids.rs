//! Identifiers of the domain: tenant slugs and subjects.

use std::fmt;

/// A tenant id: a slug `[a-z0-9][a-z0-9_-]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Accepts only a valid slug.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let first_ok = b.first().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
        (first_ok && rest_ok && b.len() <= 63).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is calling, within a tenant: an anonymous visitor or a user vouched for
/// by the tenant's backend. Its string form (`visitor:<uuid>`, `user:<sub>`) is
/// what sessions store as their owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Visitor(uuid::Uuid),
    User(String),
}

impl Subject {
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(rest) = s.strip_prefix("visitor:") {
            return uuid::Uuid::parse_str(rest).ok().map(Subject::Visitor);
        }
        s.strip_prefix("user:").filter(|sub| !sub.is_empty()).map(|sub| Subject::User(sub.to_owned()))
    }

    /// `user` or `visitor`, as JSON bodies name it (SPEC §16).
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Visitor(_) => "visitor",
            Subject::User(_) => "user",
        }
    }

    /// The bare id: the JWT `sub` or the visitor id.
    pub fn id(&self) -> String {
        match self {
            Subject::Visitor(id) => id.to_string(),
            Subject::User(sub) => sub.clone(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Visitor(id) => write!(f, "visitor:{id}"),
            Subject::User(sub) => write!(f, "user:{sub}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        assert!(TenantId::parse("acme").is_some());
        assert!(TenantId::parse("0-a_b").is_some());
        for bad in ["", "-a", "_a", "Acme", "a b", "a.b", "ä", &"a".repeat(64)] {
            assert!(TenantId::parse(bad).is_none(), "{bad}");
        }
        assert!(TenantId::parse(&"a".repeat(63)).is_some());
    }

    proptest! {
        #[test]
        fn subjects_round_trip(sub in "[^\\x00]{1,40}", id in any::<u128>()) {
            let user = Subject::User(sub);
            prop_assert_eq!(Subject::parse(&user.to_string()), Some(user));
            let visitor = Subject::Visitor(uuid::Uuid::from_u128(id));
            prop_assert_eq!(Subject::parse(&visitor.to_string()), Some(visitor));
        }
    }
}
