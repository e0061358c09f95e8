//! The private-address guard (SPEC §16): no outbound call — webhook tool,
//! `verify_url`, MCP server, outbound event — reaches a loopback, link-local
//! or private address unless the operator's `tool_allow_private` list allows
//! it. Host names on the list are matched against the URL's host before
//! resolution; IP addresses and CIDR ranges against each resolved address at
//! call time.
//!
//! It is enforced where the connection is made: [`GuardedResolver`] hands
//! the HTTP client only the addresses it vetted, so a name cannot pass a
//! check and then resolve elsewhere for the connect (no TOCTOU, no DNS
//! rebinding). Literal IP hosts never reach a resolver, so [`check_url`]
//! judges them before any request is sent.
//!
//! [`check_url`]: PrivateAllowList::check_url

mod ranges;
mod resolver;

use ipnet::IpNet;
use reqwest::Url;
use std::net::IpAddr;

pub use ranges::is_private;
pub use resolver::{AddressRefused, GuardedResolver};

/// Why a `tool_allow_private` entry is unusable (a startup error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool_allow_private entry {entry:?} is not a host name, an IP address or a CIDR range")]
pub struct AllowListError {
    pub entry: String,
}

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only http and https URLs may be called")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("address not allowed")]
    PrivateAddress,
}

/// The operator's `tool_allow_private` list: what outbound calls may reach
/// although it is private. Empty by default: only public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateAllowList {
    /// Lowercase host names, matched exactly.
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl PrivateAllowList {
    /// Reads the entries: an IP address (`10.0.0.5`, `::1`, `[::1]`), a CIDR
    /// range (`10.0.0.0/8`, `fd00::/8`) or else a host name (`shop.internal`,
    /// `localhost`; case does not matter, no port or scheme).
    pub fn parse<I, S>(entries: I) -> Result<Self, AllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let bare = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).unwrap_or(entry);
            if let Ok(ip) = bare.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip.to_canonical()));
            } else if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net.trunc());
            } else if is_host_name(entry) {
                list.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(AllowListError { entry: entry.to_owned() });
            }
        }
        Ok(list)
    }

    /// Whether calls to the host name `host` may reach private addresses.
    pub fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Whether a call may connect to `ip`: a public address, or one the list
    /// names (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !is_private(ip) || self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Checks what can be judged before a request: the scheme (http or
    /// https), and a literal IP host. A host name passes here; its addresses
    /// are judged by [`GuardedResolver`] when the connection is made.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(Refusal::NoHost)?;
        // The URL parser has already normalised numeric forms such as
        // `http://2130706433/` or `http://0x7f.1/` to dotted IPv4.
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match literal.parse::<IpAddr>() {
            Ok(ip) if !self.allows_addr(ip) => Err(Refusal::PrivateAddress),
            _ => Ok(()),
        }
    }
}

/// Letters, digits, `-`, `_` and dots, not ending in a number (that would
/// be a mistyped address, such as `10.0.0.256`): enough to tell a host name
/// from a typo such as a URL or a host with a port.
fn is_host_name(entry: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let numeric = |label: &str| label.bytes().all(|b| b.is_ascii_digit());
    entry.len() <= 253
        && entry.split('.').all(label_ok)
        && entry.rsplit('.').next().is_some_and(|last| !numeric(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> PrivateAllowList {
        PrivateAllowList::parse(entries).unwrap()
    }

    fn check(list: &PrivateAllowList, url: &str) -> Result<(), Refusal> {
        list.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn reads_addresses_ranges_and_host_names() {
        let list = list(&["127.0.0.1", "[::1]", "10.1.0.0/16", "fd00::/8", "Shop.Internal", " localhost "]);
        assert!(list.allows_addr("127.0.0.1".parse().unwrap()));
        assert!(list.allows_addr("::ffff:127.0.0.1".parse().unwrap()));
        assert!(list.allows_addr("::1".parse().unwrap()));
        assert!(list.allows_addr("10.1.200.3".parse().unwrap()));
        assert!(list.allows_addr("fd12::1".parse().unwrap()));
        assert!(!list.allows_addr("127.0.0.2".parse().unwrap()));
        assert!(!list.allows_addr("10.2.0.1".parse().unwrap()));
        assert!(list.allows_host("shop.internal") && list.allows_host("SHOP.internal"));
        assert!(list.allows_host("localhost"));
        assert!(!list.allows_host("shop.internal.evil.example"));
    }

    #[test]
    fn refuses_entries_that_are_neither() {
        for entry in
            ["", "http://shop.internal", "shop.internal:8080", "10.0.0.0/33", "10.0.0.256", "a..b", "sp ace"]
        {
            let error = PrivateAllowList::parse([entry]).unwrap_err();
            assert_eq!(error.entry, entry.trim());
        }
    }

    #[test]
    fn public_addresses_need_no_entry() {
        assert!(PrivateAllowList::default().allows_addr("93.184.215.14".parse().unwrap()));
    }

    #[test]
    fn only_http_and_https_with_a_host() {
        let none = PrivateAllowList::default();
        assert_eq!(check(&none, "https://shop.example/tools"), Ok(()));
        assert_eq!(check(&none, "http://shop.example/tools"), Ok(()));
        assert_eq!(check(&none, "ftp://shop.example/x"), Err(Refusal::Scheme));
        assert_eq!(check(&none, "file:///etc/passwd"), Err(Refusal::Scheme));
        assert_eq!(check(&none, "unix:/run/x.sock"), Err(Refusal::Scheme));
    }

    #[test]
    fn refuses_literal_private_hosts_in_every_spelling() {
        let none = PrivateAllowList::default();
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0/",
            "http://169.254.169.254/latest/meta-data",
            "https://[fd00::1]/",
        ] {
            assert_eq!(check(&none, url), Err(Refusal::PrivateAddress), "{url}");
        }
        assert_eq!(check(&none, "http://8.8.8.8/"), Ok(()));
    }

    #[test]
    fn a_listed_address_or_range_lets_its_literal_through() {
        let list = list(&["127.0.0.1", "fd00::/8"]);
        assert_eq!(check(&list, "http://127.0.0.1:9/"), Ok(()));
        assert_eq!(check(&list, "http://[fd00::5]/"), Ok(()));
        assert_eq!(check(&list, "http://127.0.0.2/"), Err(Refusal::PrivateAddress));
    }
}
