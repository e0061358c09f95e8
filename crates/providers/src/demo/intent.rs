//! What a visitor's message asks of the demo shop, read with a few keyword
//! rules: the demo model has no language model behind it, so it recognises
//! the handful of requests the demo walks through ("show me running shoes",
//! "add the blue one", "what's in my cart", "I'd like to talk to a person")
//! and leaves everything else to its canned answers.

/// Which product of a list a message points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// "the first one", "the second", "the last one" (0-based; `Last`).
    Nth(usize),
    Last,
    /// Words that describe it: "the blue one", "the merino socks".
    Words(Vec<String>),
    /// Nothing said: "add it", "add that to my cart".
    Unspecified,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A person, not the model.
    Handoff,
    ViewCart,
    Add {
        pick: Pick,
        quantity: u32,
    },
    /// "tell me more about the first one".
    Details {
        pick: Pick,
    },
    /// Product words (possibly none: "what do you sell?").
    Search {
        query: String,
    },
    /// Nothing the shop can help with: the canned answers.
    Other,
}

/// Words of a message, lowercase, without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Plural and singular compare equal ("shoes" and "shoe", "hoodies" and
/// "hoodie"); the same rule is applied on both sides of a comparison.
pub fn stem(word: &str) -> &str {
    match word.strip_suffix('s') {
        Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem,
        _ => word,
    }
}

const HANDOFF: &[&str] = &["human", "person", "agent", "representative", "operator", "someone"];
const CART: &[&str] = &["cart", "basket"];
/// Words that point at something listed before: "the blue one", "add it".
const REFERS: &[&str] = &["one", "ones", "it", "them", "that", "this", "those", "these", "last"];
/// Words that make a message a product request even without a product word.
const ASKING: &[&[&str]] = &[
    &["show", "me"],
    &["do", "you", "have"],
    &["do", "you", "sell"],
    &["looking", "for"],
    &["search"],
    &["find"],
    &["what", "do", "you", "sell"],
    &["price"],
    &["products"],
    &["catalog"],
];
/// Words of the demo catalog (stemmed): a message naming one is a search.
const PRODUCT_WORDS: &[&str] = &[
    "shoe",
    "runner",
    "running",
    "trail",
    "sneaker",
    "trainer",
    "hoodie",
    "hoody",
    "sweatshirt",
    "sock",
    "jacket",
    "coat",
    "rain",
    "pack",
    "backpack",
    "bottle",
    "gear",
];
/// Words that carry no product meaning, left out of queries and picks.
const FILLER: &[&str] = &[
    "show",
    "me",
    "do",
    "you",
    "have",
    "any",
    "some",
    "the",
    "a",
    "an",
    "i",
    "im",
    "m",
    "d",
    "ll",
    "looking",
    "for",
    "search",
    "find",
    "please",
    "want",
    "need",
    "like",
    "would",
    "to",
    "see",
    "what",
    "whats",
    "s",
    "is",
    "are",
    "there",
    "got",
    "can",
    "could",
    "get",
    "of",
    "price",
    "prices",
    "your",
    "in",
    "into",
    "on",
    "with",
    "my",
    "and",
    "or",
    "shop",
    "store",
    "sell",
    "products",
    "product",
    "catalog",
    "items",
    "item",
    "which",
    "how",
    "much",
    "does",
    "cost",
    "tell",
    "about",
    "something",
    "hi",
    "hello",
    "hey",
    "add",
    "put",
    "one",
    "ones",
    "it",
    "that",
    "this",
    "those",
    "these",
    "cart",
    "basket",
    "pair",
    "pairs",
    "more",
    "details",
    "detail",
    "x",
    "too",
    "also",
    "please",
    "thanks",
    "thank",
    "buy",
    "them",
    "just",
    "all",
];
const ORDINALS: &[(&str, usize)] = &[
    ("first", 0),
    ("1st", 0),
    ("second", 1),
    ("2nd", 1),
    ("third", 2),
    ("3rd", 2),
    ("fourth", 3),
    ("4th", 3),
    ("fifth", 4),
    ("5th", 4),
    ("sixth", 5),
    ("6th", 5),
];
const NUMBERS: &[(&str, u32)] = &[
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
];

/// The most of one product one request adds (the shop's own limit).
pub const MAX_QUANTITY: u32 = 10;

pub fn intent(message: &str) -> Intent {
    let w = words(message);
    let has = |word: &str| w.iter().any(|x| x == word);
    let has_seq = |seq: &[&str]| w.windows(seq.len()).any(|win| win.iter().zip(seq).all(|(a, b)| a == b));
    if HANDOFF.iter().any(|h| has(h)) && !has("add") {
        return Intent::Handoff;
    }
    let about_cart = CART.iter().any(|c| has(c));
    let names_product = w.iter().any(|x| PRODUCT_WORDS.contains(&stem(x)));
    // "add" alone is too common ("how do I add a tenant?"): it must point
    // at a product, a list or the cart.
    let points = REFERS.iter().any(|r| has(r))
        || w.iter().any(|x| ORDINALS.iter().any(|(o, _)| o == x) || x.parse::<u32>().is_ok())
        || NUMBERS.iter().any(|(n, _)| has(n));
    if (has("add") && (about_cart || points || names_product)) || (has("put") && about_cart) {
        return Intent::Add { pick: pick(&w), quantity: quantity(&w) };
    }
    if about_cart {
        return Intent::ViewCart;
    }
    if has_seq(&["more", "about"]) || has("details") || has("detail") {
        return Intent::Details { pick: pick(&w) };
    }
    if names_product || ASKING.iter().any(|seq| has_seq(seq)) {
        return Intent::Search { query: descriptive(&w).join(" ") };
    }
    Intent::Other
}

/// The words left once filler, ordinals and numbers are gone.
fn descriptive(w: &[String]) -> Vec<String> {
    w.iter()
        .filter(|x| !FILLER.contains(&x.as_str()))
        .filter(|x| !ORDINALS.iter().any(|(o, _)| o == x) && x.as_str() != "last")
        .filter(|x| !NUMBERS.iter().any(|(n, _)| n == x) && x.parse::<u32>().is_err())
        .cloned()
        .collect()
}

fn pick(w: &[String]) -> Pick {
    if let Some((_, n)) = ORDINALS.iter().find(|(o, _)| w.iter().any(|x| x == o)) {
        return Pick::Nth(*n);
    }
    if w.iter().any(|x| x == "last") {
        return Pick::Last;
    }
    let words = descriptive(w);
    if words.is_empty() {
        Pick::Unspecified
    } else {
        Pick::Words(words)
    }
}

/// "add two", "add 3 pairs": 1 unless said, at most [`MAX_QUANTITY`].
fn quantity(w: &[String]) -> u32 {
    let said = w.iter().find_map(|x| {
        x.parse::<u32>().ok().or_else(|| NUMBERS.iter().find(|(n, _)| n == x).map(|(_, q)| *q))
    });
    said.unwrap_or(1).clamp(1, MAX_QUANTITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(list: &[&str]) -> Pick {
        Pick::Words(list.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn the_demo_requests_map_to_intents() {
        let cases = [
            ("show me running shoes", Intent::Search { query: "running shoes".into() }),
            ("Do you have hoodies?", Intent::Search { query: "hoodies".into() }),
            ("What's the price of the red shoes?", Intent::Search { query: "red shoes".into() }),
            ("What do you sell?", Intent::Search { query: String::new() }),
            ("add the first one to my cart", Intent::Add { pick: Pick::Nth(0), quantity: 1 }),
            ("Add the blue one", Intent::Add { pick: words_of(&["blue"]), quantity: 1 }),
            ("add 2 of the merino socks", Intent::Add { pick: words_of(&["merino", "socks"]), quantity: 2 }),
            ("add three of the last one", Intent::Add { pick: Pick::Last, quantity: 3 }),
            ("add it to my cart", Intent::Add { pick: Pick::Unspecified, quantity: 1 }),
            ("put it in my basket please", Intent::Add { pick: Pick::Unspecified, quantity: 1 }),
            ("add 99", Intent::Add { pick: Pick::Unspecified, quantity: MAX_QUANTITY }),
            ("What's in my cart?", Intent::ViewCart),
            ("show my cart", Intent::ViewCart),
            ("I'd like to talk to a person", Intent::Handoff),
            ("Can I speak to a human?", Intent::Handoff),
            ("agent please", Intent::Handoff),
            ("tell me more about the second one", Intent::Details { pick: Pick::Nth(1) }),
            ("Hello there", Intent::Other),
            ("Once more", Intent::Other),
            ("How do I add a tenant?", Intent::Other),
            ("add the red runner", Intent::Add { pick: words_of(&["red", "runner"]), quantity: 1 }),
            ("What is Switchboard?", Intent::Other),
            ("Explain quantum physics", Intent::Other),
        ];
        for (message, expected) in cases {
            assert_eq!(intent(message), expected, "{message}");
        }
    }

    #[test]
    fn plurals_compare_equal() {
        for (a, b) in [("shoes", "shoe"), ("hoodies", "hoodie"), ("socks", "sock"), ("runners", "runner")] {
            assert_eq!(stem(a), stem(b));
        }
        assert_eq!(stem("dress"), "dress");
        assert_eq!(stem("bus"), "bus");
    }
}
