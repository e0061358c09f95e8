//! Encryption at rest (SPEC §11.4): no file of the data directory, WAL
//! included, holds message content in clear, after a clean stop or a kill;
//! and the content still reads back after a restart.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{AppConfig, FakeOpenAi, Mode, TenantSpec, TestApp};
use std::time::Duration;

fn assert_no_plaintext(app: &TestApp, markers: &[&str]) {
    let files = app.data_files();
    assert!(!files.is_empty(), "the data directory is empty");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for marker in markers {
            let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            assert!(!found, "{} holds {marker:?} in clear", file.display());
        }
    }
}

#[tokio::test]
async fn no_data_file_holds_message_content_in_clear() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (q1, q2) = (format!("QMARK{id}one"), format!("QMARK{id}two"));
    let answer = format!("AMARK{id}");
    let fake = FakeOpenAi::start(Mode::Normal(vec![answer.clone(), " is the answer".into()])).await;
    let mut app = TestApp::start(AppConfig::new().tenant(TenantSpec::openai("acme", &fake))).await;
    let (sid, v) = app.create_session("acme").await;

    let streamed = app.chat_stream(&v, &sid, &format!("secret {q1} here")).await;
    assert_eq!(streamed.last().event, "stream_end", "{:?}", streamed.events);
    // Killed right after a turn: the WAL is left as it is.
    app.kill().await;
    assert_no_plaintext(&app, &[&q1, &answer]);

    app.restart().await;
    let r = app.chat_json(&v, &sid, &format!("secret {q2} here")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let msgs = app.messages(&v, &sid).await;
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[3]["content"], format!("secret {q1} here"), "content did not survive the restart");
    assert!(msgs[2]["content"].as_str().unwrap().starts_with(&answer));
    let (status, _) = app.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    assert_no_plaintext(&app, &[&q1, &q2, &answer]);
}
