//! `switchboard keys generate` and `switchboard keys rotate` (SPEC §17,
//! §11.4) as an operator runs them: a generated key is one valid
//! `kid:base64` line and nothing is written; a rotation run against the data
//! directory of a server that keeps writing re-encrypts everything under the
//! new key, a second run has nothing to do, and the server then starts and
//! reads every history with the new key alone — on SQLite and PostgreSQL.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::cli::{run_cli, CliOutput};
use common::postgres::TestDatabase;
use common::{AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp, Visitor};
use sqlx::Connection as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEYS: &str = "SWITCHBOARD_ENCRYPTION_KEYS";

/// `switchboard keys generate` in an empty working directory, with no
/// `SWITCHBOARD_*` variables; returns the key entry, stderr and the directory.
async fn generate() -> (String, String, tempfile::TempDir) {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["keys", "generate"]).current_dir(cwd.path()).stdin(Stdio::null()).kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "keys generate: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one key entry on stdout: {stdout:?}");
    (lines[0].to_owned(), String::from_utf8(out.stderr).unwrap(), cwd)
}

fn kid_of(entry: &str) -> &str {
    entry.split_once(':').unwrap().0
}

#[tokio::test]
async fn generate_prints_one_new_key_and_writes_nothing() {
    let (entry, stderr, cwd) = generate().await;
    let (kid, key) = entry.split_once(':').unwrap();
    // `k` + date + six hex digits.
    assert_eq!(kid.len(), 16, "{kid}");
    assert!(kid.starts_with('k') && kid.as_bytes()[9] == b'-', "{kid}");
    assert!(kid[1..9].bytes().all(|c| c.is_ascii_digit()), "{kid}");
    assert!(kid[10..].bytes().all(|c| c.is_ascii_hexdigit()), "{kid}");
    let bytes = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
    assert_eq!(bytes.len(), 32);
    // Guidance on stderr, without the key itself.
    assert!(stderr.contains(KEYS) && stderr.contains("switchboard keys rotate"), "{stderr}");
    assert!(stderr.contains(kid) && !stderr.contains(key), "{stderr}");
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "keys generate wrote a file");

    let (other, _, _) = generate().await;
    assert_ne!(other, entry);
    assert_ne!(kid_of(&other), kid);
}

/// A session and the questions asked in it.
struct Asked {
    id: String,
    visitor: Visitor,
    questions: Vec<String>,
}

async fn ask(app: &TestApp, asked: &mut Asked, question: String) {
    let reply = app.chat_json(&asked.visitor, &asked.id, &question).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    asked.questions.push(question);
}

async fn rotate(app: &TestApp, keys: &str) -> CliOutput {
    run_cli(&app.config_path(), &["keys", "rotate", "--batch", "2"], &[(KEYS, keys)]).await
}

/// The count in `re-encrypted N stored values`.
fn rewritten(out: &CliOutput) -> u64 {
    let rest = out.stdout.split("re-encrypted ").nth(1).unwrap_or_else(|| panic!("{out:?}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn rotate_while_the_server_writes_then_serve_with_the_new_key_alone() {
    rotation(None).await;
}

#[tokio::test]
async fn pg_rotate_while_the_server_writes_then_serve_with_the_new_key_alone() {
    let Some(db) = TestDatabase::create("pg_keys_rotate").await else { return };
    rotation(Some(&db)).await;
    db.drop_database().await;
}

/// The rotation on SQLite (`db` none: the data directory's file) or on the
/// PostgreSQL database `db`.
async fn rotation(db: Option<&TestDatabase>) {
    let marker = format!("KEYMARK{}", uuid::Uuid::new_v4().simple());
    let answer = format!("ANSMARK{}", uuid::Uuid::new_v4().simple());
    let fake = FakeOpenAi::start(Mode::Normal(vec![answer.clone(), " said".into()])).await;
    let (old, _, _) = generate().await;
    let (new, _, _) = generate().await;
    let mut config = AppConfig::new().tenant(TenantSpec::openai("acme", &fake)).env(KEYS, &old);
    if let Some(db) = db {
        config = config.database_url(&db.url);
    }
    let mut app = TestApp::start(config).await;
    let mut asked = Vec::new();
    for n in 0..4 {
        let (id, visitor) = app.create_session("acme").await;
        let mut session = Asked { id, visitor, questions: Vec::new() };
        for t in 0..2 {
            ask(&app, &mut session, format!("{marker} before {n}.{t}")).await;
        }
        asked.push(session);
    }

    // The new key first on the (only) node, which restarts and keeps writing.
    let both = format!("{new},{old}");
    app.config.env = vec![(KEYS.into(), both.clone())];
    app.restart().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let writer = {
        let (remote, stop, marker) =
            (TestApp::remote(&app.base_url, app.client.clone()), stop.clone(), marker.clone());
        tokio::spawn(async move {
            let mut made = Vec::new();
            let mut started_tx = Some(started_tx);
            while made.len() < 3 || !stop.load(Ordering::SeqCst) {
                let (id, visitor) = remote.create_session("acme").await;
                let mut session = Asked { id, visitor, questions: Vec::new() };
                ask(&remote, &mut session, format!("{marker} during {}", made.len())).await;
                made.push(session);
                if let Some(tx) = started_tx.take() {
                    let _ = tx.send(());
                }
            }
            made
        })
    };
    started.await.unwrap();

    // Without the old key the rotation cannot read the old content: it says
    // so, fails, and changes nothing it cannot read.
    let refused = rotate(&app, &new).await;
    refused.expect_err("rotate without the old key", "still not under key");
    assert!(refused.stderr.contains("unreadable"), "{refused:?}");

    let out = rotate(&app, &both).await;
    out.expect_ok("keys rotate");
    stop.store(true, Ordering::SeqCst);
    asked.extend(writer.await.unwrap());
    // 4 sessions × 2 turns × 2 messages, and the old key's canary.
    assert!(rewritten(&out) >= 17, "{out:?}");
    assert!(out.stdout.contains(&format!("under key {}", kid_of(&new))), "{out:?}");
    assert!(out.stdout.contains("none remain under other keys"), "{out:?}");
    assert!(out.stderr.contains("messages.content"), "progress on stderr: {out:?}");

    let again = rotate(&app, &both).await;
    again.expect_ok("second keys rotate");
    assert_eq!(rewritten(&again), 0, "{again:?}");

    // The old key removed: the server starts and reads every history.
    app.config.env = vec![(KEYS.into(), new.clone())];
    app.restart().await;
    for session in &asked {
        let messages = app.messages(&session.visitor, &session.id).await;
        let mut questions: Vec<String> = messages
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect();
        questions.reverse();
        assert_eq!(questions, session.questions, "session {}", session.id);
        for reply in messages.iter().filter(|m| m["role"] == "assistant") {
            assert_eq!(reply["content"], format!("{answer} said"), "session {}", session.id);
        }
    }
    let (status, _) = app.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    if let Some(db) = db {
        return assert_no_plaintext_rows(db, &[&marker, &answer]).await;
    }
    for file in app.data_files() {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [&marker, &answer] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds {needle}",
                file.display()
            );
        }
    }
}

/// No row of `messages` (every column, as JSON text) holds any of `needles`.
async fn assert_no_plaintext_rows(db: &TestDatabase, needles: &[&str]) {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&mut conn).await.unwrap();
    assert!(rows >= 17, "only {rows} messages: the server did not write to PostgreSQL");
    let holding = "SELECT count(*) FROM messages m WHERE row_to_json(m)::text LIKE '%' || $1 || '%'";
    // The search finds what is kept in clear (the tenant id), so it can find a leak.
    let tenant: i64 = sqlx::query_scalar(holding).bind("acme").fetch_one(&mut conn).await.unwrap();
    assert_eq!(tenant, rows);
    for needle in needles {
        let found: i64 = sqlx::query_scalar(holding).bind(needle).fetch_one(&mut conn).await.unwrap();
        assert_eq!(found, 0, "{found} rows hold {needle} in clear");
    }
    let _ = conn.close().await;
}
