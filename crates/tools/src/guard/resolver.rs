//! Name resolution for outbound calls: the system resolver, then only the
//! addresses the allow list lets through go to the HTTP client, which
//! connects to nothing else. A name whose every address is refused fails
//! with [`AddressRefused`], which the client finds in the error's causes.

use super::PrivateAllowList;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;

/// A `reqwest` resolver that enforces the private-address guard.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<PrivateAllowList>,
}

/// A host name that resolves only to addresses no call may reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves only to private addresses that tool_allow_private does not list")]
pub struct AddressRefused {
    pub host: String,
}

impl GuardedResolver {
    pub fn new(allow: Arc<PrivateAllowList>) -> Self {
        Self { allow }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(async move { Ok(Box::new(lookup(&allow, &host).await?.into_iter()) as Addrs) })
    }
}

/// The same guard for the reqwest that rmcp's transport speaks (0.13), so an
/// MCP server is reached under exactly the rules of a webhook.
impl rmcp_reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: rmcp_reqwest::dns::Name) -> rmcp_reqwest::dns::Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(
            async move { Ok(Box::new(lookup(&allow, &host).await?.into_iter()) as rmcp_reqwest::dns::Addrs) },
        )
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The system resolver's answer for `host`, vetted.
async fn lookup(allow: &PrivateAllowList, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    Ok(vet(allow, host, found)?)
}

/// The addresses of `host` a call may connect to: all of them when the
/// host name is listed, else the public ones and those the list names.
/// Dropping the others (rather than refusing the name) keeps a name with
/// both public and private records usable, on its public addresses only.
fn vet(
    allow: &PrivateAllowList,
    host: &str,
    found: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, AddressRefused> {
    if found.is_empty() || allow.allows_host(host) {
        // No records is the resolver's own error, reported as such by the
        // client's connector.
        return Ok(found);
    }
    let total = found.len();
    let kept: Vec<SocketAddr> = found.into_iter().filter(|addr| allow.allows_addr(addr.ip())).collect();
    if kept.len() < total {
        tracing::debug!(host, refused = total - kept.len(), "private addresses dropped from a resolution");
    }
    if kept.is_empty() {
        return Err(AddressRefused { host: host.to_owned() });
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| SocketAddr::new(a.parse().unwrap(), 0)).collect()
    }

    #[test]
    fn keeps_only_the_public_addresses_of_a_mixed_name() {
        let none = PrivateAllowList::default();
        let found =
            addrs(&["10.0.0.7", "93.184.215.14", "fd00::7", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
        let kept = vet(&none, "shop.example", found).unwrap();
        assert_eq!(kept, addrs(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]));
    }

    #[test]
    fn refuses_a_name_with_only_private_addresses() {
        let none = PrivateAllowList::default();
        let refused = vet(&none, "rebind.example", addrs(&["127.0.0.1", "169.254.169.254"])).unwrap_err();
        assert_eq!(refused.host, "rebind.example");
    }

    #[test]
    fn a_listed_name_or_address_is_let_through() {
        let by_name = PrivateAllowList::parse(["Shop.Internal"]).unwrap();
        let found = addrs(&["10.0.0.7", "fd00::7"]);
        assert_eq!(vet(&by_name, "shop.internal", found.clone()).unwrap(), found);
        let by_range = PrivateAllowList::parse(["10.0.0.0/24"]).unwrap();
        assert_eq!(vet(&by_range, "shop.internal", found).unwrap(), addrs(&["10.0.0.7"]));
    }

    #[tokio::test]
    async fn localhost_resolves_only_when_allowed() {
        let resolve = |entries: &[&str]| {
            let resolver = GuardedResolver::new(Arc::new(PrivateAllowList::parse(entries).unwrap()));
            resolver.resolve(Name::from_str("localhost").unwrap())
        };
        let refused = resolve(&[]).await.err().unwrap();
        assert!(refused.downcast_ref::<AddressRefused>().is_some(), "{refused}");
        let by_name: Vec<SocketAddr> = resolve(&["localhost"]).await.unwrap().collect();
        assert!(!by_name.is_empty() && by_name.iter().all(|a| a.ip().is_loopback()), "{by_name:?}");
        let by_address: Vec<SocketAddr> = resolve(&["127.0.0.1", "::1"]).await.unwrap().collect();
        assert!(!by_address.is_empty(), "{by_address:?}");
    }
}
