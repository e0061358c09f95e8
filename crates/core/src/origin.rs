//! Origins as SPEC §9 compares them: `scheme://host[:port]`, scheme and host
//! lower-cased, the scheme's default port dropped. Anything else (a path, a
//! trailing slash, a query, userinfo, whitespace, `*`, `null`) is malformed.

/// The normalised form, or `None` when the text is not a plain origin.
pub fn normalize(s: &str) -> Option<String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\']) {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    let host = host.to_ascii_lowercase();
    let host_ok = if host.starts_with('[') {
        host.len() > 2
            && host[1..host.len() - 1].chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !host.starts_with(['.', '-'])
            && !host.ends_with('-')
    };
    if !host_ok {
        return None;
    }
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn split_host_port(rest: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case_and_default_ports() {
        assert_eq!(normalize("HTTPS://Shop.Example").as_deref(), Some("https://shop.example"));
        assert_eq!(normalize("https://shop.example:443").as_deref(), Some("https://shop.example"));
        assert_eq!(normalize("http://localhost:80").as_deref(), Some("http://localhost"));
        assert_eq!(normalize("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(normalize("http://[::1]:8080").as_deref(), Some("http://[::1]:8080"));
    }

    #[test]
    fn refuses_what_is_not_a_plain_origin() {
        for bad in [
            "*",
            "null",
            "",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example?q",
            "https://u@a.example",
            " https://a.example",
            "https://a.example ",
            "ftp://a.example",
            "https://a.example:99999",
            "https://a.example:",
            "https://",
            "a.example",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Whatever is put before or after an allowed host, the result never
        /// normalises to the allowed origin (no suffix or prefix lookalikes).
        #[test]
        fn lookalikes_never_match(prefix in "[a-z0-9.-]{0,12}", suffix in "[a-z0-9.:/@?-]{0,12}", upper in any::<bool>()) {
            prop_assume!(!(prefix.is_empty() && suffix.is_empty()));
            // `:443` and `:0443` are the default port, spelled out: the same origin.
            prop_assume!(suffix.strip_prefix(':').is_none_or(|p| p.trim_start_matches('0') != "443"));
            let host = if upper { "SHOP.ACME.EXAMPLE" } else { "shop.acme.example" };
            let candidate = format!("https://{prefix}{host}{suffix}");
            let normalized = normalize(&candidate);
            prop_assert_ne!(normalized.as_deref(), Some("https://shop.acme.example"));
        }

        #[test]
        fn normalising_is_idempotent(s in "(?i)(https?)://[a-z0-9.-]{1,20}(:[0-9]{1,5})?") {
            if let Some(n) = normalize(&s) {
                prop_assert_eq!(normalize(&n), Some(n.clone()));
            }
        }
    }
}
