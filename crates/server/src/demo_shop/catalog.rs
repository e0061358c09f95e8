//! The demo shop's catalog: a dozen products of a made-up outdoor shop, a
//! word search over them, and stock that changes. Stock follows the clock
//! (each product sells down over a ten-minute cycle, then is restocked),
//! less what `add_to_cart` took in the current cycle, so the cards' `low
//! stock` and `out of stock` come and go while the demo runs.

use super::images::{self, Shape};
use serde_json::{json, Value};

pub const CURRENCY: &str = "EUR";
/// At most this many units left reads `low_stock`.
const LOW_STOCK: u32 = 3;
/// The length of one sell-down-then-restock cycle.
const RESTOCK_SECS: i64 = 600;
/// The most products one search answers with.
pub const MAX_FOUND: usize = 6;

pub struct Product {
    pub id: &'static str,
    /// Starts with its colour ("Blue Ridge Runner"), which the demo model
    /// reads to resolve "the blue one".
    pub title: &'static str,
    /// More words a search matches (the kind of product, synonyms).
    pub tags: &'static str,
    pub description: &'static str,
    pub price_cents: u64,
    /// Stock never goes below `floor` by the clock, and starts each cycle
    /// at `floor + span`.
    floor: u32,
    span: u32,
    shape: Shape,
    colour: &'static str,
}

const fn product(
    id: &'static str,
    title: &'static str,
    tags: &'static str,
    description: &'static str,
    price_cents: u64,
    (floor, span): (u32, u32),
    (shape, colour): (Shape, &'static str),
) -> Product {
    Product { id, title, tags, description, price_cents, floor, span, shape, colour }
}

const SHOE: &str = "running shoe shoes sneaker trainer runner";

pub static PRODUCTS: [Product; 12] = [
    product(
        "p1",
        "Blue Ridge Runner",
        SHOE,
        "A light, cushioned road running shoe.",
        12900,
        (6, 14),
        (Shape::Shoe, "#2b5fa8"),
    ),
    product(
        "p2",
        "Red Ridge Runner",
        SHOE,
        "The Ridge Runner in signal red.",
        12900,
        (4, 8),
        (Shape::Shoe, "#c0392b"),
    ),
    product(
        "p3",
        "Orange Scree Trail",
        "trail running shoe shoes sneaker runner",
        "A grippy trail shoe for loose ground.",
        14900,
        (0, 4),
        (Shape::Shoe, "#e67e22"),
    ),
    product(
        "p4",
        "Black Tempo Road",
        SHOE,
        "A firm, fast shoe for tempo runs.",
        10900,
        (5, 10),
        (Shape::Shoe, "#222222"),
    ),
    product(
        "p5",
        "Green Summit Hoodie",
        "hoodie hoody sweatshirt",
        "A warm cotton hoodie with a kangaroo pocket.",
        6900,
        (5, 10),
        (Shape::Hoodie, "#2e7d4f"),
    ),
    product(
        "p6",
        "Grey Summit Hoodie",
        "hoodie hoody sweatshirt gray",
        "The Summit Hoodie in heather grey.",
        6900,
        (1, 4),
        (Shape::Hoodie, "#8a8f98"),
    ),
    product(
        "p7",
        "Navy Basecamp Hoodie",
        "hoodie hoody sweatshirt zip blue",
        "A zip hoodie in recycled fleece.",
        5990,
        (4, 12),
        (Shape::Hoodie, "#1f2f5c"),
    ),
    product(
        "p8",
        "White Trail Socks",
        "socks sock pair running",
        "Two pairs of cushioned running socks.",
        1490,
        (10, 30),
        (Shape::Sock, "#e8e8e8"),
    ),
    product(
        "p9",
        "Grey Merino Socks",
        "socks sock merino wool hiking gray",
        "Merino wool hiking socks.",
        1990,
        (4, 10),
        (Shape::Sock, "#8a8f98"),
    ),
    product(
        "p10",
        "Yellow Stormline Jacket",
        "jacket rain coat waterproof shell",
        "A waterproof, breathable rain jacket.",
        18900,
        (2, 6),
        (Shape::Jacket, "#f1c40f"),
    ),
    product(
        "p11",
        "Green Daybreak Pack",
        "pack backpack bag daypack 22",
        "A 22 litre day pack.",
        8900,
        (4, 8),
        (Shape::Pack, "#3f7d3a"),
    ),
    product(
        "p12",
        "Steel Summit Bottle",
        "bottle water flask silver",
        "An insulated steel bottle, sold out this week.",
        2400,
        (0, 0),
        (Shape::Bottle, "#9aa5ad"),
    ),
];

pub fn find(id: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

/// "12900" cents as "129.00".
pub fn amount(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub fn availability(stock: u32) -> &'static str {
    match stock {
        0 => "out_of_stock",
        n if n <= LOW_STOCK => "low_stock",
        _ => "in_stock",
    }
}

impl Product {
    /// The restock cycle `now` (unix seconds) falls in, and the stock the
    /// clock leaves then. Products are out of phase, so they do not all
    /// restock at once.
    pub fn clock_stock(&self, now: i64) -> (i64, u32) {
        let index = PRODUCTS.iter().position(|p| p.id == self.id).unwrap_or(0) as i64;
        let t = now.saturating_add(index * 97);
        let into = t.rem_euclid(RESTOCK_SECS);
        // `span + 1` steps, so the last part of a cycle is down to `floor`.
        let sold = into * i64::from(self.span + 1) / RESTOCK_SECS;
        let sold = u32::try_from(sold).unwrap_or(self.span).min(self.span);
        (t.div_euclid(RESTOCK_SECS), self.floor + self.span - sold)
    }

    /// What the model is told about it.
    pub fn summary(&self, stock: u32) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "price": amount(self.price_cents),
            "currency": CURRENCY,
            "availability": availability(stock),
        })
    }

    /// What the visitor sees: a product card (SPEC §16 `display`).
    pub fn card(&self, stock: u32) -> Value {
        let mut card = self.summary(stock);
        card["url"] = json!(format!("/demo#{}", self.id));
        card["image"] = json!(images::data_uri(self.shape, self.colour));
        card
    }

    fn words(&self) -> impl Iterator<Item = String> + '_ {
        words(self.title).chain(words(self.tags))
    }
}

/// The products a query's words match best, in catalog order, at most
/// [`MAX_FOUND`]: those matching the most words ("blue running shoes"
/// prefers the blue one), none when no word matches. An empty query lists
/// the catalog.
pub fn search(query: &str) -> Vec<&'static Product> {
    let wanted: Vec<String> = words(query).collect();
    if wanted.is_empty() {
        return PRODUCTS.iter().take(MAX_FOUND).collect();
    }
    let score = |p: &Product| {
        let own: Vec<String> = p.words().collect();
        wanted.iter().filter(|w| own.contains(w)).count()
    };
    let best = PRODUCTS.iter().map(score).max().unwrap_or(0);
    if best == 0 {
        return Vec::new();
    }
    PRODUCTS.iter().filter(|p| score(p) == best).take(MAX_FOUND).collect()
}

/// Lowercase words, plural and singular alike ("shoes" is "shoe").
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| {
        let w = w.to_lowercase();
        match w.strip_suffix('s') {
            Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem.to_owned(),
            _ => w,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(found: &[&Product]) -> Vec<&'static str> {
        found.iter().map(|p| p.id).collect()
    }

    #[test]
    fn a_dozen_products_with_unique_ids_and_colour_first_titles() {
        assert_eq!(PRODUCTS.len(), 12);
        for (i, p) in PRODUCTS.iter().enumerate() {
            assert!(PRODUCTS.iter().skip(i + 1).all(|o| o.id != p.id), "{}", p.id);
            assert!(find(p.id).is_some());
        }
        assert!(find("p99").is_none());
        assert_eq!(amount(12900), "129.00");
        assert_eq!(amount(1490), "14.90");
    }

    #[test]
    fn searches_match_the_most_words_plural_or_not() {
        assert_eq!(ids(&search("running shoes")), ["p1", "p2", "p3", "p4"]);
        assert_eq!(ids(&search("blue running shoes")), ["p1"]);
        assert_eq!(ids(&search("Hoodies")), ["p5", "p6", "p7"]);
        assert_eq!(ids(&search("grey")), ["p6", "p9"]);
        assert_eq!(ids(&search("socks")), ["p8", "p9"]);
        assert_eq!(ids(&search("rain jacket")), ["p10"]);
        assert!(search("kayak").is_empty());
        assert_eq!(search("").len(), MAX_FOUND);
    }

    #[test]
    fn stock_sells_down_over_a_cycle_then_restocks() {
        let p = find("p1").unwrap();
        // p1 is first in the catalog: no phase shift.
        assert_eq!(p.clock_stock(0), (0, 20));
        assert_eq!(p.clock_stock(RESTOCK_SECS - 1), (0, 6));
        assert_eq!(p.clock_stock(RESTOCK_SECS), (1, 20));
        let mut seen: Vec<u32> = (0..RESTOCK_SECS).step_by(10).map(|t| p.clock_stock(t).1).collect();
        assert!(seen.windows(2).all(|w| w[0] >= w[1]), "sells down within a cycle");
        seen.dedup();
        assert!(seen.len() > 10, "changes often: {seen:?}");
        // The trail shoe runs low and out; the bottle is sold out.
        let trail = find("p3").unwrap();
        let states: Vec<&str> = (0..RESTOCK_SECS).map(|t| availability(trail.clock_stock(t).1)).collect();
        assert!(states.contains(&"low_stock") && states.contains(&"out_of_stock"));
        assert_eq!(find("p12").unwrap().clock_stock(123).1, 0);
        assert_eq!(
            (availability(0), availability(3), availability(4)),
            ("out_of_stock", "low_stock", "in_stock")
        );
    }

    #[test]
    fn cards_carry_every_field_of_the_display() {
        let card = find("p2").unwrap().card(2);
        for field in ["id", "title", "price", "currency", "availability", "url", "image"] {
            assert!(card[field].is_string(), "{field}: {card}");
        }
        assert_eq!(card["availability"], "low_stock");
        assert_eq!(card["url"], "/demo#p2");
        assert!(card["image"].as_str().unwrap().starts_with("data:image/svg+xml,"));
    }
}
