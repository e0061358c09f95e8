//! The demo shop end to end (SPEC §16, "The demo shop"): the real binary with
//! no tenant configured runs the built-in demo tenant, whose offline model
//! calls the shop the binary serves at `/demo/api/tools` through signed
//! webhooks: a search shows product cards, "add the blue one" adds the
//! product it listed, "what's in my cart" shows quantities and the total. The
//! shop refuses calls that are not signed with its secret.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{AppConfig, SseReply, TestApp};
use serde_json::{json, Value};
use switchboard_tools::SigningKeys;

fn events(reply: &SseReply, kind: &str) -> Vec<Value> {
    reply.events.iter().filter(|e| e.event == kind).map(|e| e.json()).collect()
}

/// The turn's `tool` events: `running`, then `done` with its display, or
/// for products `shown` and `verified` (the shop's live check, `verify_url`).
fn done(reply: &SseReply, name: &str) -> Value {
    let tools = events(reply, "tool");
    let statuses: Vec<&str> = tools.iter().filter_map(|t| t["status"].as_str()).collect();
    let products = tools.last().is_some_and(|t| t["display"]["type"] == "products");
    let expected: &[&str] = if products { &["running", "shown", "verified"] } else { &["running", "done"] };
    assert_eq!(statuses, expected, "{tools:?}");
    assert!(tools.iter().all(|t| t["name"] == name), "{tools:?}");
    for t in &tools {
        assert!(t.get("arguments").is_none() && t.get("result").is_none(), "{t}");
    }
    tools.last().unwrap()["display"].clone()
}

fn answer(reply: &SseReply) -> String {
    let end = reply.last().json();
    assert_eq!(reply.last().event, "stream_end", "{:?}", reply.events);
    assert_eq!(end["finish_reason"], "stop", "{end}");
    end["message"]["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn search_add_and_view_the_cart_through_the_shops_signed_tools() {
    let app = TestApp::start(AppConfig::new()).await;
    let (sid, v) = app.create_session("demo").await;

    let reply = app.chat_stream(&v, &sid, "show me running shoes").await;
    let display = done(&reply, "search_products");
    assert_eq!(display["type"], "products");
    let cards = display["items"].as_array().unwrap();
    assert_eq!(cards.len(), 4, "{display}");
    for card in cards {
        for field in ["id", "title", "price", "currency", "availability", "url", "image"] {
            assert!(card[field].is_string(), "{field}: {card}");
        }
        assert!(card["image"].as_str().unwrap().starts_with("data:image/svg+xml,"));
    }
    assert_eq!(cards[0]["title"], "Blue Ridge Runner");
    let text = answer(&reply);
    assert!(text.starts_with("Here are 4 products for \"running shoes\":"), "{text}");
    assert!(text.contains("1. Blue Ridge Runner (p1), \u{20ac}129.00"), "{text}");

    // "the blue one" is resolved against the list the model wrote.
    let reply = app.chat_stream(&v, &sid, "add the blue one to my cart").await;
    let cart = done(&reply, "add_to_cart");
    assert_eq!(cart["items"][0]["id"], "p1");
    assert_eq!(cart["items"][0]["quantity"], 1);
    assert_eq!(cart["total"], json!({"amount": "129.00", "currency": "EUR"}));
    assert_eq!(
        answer(&reply),
        "Added 1 \u{d7} Blue Ridge Runner to your cart. Your cart now has 1 item, \u{20ac}129.00 in total."
    );

    // Nothing listed names socks: the model searches, then adds the best match.
    let reply = app.chat_stream(&v, &sid, "add 2 of the white socks").await;
    let tools = events(&reply, "tool");
    assert_eq!(tools[0]["name"], "search_products", "{tools:?}");
    for name in ["search_products", "add_to_cart"] {
        // Each check runs beside what follows, so the two calls' events interleave.
        let statuses: Vec<&str> =
            tools.iter().filter(|t| t["name"] == name).filter_map(|t| t["status"].as_str()).collect();
        assert_eq!(statuses, ["running", "shown", "verified"], "{name}: {tools:?}");
    }
    assert!(answer(&reply).starts_with("Added 2 \u{d7} White Trail Socks"));

    let reply = app.chat_stream(&v, &sid, "what's in my cart?").await;
    let cart = done(&reply, "view_cart");
    let quantities: Vec<(&str, u64)> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["quantity"].as_u64().unwrap()))
        .collect();
    assert_eq!(quantities, [("p1", 1), ("p8", 2)]);
    // 129.00 + 2 × 14.90
    assert_eq!(cart["total"], json!({"amount": "158.80", "currency": "EUR"}));
    let text = answer(&reply);
    assert!(text.starts_with("Your cart has 3 items, total \u{20ac}158.80:"), "{text}");

    // The stored answer keeps the cards for a reload.
    let stored = app.message(&v, &sid, 8).await.unwrap();
    assert_eq!(stored["tools"][0]["display"], cart);

    // Another visitor has a cart of their own.
    let (sid2, v2) = app.create_session("demo").await;
    let reply = app.chat_stream(&v2, &sid2, "what's in my cart?").await;
    assert_eq!(done(&reply, "view_cart"), json!({"type": "text", "text": "Your cart is empty."}));

    // Other questions keep the canned answers, without tools.
    let reply = app.chat_stream(&v2, &sid2, "Hello there").await;
    assert!(events(&reply, "tool").is_empty());
    assert!(answer(&reply).contains("demo model"));
}

#[tokio::test]
async fn the_shop_refuses_calls_not_signed_with_its_secret() {
    let app = TestApp::start(AppConfig::new()).await;
    let body = json!({"type": "tool.call", "tool": "view_cart", "arguments": {},
        "subject": {"kind": "visitor", "id": "v1"}})
    .to_string();
    let post = |headers: Vec<(&'static str, String)>| {
        let mut request = app.client.post(app.url("/demo/api/tools")).body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let unsigned = post(Vec::new()).await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);

    let stranger = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let now = chrono::Utc::now().timestamp();
    let id = "msg_test".to_owned();
    let signature = stranger.sign(&id, now, body.as_bytes());
    let badly_signed = post(vec![
        ("webhook-id", id),
        ("webhook-timestamp", now.to_string()),
        ("webhook-signature", signature),
    ])
    .await
    .unwrap();
    assert_eq!(badly_signed.status().as_u16(), 401);

    let get = app.client.get(app.url("/demo/api/tools")).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
}

#[tokio::test]
async fn asking_for_a_person_hands_the_chat_off() {
    let app = TestApp::start(AppConfig::new()).await;
    let (sid, v) = app.create_session("demo").await;
    let reply = app.chat_stream(&v, &sid, "I'd like to talk to a person").await;
    let tools = events(&reply, "tool");
    assert_eq!(tools.last().unwrap()["name"], "handoff_to_human", "{tools:?}");
    assert_eq!(tools.last().unwrap()["status"], "done", "{tools:?}");
    let handoff = events(&reply, "handoff");
    assert_eq!(handoff.len(), 1, "{:?}", reply.events);
    assert_eq!(handoff[0]["status"], "waiting");
    assert!(answer(&reply).contains("a person"));
}
