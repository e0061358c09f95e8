//! History over REST (SPEC §4): newest first, `limit`, `before_seq` and
//! `cursor` paging, bad paging parameters, and history kept across restarts.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::scenarios;
use common::{pieces, AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::time::Duration;

fn seqs(page: &serde_json::Value) -> Vec<i64> {
    page["items"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn streamed_turn_survives_a_restart() {
    scenarios::streamed_turn_survives_restart(None).await;
}

#[tokio::test]
async fn history_pages_newest_first_and_survives_restart() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(2))).await;
    let mut app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    for i in 1..=3 {
        let r = app.chat_json(&v, &sid, &format!("message {i}")).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    }
    let before = app.messages(&v, &sid).await;

    let (status, _) = app.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    app.restart().await;

    let all = app.messages_page(&v, &sid, "").await;
    assert_eq!(all.status.as_u16(), 200, "{}", all.text);
    assert_eq!(seqs(&all.body), vec![6, 5, 4, 3, 2, 1], "default page");
    assert!(all.body["next_cursor"].is_null(), "a single page has no next cursor: {}", all.text);
    assert_eq!(all.body["items"].as_array().unwrap(), &before, "history changed across a restart");
    assert_eq!(all.body["items"][5]["content"], "message 1");
    assert_eq!(all.body["items"][4]["role"], "assistant");

    // Cursor paging walks the whole history once.
    let p1 = app.messages_page(&v, &sid, "?limit=2").await;
    assert_eq!(seqs(&p1.body), vec![6, 5]);
    let c1 = p1.body["next_cursor"].as_str().expect("a next cursor after page 1").to_owned();
    let p2 = app.messages_page(&v, &sid, &format!("?limit=2&cursor={c1}")).await;
    assert_eq!(p2.status.as_u16(), 200, "{}", p2.text);
    assert_eq!(seqs(&p2.body), vec![4, 3]);
    let c2 = p2.body["next_cursor"].as_str().expect("a next cursor after page 2").to_owned();
    let p3 = app.messages_page(&v, &sid, &format!("?limit=2&cursor={c2}")).await;
    assert_eq!(seqs(&p3.body), vec![2, 1]);
    assert!(p3.body["next_cursor"].is_null(), "the last page has a null cursor: {}", p3.text);

    let b = app.messages_page(&v, &sid, "?before_seq=5&limit=2").await;
    assert_eq!(seqs(&b.body), vec![4, 3]);
    let b = app.messages_page(&v, &sid, "?before_seq=3").await;
    assert_eq!(seqs(&b.body), vec![2, 1]);
    assert!(b.body["next_cursor"].is_null());
    let b = app.messages_page(&v, &sid, "?before_seq=1").await;
    assert_eq!(seqs(&b.body), Vec::<i64>::new());
    let b = app.messages_page(&v, &sid, "?limit=200").await;
    assert_eq!(seqs(&b.body).len(), 6);
    let b = app.messages_page(&v, &sid, "?limit=1").await;
    assert_eq!(seqs(&b.body), vec![6]);

    for bad in
        ["?limit=0", "?limit=201", "?limit=-1", "?limit=abc", "?before_seq=abc", "?cursor=not-a-cursor"]
    {
        let r = app.messages_page(&v, &sid, bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        r.assert_error(400, "request.invalid");
    }

    // The session list and the token survive the restart too.
    let list = app.get("/v1/sessions", Some(&v)).await;
    assert_eq!(list.status.as_u16(), 200, "{}", list.text);
    assert_eq!(list.body["items"][0]["id"], sid.as_str());
    assert_eq!(list.body["items"][0]["message_count"], 6);
}

#[tokio::test]
async fn default_page_is_50_and_limit_at_most_200() {
    let fake = FakeOpenAi::start(Mode::Normal(pieces(1))).await;
    let app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;
    for i in 1..=26 {
        let r = app.chat_json(&v, &sid, &format!("m{i}")).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    }
    let page = app.messages_page(&v, &sid, "").await;
    let got = seqs(&page.body);
    assert_eq!(got, (3..=52).rev().collect::<Vec<i64>>(), "the default limit is 50");
    let cursor = page.body["next_cursor"].as_str().expect("more pages after 50");
    let rest = app.messages_page(&v, &sid, &format!("?cursor={cursor}")).await;
    assert_eq!(seqs(&rest.body), vec![2, 1]);
    assert!(rest.body["next_cursor"].is_null());
    let all = app.messages_page(&v, &sid, "?limit=200").await;
    assert_eq!(seqs(&all.body).len(), 52);
}
