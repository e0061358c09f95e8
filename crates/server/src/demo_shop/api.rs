//! `POST /demo/api/tools`: the demo shop's tools as a merchant would serve
//! them. Each call is a Standard Webhooks signed `tool.call` (SPEC §16),
//! verified with the shop's own secret before anything else (an unsigned or
//! badly signed call → 401), and answered `{result, display}`:
//!
//! - `search_products {query}` → the products found, as cards;
//! - `get_product {id}` → one product, as a card;
//! - `add_to_cart {id, quantity?}` → the cart's cards with quantities and
//!   total, or a text when the product is out of stock;
//! - `view_cart {}` → the same cart display, or a text when it is empty.
//!
//! A `products.verify {ids}` call (the shape of a tenant's `verify_url`) is
//! answered with each product's live price and availability.

use super::cart::{self, Carts};
use super::catalog::{self, Product};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use switchboard_tools::signature::DEFAULT_TOLERANCE;
use switchboard_tools::SigningKeys;

/// The shop: its secret, its carts, and what was sold this cycle.
pub struct Shop {
    /// `None` when the secret variable held no usable secret: every call is
    /// then refused (the demo tenant could not sign its calls either).
    keys: Option<SigningKeys>,
    state: Mutex<Sales>,
}

#[derive(Default)]
struct Sales {
    carts: Carts,
    /// Units `add_to_cart` took per product in the restock cycle noted.
    taken: HashMap<&'static str, (i64, u32)>,
}

impl Sales {
    /// A product's stock now: the clock's, less what carts took this cycle.
    fn stock(&self, p: &Product, now: i64) -> u32 {
        let (cycle, by_clock) = p.clock_stock(now);
        let taken = self.taken.get(p.id).filter(|(c, _)| *c == cycle).map_or(0, |(_, n)| *n);
        by_clock.saturating_sub(taken)
    }

    fn take(&mut self, p: &Product, now: i64, n: u32) {
        let (cycle, _) = p.clock_stock(now);
        let entry = self.taken.entry(p.id).or_insert((cycle, 0));
        if entry.0 != cycle {
            *entry = (cycle, 0);
        }
        entry.1 = entry.1.saturating_add(n);
    }
}

#[derive(serde::Deserialize)]
struct Call {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    arguments: Value,
    #[serde(default)]
    subject: Value,
    #[serde(default)]
    ids: Vec<String>,
}

/// A call the shop cannot answer: the runtime turns it into an error result.
type Refused = (StatusCode, String);

fn refused(status: StatusCode, why: impl Into<String>) -> Refused {
    (status, why.into())
}

impl Shop {
    pub fn new(secret: Option<&str>) -> Self {
        let keys = secret.and_then(|s| match SigningKeys::parse(s) {
            Ok(keys) => Some(keys),
            Err(e) => {
                tracing::error!(error = %e, "the demo shop's secret is unusable; its tools refuse every call");
                None
            }
        });
        Self { keys, state: Mutex::new(Sales::default()) }
    }

    fn sales(&self) -> std::sync::MutexGuard<'_, Sales> {
        // Nothing here leaves the state half-changed on a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to one verified call.
    fn answer(&self, call: &Call, now: i64) -> Result<Value, Refused> {
        match call.kind.as_str() {
            "tool.call" => self.tool(call, now),
            "products.verify" => Ok(self.verify(&call.ids, now)),
            other => Err(refused(StatusCode::BAD_REQUEST, format!("unknown call type {other:?}"))),
        }
    }

    fn tool(&self, call: &Call, now: i64) -> Result<Value, Refused> {
        let args = &call.arguments;
        match call.tool.as_str() {
            "search_products" => Ok(self.search(args["query"].as_str().unwrap_or_default(), now)),
            "get_product" => Ok(self.product(args["id"].as_str().unwrap_or_default(), now)),
            "add_to_cart" => {
                let quantity = args["quantity"].as_u64().unwrap_or(1).clamp(1, u64::from(cart::MAX_QUANTITY));
                let quantity = u32::try_from(quantity).unwrap_or(1);
                Ok(self.add(&subject(&call.subject)?, args["id"].as_str().unwrap_or_default(), quantity, now))
            }
            "view_cart" => Ok(self.view(&subject(&call.subject)?, now)),
            other => Err(refused(StatusCode::BAD_REQUEST, format!("unknown tool {other:?}"))),
        }
    }

    fn search(&self, query: &str, now: i64) -> Value {
        let found = catalog::search(query);
        let sales = self.sales();
        let products: Vec<Value> = found.iter().map(|p| p.summary(sales.stock(p, now))).collect();
        let result = json!({"found": found.len(), "products": products});
        if found.is_empty() {
            return json!({"result": result});
        }
        let cards: Vec<Value> = found.iter().map(|p| p.card(sales.stock(p, now))).collect();
        json!({"result": result, "display": {"type": "products", "items": cards}})
    }

    fn product(&self, id: &str, now: i64) -> Value {
        let Some(p) = catalog::find(id) else { return unknown(id) };
        let stock = self.sales().stock(p, now);
        let mut result = p.summary(stock);
        result["stock"] = json!(stock);
        result["description"] = json!(p.description);
        json!({"result": result, "display": {"type": "products", "items": [p.card(stock)]}})
    }

    fn add(&self, subject: &str, id: &str, quantity: u32, now: i64) -> Value {
        let Some(p) = catalog::find(id) else { return unknown(id) };
        let mut sales = self.sales();
        let stock = sales.stock(p, now);
        if stock == 0 {
            return not_added(format!("{} is out of stock", p.title));
        }
        let (added, cart) = sales.carts.add(subject, p, quantity.min(stock));
        if added == 0 {
            return not_added(format!(
                "the cart already holds {} of {}, the most it may",
                cart::MAX_QUANTITY,
                p.title
            ));
        }
        sales.take(p, now, added);
        let result = json!({
            "added": {"id": p.id, "title": p.title, "quantity": added},
            "cart": {"count": cart.count(), "total": cart.total()},
        });
        json!({"result": result, "display": cart.display(|p| sales.stock(p, now))})
    }

    fn view(&self, subject: &str, now: i64) -> Value {
        let sales = self.sales();
        let cart = sales.carts.get(subject);
        let display = if cart.is_empty() {
            json!({"type": "text", "text": "Your cart is empty."})
        } else {
            cart.display(|p| sales.stock(p, now))
        };
        json!({"result": cart.summary(), "display": display})
    }

    fn verify(&self, ids: &[String], now: i64) -> Value {
        let sales = self.sales();
        let items: Vec<Value> = ids
            .iter()
            .filter_map(|id| catalog::find(id))
            .map(|p| {
                let s = p.summary(sales.stock(p, now));
                json!({"id": s["id"], "price": s["price"], "currency": s["currency"], "availability": s["availability"]})
            })
            .collect();
        json!({"items": items})
    }
}

/// The cart's key: `user:<sub>` or `visitor:<id>`.
fn subject(subject: &Value) -> Result<String, Refused> {
    match (subject["kind"].as_str(), subject["id"].as_str()) {
        (Some(kind), Some(id)) if !id.is_empty() => Ok(format!("{kind}:{id}")),
        _ => Err(refused(StatusCode::BAD_REQUEST, "the call has no subject")),
    }
}

fn unknown(id: &str) -> Value {
    json!({"result": {"error": format!("no product has the id {id:?}")}})
}

fn not_added(why: String) -> Value {
    json!({"result": {"error": why}, "display": {"type": "text", "text": format!("Not added: {why}.")}})
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub async fn tools(State(shop): State<Arc<Shop>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = unix_now();
    let verified = match &shop.keys {
        Some(keys) => keys.verify(&headers, &body, now, DEFAULT_TOLERANCE).map_err(|e| e.to_string()),
        None => Err("the shop has no usable secret".to_owned()),
    };
    if let Err(reason) = verified {
        tracing::debug!(%reason, "demo shop: refused a call");
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid signature"}))).into_response();
    }
    let answer = serde_json::from_slice::<Call>(&body)
        .map_err(|e| refused(StatusCode::BAD_REQUEST, format!("not a call: {e}")))
        .and_then(|call| shop.answer(&call, now));
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err((status, error)) => (status, Json(json!({"error": error}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Shop {
        Shop::new(Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
    }

    fn call(tool: &str, arguments: Value) -> Call {
        Call {
            kind: "tool.call".into(),
            tool: tool.into(),
            arguments,
            subject: json!({"kind": "visitor", "id": "v1"}),
            ids: Vec::new(),
        }
    }

    /// p1's cycle starts at 0: full stock (20).
    const NOW: i64 = 6000;

    #[test]
    fn search_then_add_then_view() {
        let shop = shop();
        let found = shop.answer(&call("search_products", json!({"query": "running shoes"})), NOW).unwrap();
        assert_eq!(found["result"]["found"], 4);
        assert_eq!(found["display"]["type"], "products");
        assert_eq!(found["display"]["items"][0]["id"], "p1");
        let added = shop.answer(&call("add_to_cart", json!({"id": "p1", "quantity": 2})), NOW).unwrap();
        assert_eq!(
            added["result"]["added"],
            json!({"id": "p1", "title": "Blue Ridge Runner", "quantity": 2})
        );
        assert_eq!(
            added["result"]["cart"],
            json!({"count": 2, "total": {"amount": "258.00", "currency": "EUR"}})
        );
        assert_eq!(added["display"]["items"][0]["quantity"], 2);
        // The two sold come off the stock.
        let product = shop.answer(&call("get_product", json!({"id": "p1"})), NOW).unwrap();
        assert_eq!(product["result"]["stock"], 18);
        let viewed = shop.answer(&call("view_cart", json!({})), NOW).unwrap();
        assert_eq!(viewed["result"]["count"], 2);
        assert_eq!(viewed["display"]["total"], json!({"amount": "258.00", "currency": "EUR"}));
        let mut other = call("view_cart", json!({}));
        other.subject = json!({"kind": "user", "id": "v1"});
        let theirs = shop.answer(&other, NOW).unwrap();
        assert_eq!(theirs["display"], json!({"type": "text", "text": "Your cart is empty."}));
    }

    #[test]
    fn out_of_stock_and_unknown_products_are_results_not_failures() {
        let shop = shop();
        let bottle = shop.answer(&call("add_to_cart", json!({"id": "p12"})), NOW).unwrap();
        assert_eq!(bottle["result"]["error"], "Steel Summit Bottle is out of stock");
        assert_eq!(bottle["display"]["type"], "text");
        let none = shop.answer(&call("get_product", json!({"id": "p99"})), NOW).unwrap();
        assert!(none["result"]["error"].is_string());
        assert!(none.get("display").is_none());
        let nothing = shop.answer(&call("search_products", json!({"query": "kayak"})), NOW).unwrap();
        assert_eq!(nothing, json!({"result": {"found": 0, "products": []}}));
        assert_eq!(shop.answer(&call("launch", json!({})), NOW).unwrap_err().0, StatusCode::BAD_REQUEST);
        let mut anonymous = call("view_cart", json!({}));
        anonymous.subject = Value::Null;
        assert_eq!(shop.answer(&anonymous, NOW).unwrap_err().0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn verify_answers_live_price_and_availability() {
        let shop = shop();
        let mut c = call("", Value::Null);
        c.kind = "products.verify".into();
        c.ids = vec!["p1".into(), "p99".into(), "p12".into()];
        let items = shop.answer(&c, NOW).unwrap();
        assert_eq!(
            items,
            json!({"items": [
                {"id": "p1", "price": "129.00", "currency": "EUR", "availability": "in_stock"},
                {"id": "p12", "price": "24.00", "currency": "EUR", "availability": "out_of_stock"},
            ]})
        );
    }
}
