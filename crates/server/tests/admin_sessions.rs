//! The admin session list, detail and close (SPEC §12), through the binary.
//! The list is checked against a brute-force reference over a few thousand
//! random sessions (written straight into the database, so their status,
//! counts and times can be anything): every filter set, sort and order, with
//! page sizes cycling through small, default, odd and the largest. Paging by
//! `created_at` neither skips nor repeats while sessions are inserted.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/admin.rs"]
mod admin;
mod common;

use admin::{all_pages, call, get, get_ok, operator_config, user_token, with_jwt, As};
use common::postgres::TestDatabase;
use common::{chat_body, pieces, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashSet;
use std::time::Duration;

const T0: i64 = 1_700_000_000_000;
const STATUSES: [&str; 3] = ["active", "human", "closed"];

/// A tiny deterministic generator (the data is the same on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
struct Row {
    id: String,
    tenant: &'static str,
    owner: String,
    status: &'static str,
    created: i64,
    activity: i64,
    count: i64,
    assisted: bool,
}

impl Row {
    fn key(&self, sort: &str) -> i64 {
        match sort {
            "created_at" => self.created,
            "last_activity_at" => self.activity,
            _ => self.count,
        }
    }
}

/// `n` sessions of `tenant` with many ties in every sort key.
fn random_rows(rng: &mut Rng, tenant: &'static str, n: usize) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let owner = if rng.below(10) < 7 {
                format!("user:u{}", rng.below(12))
            } else {
                format!("visitor:{}", uuid::Uuid::new_v4())
            };
            let status = STATUSES[rng.below(3) as usize];
            let created = T0 + rng.below(300) as i64 * 333;
            Row {
                id: uuid::Uuid::new_v4().to_string(),
                tenant,
                owner,
                status,
                created,
                activity: created + rng.below(150) as i64 * 1000,
                count: rng.below(20) as i64,
                assisted: status == "human" || rng.below(4) == 0,
            }
        })
        .collect()
}

/// Writes rows straight into the server's database (SQLite file or PostgreSQL).
async fn insert(database_url: &str, rows: &[Row]) {
    for chunk in rows.chunks(400) {
        let values: Vec<String> = chunk
            .iter()
            .map(|r| {
                format!(
                    "('{}', '{}', '{}', '{}', {}, {}, {}, {}, {}, NULL, NULL)",
                    r.id,
                    r.tenant,
                    r.owner,
                    r.status,
                    r.created,
                    r.activity,
                    r.count,
                    r.count,
                    if r.assisted { "TRUE" } else { "FALSE" }
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO sessions (id, tenant_id, owner, status, created_at, last_activity_at, message_count, \
             latest_seq, admin_assisted, takeover, metadata) VALUES {}",
            values.join(", ")
        );
        if database_url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(database_url).await.expect("open the SQLite file");
            sqlx::raw_sql(&sql).execute(&mut conn).await.expect("insert sessions");
            conn.close().await.ok();
        } else {
            let mut conn = sqlx::PgConnection::connect(database_url).await.expect("connect to PostgreSQL");
            sqlx::raw_sql(&sql).execute(&mut conn).await.expect("insert sessions");
            conn.close().await.ok();
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One filter set: the query string and the predicate it stands for.
struct Filter {
    query: Vec<String>,
    keep: Box<dyn Fn(&Row) -> bool + Send + Sync>,
}

fn filters() -> Vec<Filter> {
    let users = [None, Some("u3"), Some("nobody")];
    let statuses = [None, Some("active"), Some("human"), Some("closed")];
    let assisted = [None, Some(true), Some(false)];
    // Bounds on the grid of creation times, so rows sit exactly on them.
    let (lo, hi) = (T0 + 100 * 333, T0 + 200 * 333);
    let ranges = [(None, None), (Some(lo), None), (None, Some(hi)), (Some(lo), Some(hi))];
    let mut out = Vec::new();
    for user in users {
        for status in statuses {
            for a in assisted {
                for (from, to) in ranges {
                    let mut query = Vec::new();
                    if let Some(u) = user {
                        query.push(format!("user_id={u}"));
                    }
                    if let Some(s) = status {
                        query.push(format!("status={s}"));
                    }
                    if let Some(a) = a {
                        query.push(format!("admin_assisted={a}"));
                    }
                    if let Some(f) = from {
                        query.push(format!("created_from={}", rfc3339(f)));
                    }
                    if let Some(t) = to {
                        query.push(format!("created_to={}", rfc3339(t)));
                    }
                    let keep = move |r: &Row| {
                        user.is_none_or(|u| r.owner == format!("user:{u}"))
                            && status.is_none_or(|s| r.status == s)
                            && a.is_none_or(|a| r.assisted == a)
                            && from.is_none_or(|f| r.created >= f)
                            && to.is_none_or(|t| r.created <= t)
                    };
                    out.push(Filter { query, keep: Box::new(keep) });
                }
            }
        }
    }
    out
}

/// The reference: filter, then order by (key, id).
fn expected(rows: &[Row], f: &Filter, sort: &str, desc: bool) -> Vec<String> {
    let mut kept: Vec<&Row> = rows.iter().filter(|r| r.tenant == "acme" && (f.keep)(r)).collect();
    kept.sort_by(|a, b| (a.key(sort), &a.id).cmp(&(b.key(sort), &b.id)));
    if desc {
        kept.reverse();
    }
    kept.into_iter().map(|r| r.id.clone()).collect()
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

async fn list_matches_the_reference(database_url: Option<&str>) {
    let mut config = with_jwt(operator_config(), TenantSpec::demo("acme")).tenant(TenantSpec::demo("beta"));
    if let Some(url) = database_url {
        config = config.database_url(url);
    }
    let app = TestApp::start(config).await;
    let db_url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", app.data_dir().join("switchboard.db").display()));
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut rows = random_rows(&mut rng, "acme", 2000);
    rows.extend(random_rows(&mut rng, "beta", 150));
    insert(&db_url, &rows).await;

    // Spot-check the objects themselves once.
    let agent = As::agent("acme");
    let first =
        &get_ok(&app, &agent, "/v1/admin/sessions?sort=message_count&order=desc&limit=1").await["items"][0];
    let row = rows.iter().find(|r| r.id == first["id"].as_str().unwrap()).unwrap();
    assert_eq!(first["owner"], row.owner.as_str());
    assert_eq!(first["user_id"], row.owner.strip_prefix("user:").map_or(Value::Null, |u| json!(u)));
    assert_eq!(first["created_at"], rfc3339(row.created).as_str());
    assert_eq!(first["last_activity_at"], rfc3339(row.activity).as_str());
    assert_eq!(
        (first["status"].as_str(), first["admin_assisted"].as_bool()),
        (Some(row.status), Some(row.assisted))
    );
    assert_eq!(first["message_count"], row.count);

    let limits = [Some(7), None, Some(200), Some(23)];
    let all_filters = filters();
    let mut cases = Vec::new();
    for i in 0..all_filters.len() {
        for sort in ["created_at", "last_activity_at", "message_count"] {
            for desc in [false, true] {
                cases.push((i, sort, desc, limits[(i + cases.len()) % limits.len()]));
            }
        }
    }
    let checked = futures_util::stream::iter(cases.into_iter().map(|(i, sort, desc, limit)| {
        let (app, rows, agent, f) = (&app, &rows, &agent, &all_filters[i]);
        async move {
            let mut query = f.query.clone();
            query.push(format!("sort={sort}"));
            query.push(format!("order={}", if desc { "desc" } else { "asc" }));
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            let query = query.join("&");
            let (items, pages) = all_pages(app, agent, &query).await;
            let want = expected(rows, f, sort, desc);
            assert_eq!(ids(&items), want, "{query}");
            let per_page = limit.unwrap_or(50);
            assert_eq!(pages, want.len().div_ceil(per_page).max(1), "pages of {query}");
        }
    }))
    .buffer_unordered(4)
    .count()
    .await;
    assert_eq!(checked, all_filters.len() * 6);
}

#[tokio::test]
async fn every_filter_sort_and_order_matches_a_brute_force_reference() {
    list_matches_the_reference(None).await;
}

#[tokio::test]
async fn pg_every_filter_sort_and_order_matches_a_brute_force_reference() {
    let Some(db) = TestDatabase::create("pg_admin_list_reference").await else { return };
    list_matches_the_reference(Some(&db.url)).await;
    db.drop_database().await;
}

/// Pages through `created_at` (both orders) while sessions are created over
/// the API and old-dated ones written into the middle of the range: every
/// session that existed before is seen exactly once, in order.
async fn created_at_paging_under_inserts(database_url: Option<&str>) {
    let mut config = operator_config().tenant(TenantSpec::demo("acme"));
    if let Some(url) = database_url {
        config = config.database_url(url);
    }
    let app = TestApp::start(config).await;
    let db_url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", app.data_dir().join("switchboard.db").display()));
    let mut rng = Rng(0x5eed_0000_0000_0002);
    let before = random_rows(&mut rng, "acme", 400);
    insert(&db_url, &before).await;
    let op = As::operator(Some("acme"));

    for order in ["desc", "asc"] {
        let stop = std::sync::atomic::AtomicBool::new(false);
        // Writer and reader share one task (sqlx's connections do not move
        // into spawned tasks easily); each yields at every request.
        let writer = async {
            let mut rng = Rng(0x5eed_0000_0000_0003);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let created =
                    app.send(app.client.post(app.url("/v1/sessions")).header("x-tenant-id", "acme")).await;
                assert_eq!(created.status.as_u16(), 201, "{}", created.text);
                insert(&db_url, &random_rows(&mut rng, "acme", 3)).await;
            }
        };
        let reader = async {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/admin/sessions?sort=created_at&order={order}&limit=9&cursor={c}"),
                    None => format!("/v1/admin/sessions?sort=created_at&order={order}&limit=9"),
                };
                let body = get_ok(&app, &op, &path).await;
                seen.extend(body["items"].as_array().unwrap().iter().map(|s| {
                    (s["created_at"].as_str().unwrap().to_owned(), s["id"].as_str().unwrap().to_owned())
                }));
                let Some(c) = body["next_cursor"].as_str() else { break };
                cursor = Some(c.to_owned());
                // Let the writer land rows between pages.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            seen
        };
        let (seen, ()) = tokio::join!(reader, writer);
        let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(unique.len(), seen.len(), "{order}: a session was listed twice");
        for r in &before {
            assert!(unique.contains(&r.id), "{order}: {} was skipped", r.id);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order}: out of order");
    }
}

#[tokio::test]
async fn paging_by_created_at_neither_skips_nor_repeats_under_inserts() {
    created_at_paging_under_inserts(None).await;
}

#[tokio::test]
async fn pg_paging_by_created_at_neither_skips_nor_repeats_under_inserts() {
    let Some(db) = TestDatabase::create("pg_admin_paging_under_inserts").await else { return };
    created_at_paging_under_inserts(Some(&db.url)).await;
    db.drop_database().await;
}

#[tokio::test]
async fn detail_and_close_stop_a_running_turn_and_refuse_later_messages() {
    let fake = FakeOpenAi::start(Mode::Gated { before: pieces(2), after: pieces(2) }).await;
    let config = with_jwt(operator_config(), TenantSpec::openai("acme", &fake));
    let app = TestApp::start(with_jwt(config, TenantSpec::demo("beta"))).await;
    let alice = Visitor {
        tenant: "acme".into(),
        token: user_token("acme", "alice", json!({})),
        visitor_id: String::new(),
    };
    let created = app.create_session_for(&alice).await;
    let session = created.body["session"]["id"].as_str().expect("a session").to_owned();
    let mut live = app.chat_live(&alice, &chat_body(&session, "tell me")).await;
    let start = live.until("stream_start", Duration::from_secs(10)).await.json();
    while live.text_so_far() != "w0 w1" {
        live.next(Duration::from_secs(10)).await.expect("the stream ended early");
    }

    let agent = As::agent("acme");
    let path = format!("/v1/admin/sessions/{session}");
    let detail = get_ok(&app, &agent, &path).await;
    assert_eq!(detail["session"]["owner"], "user:alice");
    assert_eq!(detail["session"]["user_id"], "alice");
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        (messages[0]["role"].as_str(), messages[0]["content"].as_str()),
        (Some("user"), Some("tell me"))
    );
    assert_eq!(messages[1]["status"], "streaming");
    // Another tenant's agent does not see it; a bad id is refused.
    get(&app, &As::agent("beta"), &path).await.assert_error(404, "session.not_found");
    get(&app, &agent, "/v1/admin/sessions/not-a-uuid").await.assert_error(400, "request.invalid");
    let by_user = get_ok(&app, &agent, "/v1/admin/sessions?user_id=alice").await;
    assert_eq!(ids(by_user["items"].as_array().unwrap()), std::slice::from_ref(&session));

    let closed = call(&app, &agent, Method::POST, &format!("{path}/close"), None).await;
    assert_eq!(closed.status.as_u16(), 200, "{}", closed.text);
    assert_eq!(closed.body["status"], "closed");
    let end = live.until("stream_end", Duration::from_secs(5)).await.json();
    assert_eq!(end["finish_reason"], "aborted", "{end}");
    fake.release();
    let answer = app.message(&alice, &session, start["seq"].as_i64().unwrap()).await.unwrap();
    assert_eq!((answer["status"].as_str(), answer["content"].as_str()), (Some("aborted"), Some("w0 w1")));
    app.chat_raw(&alice, &chat_body(&session, "hello again")).await.assert_error(409, "session.closed");
    assert_eq!(fake.calls(), 1, "a closed session reached the provider");

    // Closing again answers the same; unknown sessions and bodies with fields are refused.
    let again = call(&app, &As::operator(Some("acme")), Method::POST, &format!("{path}/close"), None).await;
    assert_eq!(again.body["status"], "closed", "{}", again.text);
    let unknown = format!("/v1/admin/sessions/{}/close", uuid::Uuid::new_v4());
    call(&app, &agent, Method::POST, &unknown, None).await.assert_error(404, "session.not_found");
    let with_body = call(&app, &agent, Method::POST, &format!("{path}/close"), Some(json!({"why": 1}))).await;
    with_body.assert_error(400, "request.invalid");
    let listed = get_ok(&app, &agent, "/v1/admin/sessions?status=closed").await;
    assert_eq!(ids(listed["items"].as_array().unwrap()), [session]);
}
