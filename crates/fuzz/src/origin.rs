//! `Origin` normalisation: what it accepts comes out as a plain lower-case
//! `scheme://host[:port]` that normalises to itself, without the scheme's
//! default port; the input's case does not matter; an explicit default port
//! changes nothing.

use switchboard_core::origin::normalize;

pub fn origin(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(origin) = normalize(text) else {
        assert_eq!(normalize(&text.to_ascii_lowercase()), None, "case changed the verdict on {text:?}");
        return;
    };
    assert_eq!(normalize(&origin).as_deref(), Some(origin.as_str()), "not idempotent on {text:?}");
    assert_eq!(normalize(&text.to_ascii_uppercase()).as_deref(), Some(origin.as_str()), "{text:?}");
    assert_eq!(origin, origin.to_ascii_lowercase(), "{origin:?} is not lower case");
    let (scheme, rest) = origin.split_once("://").unwrap_or_default();
    assert!(scheme == "http" || scheme == "https", "{origin:?}");
    assert!(!rest.is_empty() && !rest.contains(['/', '?', '#', '@', '\\', ' ']), "{origin:?}");
    let default_port = if scheme == "http" { 80 } else { 443 };
    let port = rest.rsplit_once(':').filter(|(host, _)| !host.is_empty() && !rest.ends_with(']'));
    match port {
        Some((_, p)) => {
            let p: u16 = p.parse().unwrap_or(default_port);
            assert_ne!(p, default_port, "{origin:?} keeps its default port (or a bad one)");
        }
        None => {
            let explicit = format!("{origin}:{default_port}");
            assert_eq!(normalize(&explicit).as_deref(), Some(origin.as_str()), "{explicit:?}");
        }
    }
}
