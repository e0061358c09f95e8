//! The demo shop's carts, one per subject of the calls (`user:<sub>` or
//! `visitor:<id>`), in memory only: a demo, so a restart empties them.
//! Bounded, because every new visitor of a public demo can make one: at
//! most [`MAX_CARTS`] carts, the one used longest ago evicted to make room,
//! and a cart holds at most one line per product, each of at most
//! [`MAX_QUANTITY`].

use super::catalog::{self, Product};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub const MAX_CARTS: usize = 10_000;
/// The most of one product a cart holds (also `add_to_cart`'s limit).
pub const MAX_QUANTITY: u32 = 10;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cart {
    /// `(product id, quantity)`, in the order first added.
    lines: Vec<(&'static str, u32)>,
}

impl Cart {
    /// How many units in all.
    pub fn count(&self) -> u32 {
        self.lines.iter().map(|(_, q)| q).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn total_cents(&self) -> u64 {
        self.items().map(|(p, q)| p.price_cents * u64::from(q)).sum()
    }

    fn items(&self) -> impl Iterator<Item = (&'static Product, u32)> + '_ {
        self.lines.iter().filter_map(|(id, q)| catalog::find(id).map(|p| (p, *q)))
    }

    /// `{amount, currency}`.
    pub fn total(&self) -> Value {
        json!({"amount": catalog::amount(self.total_cents()), "currency": catalog::CURRENCY})
    }

    /// What the model is told: each line, the count and the total.
    pub fn summary(&self) -> Value {
        let items: Vec<Value> = self
            .items()
            .map(|(p, q)| {
                json!({"id": p.id, "title": p.title, "quantity": q,
                       "price": catalog::amount(p.price_cents), "currency": catalog::CURRENCY})
            })
            .collect();
        json!({"count": self.count(), "items": items, "total": self.total()})
    }

    /// What the visitor sees: the products with their quantity, and the
    /// total; `stock` gives each product's current stock.
    pub fn display(&self, stock: impl Fn(&Product) -> u32) -> Value {
        let items: Vec<Value> = self
            .items()
            .map(|(p, q)| {
                let mut card = p.card(stock(p));
                card["quantity"] = json!(q);
                card
            })
            .collect();
        json!({"type": "products", "items": items, "total": self.total()})
    }
}

/// Every cart, with the order they were last used in.
#[derive(Debug)]
pub struct Carts {
    carts: HashMap<String, (u64, Cart)>,
    /// Last use (a counter) → subject: the oldest is the first entry.
    used: BTreeMap<u64, String>,
    tick: u64,
    max: usize,
}

impl Default for Carts {
    fn default() -> Self {
        Self::with_capacity(MAX_CARTS)
    }
}

impl Carts {
    pub fn with_capacity(max: usize) -> Self {
        Self { carts: HashMap::new(), used: BTreeMap::new(), tick: 0, max: max.max(1) }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.carts.len()
    }

    /// The subject's cart (an empty one when it has none).
    pub fn get(&self, subject: &str) -> Cart {
        self.carts.get(subject).map(|(_, c)| c.clone()).unwrap_or_default()
    }

    /// Adds `quantity` of `product` (up to [`MAX_QUANTITY`] in the cart) and
    /// returns how many were added and the cart after.
    pub fn add(&mut self, subject: &str, product: &'static Product, quantity: u32) -> (u32, Cart) {
        self.tick += 1;
        let tick = self.tick;
        if !self.carts.contains_key(subject) {
            while self.carts.len() >= self.max {
                let Some((_, oldest)) = self.used.pop_first() else { break };
                self.carts.remove(&oldest);
            }
        }
        let (last, cart) = self.carts.entry(subject.to_owned()).or_default();
        self.used.remove(last);
        *last = tick;
        self.used.insert(tick, subject.to_owned());
        let added = match cart.lines.iter_mut().find(|(id, _)| *id == product.id) {
            Some((_, q)) => {
                let added = quantity.min(MAX_QUANTITY - *q);
                *q += added;
                added
            }
            None => {
                let added = quantity.min(MAX_QUANTITY);
                cart.lines.push((product.id, added));
                added
            }
        };
        (added, cart.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> &'static Product {
        catalog::find(id).unwrap()
    }

    #[test]
    fn adds_up_quantities_and_totals() {
        let mut carts = Carts::default();
        assert!(carts.get("visitor:a").is_empty());
        carts.add("visitor:a", p("p1"), 1);
        let (added, _) = carts.add("visitor:a", p("p8"), 2);
        assert_eq!(added, 2);
        let (_, cart) = carts.add("visitor:a", p("p1"), 1);
        assert_eq!(cart.count(), 4);
        // 2 × 129.00 + 2 × 14.90
        assert_eq!(cart.total(), json!({"amount": "287.80", "currency": "EUR"}));
        let summary = cart.summary();
        assert_eq!(
            summary["items"][0],
            json!({"id": "p1", "title": "Blue Ridge Runner", "quantity": 2, "price": "129.00", "currency": "EUR"})
        );
        let display = cart.display(|_| 5);
        assert_eq!(display["type"], "products");
        assert_eq!(display["items"][1]["quantity"], 2);
        assert_eq!(display["items"][1]["availability"], "in_stock");
        assert_eq!(display["total"]["amount"], "287.80");
        // Carts are per subject.
        assert!(carts.get("visitor:b").is_empty());
        assert_eq!(carts.get("visitor:a"), cart);
    }

    #[test]
    fn a_line_holds_at_most_the_limit() {
        let mut carts = Carts::default();
        assert_eq!(carts.add("u", p("p1"), 8).0, 8);
        assert_eq!(carts.add("u", p("p1"), 8).0, 2);
        assert_eq!(carts.add("u", p("p1"), 1).0, 0);
        assert_eq!(carts.get("u").count(), MAX_QUANTITY);
    }

    #[test]
    fn the_cart_used_longest_ago_makes_room() {
        let mut carts = Carts::with_capacity(2);
        carts.add("a", p("p1"), 1);
        carts.add("b", p("p1"), 1);
        carts.add("a", p("p2"), 1); // a is now the latest
        carts.add("c", p("p1"), 1);
        assert_eq!(carts.len(), 2);
        assert!(carts.get("b").is_empty(), "b was evicted");
        assert_eq!(carts.get("a").count(), 2);
        assert_eq!(carts.get("c").count(), 1);
        assert_eq!(MAX_CARTS, 10_000);
    }
}
