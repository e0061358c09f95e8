//! Reading `bus_url`: which backend it names, and the `prefix` query parameter
//! that lets several deployments (or tests) share one Redis or NATS. Nothing
//! here may put a password into an error message.

use crate::BusError;

/// The prefix used when the URL names none.
pub const DEFAULT_PREFIX: &str = "switchboard";

/// Longest accepted prefix: it ends up in every channel, subject and key.
const MAX_PREFIX_LEN: usize = 64;

/// The cluster backend a `bus_url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Redis,
    Nats,
}

/// A cluster `bus_url`, split into what the client library gets and our prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub scheme: Scheme,
    /// The URL without `prefix`, for the client library.
    pub client_url: String,
    pub prefix: String,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("scheme", &self.scheme)
            .field("client_url", &redact(&self.client_url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Parses a non-empty `bus_url`.
pub fn parse(url: &str) -> Result<ClusterUrl, BusError> {
    let scheme = match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()) {
        Some(s) if s == "redis" => Scheme::Redis,
        Some(s) if s == "nats" => Scheme::Nats,
        // Only the scheme is echoed: the rest may hold a password.
        Some(s) if s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
            return Err(invalid(format!("unsupported scheme `{s}`")));
        }
        _ => return Err(invalid("it is not a URL".to_owned())),
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut prefix = None;
    let mut rest = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", value)) => {
                if prefix.replace(value).is_some() {
                    return Err(invalid("`prefix` is given twice".to_owned()));
                }
            }
            _ => rest.push(pair),
        }
    }
    let prefix = prefix.unwrap_or(DEFAULT_PREFIX);
    check_prefix(prefix)?;
    let client_url = match rest.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", rest.join("&")),
    };
    Ok(ClusterUrl { scheme, client_url, prefix: prefix.to_owned() })
}

/// The prefix becomes a NATS subject token and part of a KV bucket name, so
/// it keeps to the characters both accept (and Redis globs treat literally).
fn check_prefix(prefix: &str) -> Result<(), BusError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match ok {
        true => Ok(()),
        false => Err(invalid(format!(
            "`prefix` must be 1 to {MAX_PREFIX_LEN} of A-Z, a-z, 0-9, `_`, `-` (got `{prefix}`)"
        ))),
    }
}

fn invalid(why: String) -> BusError {
    BusError::InvalidUrl(format!(
        "bus_url must be empty (in-process), redis://… or nats://…, optionally with ?prefix=NAME: {why}"
    ))
}

/// The URL with any user information replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<not a URL>".to_owned() };
    // User information ends at the last `@` before the path; a password may
    // itself contain `@` or `/` only percent-encoded, so this is enough.
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_default_prefix() {
        let u = parse("redis://127.0.0.1:6379/2").unwrap();
        assert_eq!(
            (u.scheme, u.client_url.as_str(), u.prefix.as_str()),
            (Scheme::Redis, "redis://127.0.0.1:6379/2", "switchboard")
        );
        let u = parse("NATS://a:4222").unwrap();
        assert_eq!((u.scheme, u.prefix.as_str()), (Scheme::Nats, "switchboard"));
    }

    #[test]
    fn prefix_is_stripped_and_other_parameters_kept() {
        let u = parse("redis://h:1/0?protocol=resp3&prefix=eu-1&x=y").unwrap();
        assert_eq!(u.client_url, "redis://h:1/0?protocol=resp3&x=y");
        assert_eq!(u.prefix, "eu-1");
        let u = parse("nats://h:4222?prefix=t_1").unwrap();
        assert_eq!((u.client_url.as_str(), u.prefix.as_str()), ("nats://h:4222", "t_1"));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for url in [
            "redis://h?prefix=",
            "redis://h?prefix=a.b",
            "redis://h?prefix=a*",
            "redis://h?prefix=a&prefix=b",
        ] {
            assert!(matches!(parse(url), Err(BusError::InvalidUrl(_))), "{url}");
        }
        assert!(parse(&format!("redis://h?prefix={}", "a".repeat(65))).is_err());
    }

    #[test]
    fn errors_name_the_schemes_and_never_the_password() {
        for url in ["postgres://user:hunter2@h/db", "hunter2", "amqp://u:hunter2@h"] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.contains("redis://") && err.contains("nats://"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn redaction_hides_user_information() {
        assert_eq!(redact("redis://:pw@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redact("nats://u:p@ss@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("redis://h:6379/0?a=b@c"), "redis://h:6379/0?a=b@c");
        assert_eq!(redact("nonsense"), "<not a URL>");
    }
}
