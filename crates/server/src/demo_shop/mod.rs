//! The demo shop (SPEC §16): a small catalog served by the binary itself as
//! real signed webhook tools (`POST /demo/api/tools`), which the built-in
//! `demo` tenant calls like any tenant calls its merchant, so `/demo` shows
//! the whole tool flow offline.
//!
//! Three pieces of wiring make that work without special cases in the turn
//! engine or the webhook client:
//!
//! - the secret: the shop and the demo tenant share one `whsec_` secret
//!   through the variable [`SECRET_ENV`], which the demo tenant's tools name
//!   as their `secret_env` like any tenant's. [`ensure_secret`] puts a fresh
//!   random one there when the process starts, before any thread exists,
//!   unless the operator set one (then it is kept: stable across restarts);
//! - the address: the demo tenant's tools point at the address the server
//!   is bound to ([`tools_url`]), not at `public_url`, which may be a proxy
//!   or, in tests, a port nobody listens on;
//! - the private-address guard: that address is a loopback one, which no
//!   tool may reach unless allowed. Rather than adding it to the operator's
//!   `tool_allow_private` (which would let every tenant's tools reach every
//!   port of it), the demo shop's tools get their own webhook client whose
//!   allow list holds only that address ([`client_for`]), and only a tenant
//!   whose tools all point exactly at the shop's URL gets it.

mod api;
mod cart;
mod catalog;
mod images;

use crate::config::tools::ToolConfig;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use switchboard_tools::{PrivateAllowList, WebhookClient};

/// The variable holding the secret the shop verifies and the demo tenant
/// signs with.
pub const SECRET_ENV: &str = "SWITCHBOARD_DEMO_SHOP_SECRET";
/// Where the shop's tools are served.
pub const PATH: &str = "/demo/api/tools";
/// How long the demo tenant waits for one of the shop's tools.
pub const TIMEOUT_MS: u64 = 3000;

/// Sets [`SECRET_ENV`] to a fresh random secret unless it is set. Called
/// first thing in `main`, before the async runtime starts any thread:
/// changing the environment is only sound while no other thread reads it.
pub fn ensure_secret() {
    if std::env::var_os(SECRET_ENV).is_some_and(|v| !v.is_empty()) {
        return;
    }
    let bytes: [u8; 32] = rand::random();
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes));
    std::env::set_var(SECRET_ENV, secret);
}

/// The URL of the shop's tools on the server bound to `addr`: an
/// unspecified address (`0.0.0.0`, `::`) is reached on its loopback.
pub fn tools_url(addr: SocketAddr) -> String {
    format!("http://{}{PATH}", SocketAddr::new(own_ip(addr), addr.port()))
}

/// The address the shop is reached on, for a server bound to `addr`.
fn own_ip(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The shop's URL on this server and the client allowed to reach it.
static OWN: OnceLock<(String, Arc<WebhookClient>)> = OnceLock::new();

/// Once the server is bound to `addr`: the client for the shop's tools,
/// allowed to reach that address only.
pub fn init(addr: SocketAddr) -> Result<(), String> {
    let url = tools_url(addr);
    let allow = PrivateAllowList::parse([own_ip(addr).to_string()]).map_err(|e| e.to_string())?;
    if OWN.set((url, Arc::new(WebhookClient::new(allow)))).is_err() {
        tracing::warn!("the demo shop's client was set up twice; the first one stays");
    }
    Ok(())
}

/// The shop's own client, for a tenant whose tools are all the shop's
/// (the built-in demo tenant); `None` for any other tenant.
pub fn client_for(tools: &[ToolConfig]) -> Option<Arc<WebhookClient>> {
    let (url, client) = OWN.get()?;
    let all_ours = !tools.is_empty() && tools.iter().all(|t| t.url == *url);
    all_ours.then(|| client.clone())
}

/// The shop's own client for a `verify_url` that is the shop's own URL
/// (the demo tenant's); `None` for any other, which gets the shared,
/// guarded client.
pub fn client_for_url(url: &str) -> Option<Arc<WebhookClient>> {
    let (own, client) = OWN.get()?;
    (url == own).then(|| client.clone())
}

/// The shop's route, with the shop (its secret read from [`SECRET_ENV`]).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let secret = std::env::var(SECRET_ENV).ok();
    let shop = Arc::new(api::Shop::new(secret.as_deref()));
    Router::new().route(PATH, post(api::tools)).with_state(shop)
}

/// The demo tenant's tools: `(name, description, JSON Schema of the
/// arguments)`.
pub fn tool_specs() -> [(&'static str, &'static str, Value); 4] {
    let max = cart::MAX_QUANTITY;
    [
        (
            "search_products",
            "Search the shop's catalog by words (kind of product, colour, name)",
            json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        ),
        (
            "get_product",
            "One product's details, price and stock, by its id",
            json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
        ),
        (
            "add_to_cart",
            "Add a product to the visitor's cart",
            json!({"type": "object", "properties": {
                "id": {"type": "string"},
                "quantity": {"type": "integer", "minimum": 1, "maximum": max}
            }, "required": ["id"]}),
        ),
        (
            "view_cart",
            "What is in the visitor's cart, with its total",
            json!({"type": "object", "properties": {}}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_live_on_the_bound_address_or_its_loopback() {
        assert_eq!(tools_url("127.0.0.1:4321".parse().unwrap()), "http://127.0.0.1:4321/demo/api/tools");
        assert_eq!(tools_url("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080/demo/api/tools");
        assert_eq!(tools_url("[::]:8080".parse().unwrap()), "http://[::1]:8080/demo/api/tools");
        assert_eq!(tools_url("[::1]:9".parse().unwrap()), "http://[::1]:9/demo/api/tools");
    }

    #[test]
    fn only_the_builtin_demo_tenant_gets_the_shop_and_follows_the_bound_port() {
        let mut c = crate::config::Config::from_parts(
            "listen = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:8080\"",
            Vec::new(),
        )
        .unwrap();
        c.bound_to("127.0.0.1:4321".parse().unwrap()).unwrap();
        let demo = &c.tenants[0];
        let names: Vec<&str> = demo.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["search_products", "get_product", "add_to_cart", "view_cart"]);
        for t in &demo.tools {
            assert_eq!(t.url, "http://127.0.0.1:4321/demo/api/tools");
            assert_eq!(t.secret_env, SECRET_ENV);
        }
        assert!(demo.tooling.handoff);
        let verify = demo.tooling.verify.as_ref().unwrap();
        assert_eq!(
            (verify.url.as_str(), verify.secret_env.as_str()),
            (demo.tools[0].url.as_str(), SECRET_ENV)
        );
        let own = crate::config::Config::from_parts("[[tenants]]\nid = \"acme\"", Vec::new()).unwrap();
        assert!(own.tenants[0].tools.is_empty());
    }
}
