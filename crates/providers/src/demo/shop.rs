//! The demo model with tools (SPEC §16, "The demo shop"): when the demo
//! shop's tools are offered, a request such as "show me running shoes"
//! becomes a `search_products` call, "add the blue one" an `add_to_cart` of a
//! product it listed before, "what's in my cart" a `view_cart` call, and a
//! request for a person a `handoff_to_human` call when that tool is offered.
//! Once a round has run it answers in words about the results.
//!
//! The model only ever sees text history (no earlier turn's tool results), so
//! its answers about search results list each product with its id, one per
//! line ("1. Blue Ridge Runner (p1), €129.00, in stock"), and "the blue one"
//! or "the second one" is resolved against the last such list it wrote.

use super::intent::{self, Intent, Pick};
use serde_json::{json, Value};
use switchboard_core::model::Role;
use switchboard_core::provider::ChatRequest;
use switchboard_core::tools::{ToolCall, ToolChoice, ToolResult, ToolRound};

pub const SEARCH: &str = "search_products";
pub const GET: &str = "get_product";
pub const ADD: &str = "add_to_cart";
pub const VIEW: &str = "view_cart";
pub const HANDOFF: &str = "handoff_to_human";

/// What the demo model answers with tools in play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Text(String),
    Calls(Vec<ToolCall>),
}

const NO_HANDOFF: &str = "I can't bring a person into this chat from here, but the team answers by email at \
help@trailhead.example. In a real deployment an agent can also take this conversation over from the console.";

const ASK_WHICH: &str = "Which product should I add? Ask me to show you some first, for example \"show me \
running shoes\", then say \"add the first one\".";

/// `None` when the request is not one for the shop's tools: the canned
/// answers apply.
pub fn reply(request: &ChatRequest) -> Option<Reply> {
    let tools = &request.tools;
    let offered = |name: &str| tools.offered.iter().any(|t| t.name == name);
    let may_call = tools.choice == ToolChoice::Auto;
    let message =
        request.history.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
    let intent = intent::intent(message);
    if !tools.rounds.is_empty() {
        let follow_up = may_call.then(|| follow_up(&intent, &tools.rounds, &offered)).flatten();
        return Some(follow_up.unwrap_or_else(|| Reply::Text(about_rounds(&tools.rounds))));
    }
    if intent == Intent::Handoff {
        return if offered(HANDOFF) && may_call {
            Some(call(HANDOFF, json!({"reason": "The visitor asked to talk to a person."})))
        } else if offered(SEARCH) {
            Some(Reply::Text(NO_HANDOFF.to_owned()))
        } else {
            None
        };
    }
    if !may_call {
        return None;
    }
    match intent {
        Intent::Search { query } if offered(SEARCH) => Some(call(SEARCH, json!({"query": query}))),
        Intent::ViewCart if offered(VIEW) => Some(call(VIEW, json!({}))),
        Intent::Add { pick, quantity } if offered(ADD) => Some(choose_then(ADD, &pick, quantity, request)),
        Intent::Details { pick } if offered(GET) => Some(choose_then(GET, &pick, 1, request)),
        _ => None,
    }
}

/// A call of `tool` (add or details) on the product `pick` names among those
/// the model listed last; a search when it names none of them.
fn choose_then(tool: &str, pick: &Pick, quantity: u32, request: &ChatRequest) -> Reply {
    let listed = request
        .history
        .iter()
        .rev()
        .find(|m| m.role == Role::Assistant)
        .map(|m| listed_in(&m.content))
        .unwrap_or_default();
    match choose(pick, &listed) {
        Some(id) => call(tool, arguments(tool, id, quantity)),
        None => match pick {
            Pick::Words(words) => call(SEARCH, json!({"query": words.join(" ")})),
            _ if listed.is_empty() => Reply::Text(ASK_WHICH.to_owned()),
            _ => Reply::Text(format!(
                "I listed {} product{} last time. Say \"add the first one\", or name its colour.",
                listed.len(),
                plural(listed.len())
            )),
        },
    }
}

fn arguments(tool: &str, id: &str, quantity: u32) -> Value {
    if tool == ADD {
        json!({"id": id, "quantity": quantity})
    } else {
        json!({"id": id})
    }
}

/// After a search this turn ran for "add the blue hoodie" (nothing listed
/// before named it): the add itself, on the best of the products found.
fn follow_up(intent: &Intent, rounds: &[ToolRound], offered: &dyn Fn(&str) -> bool) -> Option<Reply> {
    let (tool, pick, quantity) = match intent {
        Intent::Add { pick, quantity } => (ADD, pick, *quantity),
        Intent::Details { pick } => (GET, pick, 1),
        _ => return None,
    };
    let done = rounds.iter().flat_map(|r| &r.calls).any(|c| c.name == tool);
    let last = rounds.last()?;
    if done || !offered(tool) || last.calls.iter().all(|c| c.name != SEARCH) {
        return None;
    }
    let found: Vec<(String, String)> = last
        .results
        .iter()
        .filter(|r| !r.is_error)
        .filter_map(|r| serde_json::from_str::<Value>(&r.content).ok())
        .flat_map(|v| products(&v))
        .map(|p| (text(&p["id"]), text(&p["title"])))
        .collect();
    let listed: Vec<(&str, &str)> = found.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect();
    let id = choose(pick, &listed).or_else(|| listed.first().map(|(id, _)| *id))?;
    Some(call(tool, arguments(tool, id, quantity)))
}

/// The products of an answer about search results: `(id, title)` from its
/// lines `N. Title (id), …`.
fn listed_in(answer: &str) -> Vec<(&str, &str)> {
    answer
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.trim().split_once(". ")?;
            number.parse::<u32>().ok()?;
            let (title, rest) = rest.split_once(" (")?;
            let (id, _) = rest.split_once(')')?;
            Some((id, title))
        })
        .collect()
}

/// The id of the product `pick` names among `listed`.
fn choose<'a>(pick: &Pick, listed: &[(&'a str, &str)]) -> Option<&'a str> {
    match pick {
        Pick::Nth(n) => listed.get(*n).map(|(id, _)| *id),
        Pick::Last => listed.last().map(|(id, _)| *id),
        Pick::Unspecified => listed.first().map(|(id, _)| *id),
        Pick::Words(words) => {
            let score = |title: &str| {
                let title = intent::words(title);
                words.iter().filter(|w| title.iter().any(|t| intent::stem(t) == intent::stem(w))).count()
            };
            // The first of the best matches; none when no word matches.
            let best = listed.iter().map(|(_, title)| score(title)).max().filter(|s| *s > 0)?;
            listed.iter().find(|(_, title)| score(title) == best).map(|(id, _)| *id)
        }
    }
}

fn call(name: &str, arguments: Value) -> Reply {
    Reply::Calls(vec![ToolCall {
        id: format!("call_demo_{}", uuid::Uuid::new_v4().simple()),
        name: name.to_owned(),
        arguments: arguments.to_string(),
    }])
}

/// Words about the last round's results.
fn about_rounds(rounds: &[ToolRound]) -> String {
    let Some(last) = rounds.last() else { return String::new() };
    let parts: Vec<String> = last
        .calls
        .iter()
        .map(|call| describe(call, last.results.iter().find(|r| r.call_id == call.id)))
        .collect();
    parts.join("\n\n")
}

fn describe(call: &ToolCall, result: Option<&ToolResult>) -> String {
    let name = call.name.as_str();
    let Some(result) = result.filter(|r| !r.is_error) else {
        let why = result.map_or("no answer", |r| r.content.as_str());
        return format!("The shop's {name} tool did not work ({why}), so I can't show that right now. Please try again in a moment.");
    };
    let value =
        serde_json::from_str::<Value>(&result.content).unwrap_or(Value::String(result.content.clone()));
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return format!("The shop could not do that: {error}.");
    }
    let arguments = serde_json::from_str::<Value>(&call.arguments).unwrap_or(Value::Null);
    match name {
        SEARCH => about_search(arguments["query"].as_str().unwrap_or_default(), &value),
        GET => about_product(&value),
        ADD => about_add(&value),
        VIEW => about_cart(&value),
        HANDOFF => {
            "I've asked for a person to join this chat. Someone from the team will answer here shortly."
                .into()
        }
        _ => format!("I used {name}, and it answered."),
    }
}

fn about_search(query: &str, value: &Value) -> String {
    let found = products(value);
    if found.is_empty() {
        return format!(
            "I found nothing for \"{query}\" in the demo shop. Try running shoes, hoodies, socks or a jacket."
        );
    }
    let head = if query.trim().is_empty() {
        "Here is what the demo shop sells:".to_owned()
    } else {
        let n = found.len();
        format!("Here {} {n} product{} for \"{query}\":", if n == 1 { "is" } else { "are" }, plural(n))
    };
    let lines: Vec<String> = found.iter().enumerate().map(|(i, p)| product_line(i + 1, p)).collect();
    format!(
        "{head}\n{}\nSay \"add the first one\" or \"add the {} one\" to put one in your cart.",
        lines.join("\n"),
        colour_hint(&found)
    )
}

/// `N. Title (id), €129.00, in stock`: the line [`listed_in`] reads back.
fn product_line(n: usize, p: &Value) -> String {
    format!(
        "{n}. {} ({}), {}, {}",
        text(&p["title"]),
        text(&p["id"]),
        money(&p["price"], &p["currency"]),
        text(&p["availability"]).replace('_', " ")
    )
}

/// The first word of the last product's title (its colour, in the demo
/// catalog), for the hint.
fn colour_hint(found: &[Value]) -> String {
    let title = found.last().map(|p| text(&p["title"])).unwrap_or_default();
    title.split_whitespace().next().unwrap_or("blue").to_lowercase()
}

fn about_product(p: &Value) -> String {
    let stock = p["stock"].as_u64().map(|s| format!(" ({s} left)")).unwrap_or_default();
    let description = p["description"].as_str().map(|d| format!(" {d}")).unwrap_or_default();
    format!(
        "{} ({}) costs {} and is {}{stock}.{description} Say \"add it to my cart\" to buy it.",
        text(&p["title"]),
        text(&p["id"]),
        money(&p["price"], &p["currency"]),
        text(&p["availability"]).replace('_', " ")
    )
}

fn about_add(v: &Value) -> String {
    let added = &v["added"];
    let cart = &v["cart"];
    let count = cart["count"].as_u64().unwrap_or(0);
    format!(
        "Added {} \u{d7} {} to your cart. Your cart now has {count} item{}, {} in total.",
        added["quantity"].as_u64().unwrap_or(1),
        text(&added["title"]),
        plural(count as usize),
        money(&cart["total"]["amount"], &cart["total"]["currency"])
    )
}

fn about_cart(v: &Value) -> String {
    let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let count = v["count"].as_u64().unwrap_or(0);
    if items.is_empty() {
        return "Your cart is empty. Ask me to show you running shoes, hoodies or socks.".into();
    }
    let lines: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            format!(
                "{}. {} \u{d7} {} ({}), {} each",
                i + 1,
                item["quantity"].as_u64().unwrap_or(1),
                text(&item["title"]),
                text(&item["id"]),
                money(&item["price"], &item["currency"])
            )
        })
        .collect();
    format!(
        "Your cart has {count} item{}, total {}:\n{}",
        plural(count as usize),
        money(&v["total"]["amount"], &v["total"]["currency"]),
        lines.join("\n")
    )
}

/// The products of a search result: `{products: [...]}`.
fn products(v: &Value) -> Vec<Value> {
    v["products"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// "€129.00" for euros, "$24.00" for dollars, else "129.00 GBP".
fn money(amount: &Value, currency: &Value) -> String {
    let amount = text(amount);
    match currency.as_str() {
        Some("EUR") => format!("\u{20ac}{amount}"),
        Some("USD") => format!("${amount}"),
        Some(c) => format!("{amount} {c}"),
        None => amount,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use switchboard_core::provider::HistoryMessage;
    use switchboard_core::tools::{ToolContext, ToolSpec};

    fn spec(name: &str) -> ToolSpec {
        ToolSpec { name: name.into(), description: String::new(), parameters: json!({"type": "object"}) }
    }

    fn shop_tools(with_handoff: bool) -> Arc<[ToolSpec]> {
        let mut names = vec![SEARCH, GET, ADD, VIEW];
        if with_handoff {
            names.push(HANDOFF);
        }
        names.into_iter().map(spec).collect()
    }

    fn request(history: &[(Role, &str)], tools: ToolContext) -> ChatRequest {
        ChatRequest {
            system_prompt: None,
            history: history
                .iter()
                .map(|(role, c)| HistoryMessage { role: *role, content: (*c).into() })
                .collect(),
            session_id: uuid::Uuid::nil(),
            subject: "visitor:test".into(),
            conversation_id: None,
            trace_id: String::new(),
            tools,
        }
    }

    fn offered(with_handoff: bool) -> ToolContext {
        ToolContext { offered: shop_tools(with_handoff), ..Default::default() }
    }

    /// The one call of a reply, as `(name, arguments)`.
    fn the_call(reply: Option<Reply>) -> (String, Value) {
        match reply {
            Some(Reply::Calls(calls)) if calls.len() == 1 => {
                assert!(calls[0].id.starts_with("call_demo_"), "{}", calls[0].id);
                (calls[0].name.clone(), serde_json::from_str(&calls[0].arguments).unwrap())
            }
            other => panic!("expected one call, got {other:?}"),
        }
    }

    fn the_text(reply: Option<Reply>) -> String {
        match reply {
            Some(Reply::Text(text)) => text,
            other => panic!("expected text, got {other:?}"),
        }
    }

    fn search_result() -> Value {
        json!({"found": 3, "products": [
            {"id": "p1", "title": "Blue Ridge Runner", "price": "129.00", "currency": "EUR", "availability": "in_stock"},
            {"id": "p2", "title": "Red Ridge Runner", "price": "129.00", "currency": "EUR", "availability": "low_stock"},
            {"id": "p3", "title": "Orange Scree Trail", "price": "149.00", "currency": "EUR", "availability": "in_stock"},
        ]})
    }

    fn round(name: &str, arguments: Value, result: Value) -> ToolRound {
        ToolRound {
            text: String::new(),
            calls: vec![ToolCall { id: "c1".into(), name: name.into(), arguments: arguments.to_string() }],
            results: vec![ToolResult { call_id: "c1".into(), content: result.to_string(), is_error: false }],
        }
    }

    fn after(rounds: Vec<ToolRound>) -> ToolContext {
        ToolContext { rounds: rounds.into(), ..offered(false) }
    }

    #[test]
    fn requests_become_calls_of_the_shop_tools() {
        let ask = |m: &str| the_call(reply(&request(&[(Role::User, m)], offered(false))));
        assert_eq!(ask("show me running shoes"), (SEARCH.into(), json!({"query": "running shoes"})));
        assert_eq!(ask("do you have hoodies?"), (SEARCH.into(), json!({"query": "hoodies"})));
        assert_eq!(ask("what's in my cart"), (VIEW.into(), json!({})));
        // Nothing listed yet: "the blue hoodie" is searched for first.
        assert_eq!(ask("add the blue hoodie"), (SEARCH.into(), json!({"query": "blue hoodie"})));
        assert_eq!(the_text(reply(&request(&[(Role::User, "add it")], offered(false)))), ASK_WHICH);
    }

    #[test]
    fn other_requests_keep_the_canned_answers() {
        for m in ["Hello there", "What is Switchboard?"] {
            assert_eq!(reply(&request(&[(Role::User, m)], offered(false))), None, "{m}");
        }
        // No shop tools offered: no shop at all.
        let none = ToolContext::default();
        assert_eq!(reply(&request(&[(Role::User, "show me running shoes")], none)), None);
        // The last request of a turn may not call tools.
        let last = ToolContext { choice: ToolChoice::None, ..offered(false) };
        assert_eq!(reply(&request(&[(Role::User, "show me running shoes")], last)), None);
    }

    #[test]
    fn a_person_is_called_only_when_the_handoff_tool_is_offered() {
        let m = [(Role::User, "I'd like to talk to a person")];
        let (name, args) = the_call(reply(&request(&m, offered(true))));
        assert_eq!(name, HANDOFF);
        assert!(args["reason"].is_string());
        assert!(the_text(reply(&request(&m, offered(false)))).contains("by email"));
        assert_eq!(reply(&request(&m, ToolContext::default())), None);
    }

    #[test]
    fn search_results_are_listed_then_picked_by_position_or_colour() {
        let rounds = vec![round(SEARCH, json!({"query": "running shoes"}), search_result())];
        let listed = the_text(reply(&request(&[(Role::User, "show me running shoes")], after(rounds))));
        assert!(listed.starts_with("Here are 3 products for \"running shoes\":\n"), "{listed}");
        assert!(listed.contains("1. Blue Ridge Runner (p1), \u{20ac}129.00, in stock\n"), "{listed}");
        assert!(listed.contains("2. Red Ridge Runner (p2), \u{20ac}129.00, low stock\n"), "{listed}");
        assert!(!listed.contains(['*', '#', '`']), "plain text: {listed}");
        let history = |m: &'static str| {
            vec![(Role::User, "show me running shoes"), (Role::Assistant, listed.as_str()), (Role::User, m)]
        };
        let add = |m: &'static str| the_call(reply(&request(&history(m), offered(false))));
        assert_eq!(add("add the first one to my cart"), (ADD.into(), json!({"id": "p1", "quantity": 1})));
        assert_eq!(add("add the red one"), (ADD.into(), json!({"id": "p2", "quantity": 1})));
        assert_eq!(add("add two of the last one"), (ADD.into(), json!({"id": "p3", "quantity": 2})));
        assert_eq!(add("add it"), (ADD.into(), json!({"id": "p1", "quantity": 1})));
        assert_eq!(add("tell me more about the second one"), (GET.into(), json!({"id": "p2"})));
        // Not among them: searched for.
        assert_eq!(add("add the merino socks"), (SEARCH.into(), json!({"query": "merino socks"})));
        assert!(the_text(reply(&request(&history("add the sixth one"), offered(false)))).contains("listed 3"));
    }

    #[test]
    fn an_add_that_needed_a_search_adds_the_best_match_next() {
        let m = [(Role::User, "add the red runner")];
        let rounds = vec![round(SEARCH, json!({"query": "red runner"}), search_result())];
        assert_eq!(
            the_call(reply(&request(&m, after(rounds.clone())))),
            (ADD.into(), json!({"id": "p2", "quantity": 1}))
        );
        // Once added, it answers in words.
        let added = json!({"added": {"id": "p2", "title": "Red Ridge Runner", "quantity": 1},
            "cart": {"count": 1, "total": {"amount": "129.00", "currency": "EUR"}}});
        let mut both = rounds;
        both.push(round(ADD, json!({"id": "p2", "quantity": 1}), added));
        let text = the_text(reply(&request(&m, after(both))));
        assert_eq!(text, "Added 1 \u{d7} Red Ridge Runner to your cart. Your cart now has 1 item, \u{20ac}129.00 in total.");
    }

    #[test]
    fn results_are_told_in_words() {
        let m = [(Role::User, "what's in my cart")];
        let cart = json!({"count": 2, "total": {"amount": "179.80", "currency": "EUR"}, "items": [
            {"id": "p8", "title": "White Trail Socks", "quantity": 2, "price": "89.90", "currency": "EUR"}]});
        let text = the_text(reply(&request(&m, after(vec![round(VIEW, json!({}), cart)]))));
        assert_eq!(text, "Your cart has 2 items, total \u{20ac}179.80:\n1. 2 \u{d7} White Trail Socks (p8), \u{20ac}89.90 each");
        let empty = json!({"count": 0, "items": [], "total": {"amount": "0.00", "currency": "EUR"}});
        assert!(the_text(reply(&request(&m, after(vec![round(VIEW, json!({}), empty)])))).contains("empty"));
        let none = json!({"found": 0, "products": []});
        let text =
            the_text(reply(&request(&m, after(vec![round(SEARCH, json!({"query": "kayaks"}), none)]))));
        assert!(text.contains("nothing for \"kayaks\""), "{text}");
        let refused = json!({"error": "Steel Summit Bottle is out of stock"});
        let text = the_text(reply(&request(&m, after(vec![round(ADD, json!({"id": "p12"}), refused)]))));
        assert_eq!(text, "The shop could not do that: Steel Summit Bottle is out of stock.");
        let mut failed = round(VIEW, json!({}), json!(null));
        failed.results[0] = ToolResult { call_id: "c1".into(), content: "timeout".into(), is_error: true };
        let text = the_text(reply(&request(&m, after(vec![failed]))));
        assert!(text.contains("did not work (timeout)"), "{text}");
        let handed = the_text(reply(&request(
            &m,
            after(vec![round(HANDOFF, json!({}), json!({"status": "waiting"}))]),
        )));
        assert!(handed.contains("a person"), "{handed}");
    }
}
