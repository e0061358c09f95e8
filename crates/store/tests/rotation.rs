//! `rotate_keys` (`switchboard keys rotate`) on SQLite and PostgreSQL while
//! another store keeps writing: content and users' memories written under
//! key k1 end under k2 without losing a concurrent update, the old key can
//! then be removed, a second run rewrites nothing, and no stored byte holds
//! plaintext.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests (rust-clippy#11119).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod cases;
mod common;

use cases::*;
use common::Harness;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::model::{Message, Session};
use switchboard_core::store::memory::{PutMemory, PutOutcome};
use switchboard_core::store::{Checkpoint, NewSession, Store};
use switchboard_store::{connect, rotate_keys, Keyring, StoreOptions};
use uuid::Uuid;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut harness = crate::common::Harness::sqlite().await;
                    crate::$case(&mut harness).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(mut harness) = crate::common::Harness::postgres().await else { return };
                    crate::$case(&mut harness).await;
                }
            )*
        }
    };
}

on_both_backends!(rotation_under_concurrent_writes);

/// How long the writer may take to do its part after the first page.
const WRITER_TIMEOUT: Duration = Duration::from_secs(30);

async fn session_with_metadata(store: &Arc<dyn Store>, note: &str) -> Session {
    let new = NewSession {
        event: None,
        id: Uuid::new_v4(),
        tenant_id: TENANT.into(),
        owner: OWNER.into(),
        metadata: Some(serde_json::json!({ "note": note })),
        now: at(0),
    };
    store.create_session(&new).await.unwrap()
}

/// What a node with the new key first writes while the rotation runs:
/// finishes the answers left streaming under the old key (the swap must not
/// undo them), then keeps starting and finishing turns until told to stop.
/// Returns every text it wrote.
async fn keep_writing(
    store: Arc<dyn Store>,
    streaming: Vec<Message>,
    marker: String,
    first_page: tokio::sync::oneshot::Receiver<()>,
    wrote_some: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut texts = Vec::new();
    tokio::time::timeout(WRITER_TIMEOUT, first_page).await.unwrap().unwrap();
    for (n, assistant) in streaming.iter().enumerate() {
        let text = format!("final {marker} {n}");
        assert!(store.finish_message(&finish_of(assistant, TENANT, &text, at(2_000))).await.unwrap());
        texts.push(text);
    }
    let mut turns = 0;
    while turns < 4 || !stop.load(Ordering::SeqCst) {
        let session = session_with_metadata(&store, &format!("{marker} new {turns}")).await;
        let question = format!("{marker} during {turns}");
        complete_turn(&store, &session, &question, at(3_000 + turns)).await;
        texts.push(format!("answer to {question}"));
        texts.push(question);
        turns += 1;
        if turns == 2 {
            let _ = wrote_some.send(());
        }
    }
    texts
}

async fn rotation_under_concurrent_writes(h: &mut Harness) {
    let marker = format!("PLAINMARK{}", Uuid::new_v4().simple());
    // Under k1: finished turns, and answers still streaming (checkpointed).
    let mut expected = Vec::new();
    let mut sessions = Vec::new();
    for n in 0..8 {
        let session = session_with_metadata(&h.store, &format!("{marker} old {n}")).await;
        let question = format!("{marker} old {n}");
        complete_turn(&h.store, &session, &question, at(n)).await;
        expected.extend([format!("answer to {question}"), question]);
        sessions.push(session);
    }
    let mut streaming = Vec::new();
    for (n, session) in sessions.iter().take(3).enumerate() {
        let question = format!("{marker} pending {n}");
        let (_, assistant, _) = start(&h.store, &turn(session, &question, at(100))).await;
        let checkpoint = Checkpoint {
            tools: Vec::new(),
            tenant_id: TENANT.into(),
            session_id: session.id,
            seq: assistant.seq,
            content: format!("partial {marker}"),
            node_id: NODE.into(),
            lease_until: at(60_000),
        };
        assert!(h.store.checkpoint(&checkpoint).await.unwrap());
        expected.push(question);
        streaming.push(assistant);
    }

    // Users' memories, under k1 too.
    let remembered: Vec<(String, String)> =
        (0..3).map(|n| (format!("user:u{n}"), format!("{marker} likes {n}"))).collect();
    for (user, value) in &remembered {
        let put = PutMemory {
            tenant_id: TENANT.into(),
            owner: user.clone(),
            key: "likes".into(),
            value: value.clone(),
            max_keys: 50,
            now: at(0),
        };
        assert!(matches!(h.store.put_memory(&put).await.unwrap(), PutOutcome::Written(_)));
    }

    // The operator put k2 first and restarted the nodes: they write under
    // k2 while the rotation runs.
    let rotated = h.options.keyring.rotated("k2").unwrap();
    let new_first = StoreOptions { keyring: rotated.clone(), ..h.options.clone() };
    let node = connect(&h.url, new_first.clone()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (first_page_tx, first_page) = tokio::sync::oneshot::channel();
    let (wrote_some_tx, wrote_some) = std::sync::mpsc::channel();
    let writer = tokio::spawn(keep_writing(
        node.clone(),
        streaming,
        marker.clone(),
        first_page,
        wrote_some_tx,
        stop.clone(),
    ));

    // After the first page the rotation waits until the writer has finished
    // the streaming answers and written turns, then goes on while it writes.
    let mut first_page_tx = Some(first_page_tx);
    let report = rotate_keys(&h.url, &new_first, 3, move |_| {
        if let Some(tx) = first_page_tx.take() {
            let _ = tx.send(());
            tokio::task::block_in_place(|| wrote_some.recv_timeout(WRITER_TIMEOUT).unwrap());
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    expected.extend(writer.await.unwrap());
    drop(node);

    assert_eq!(report.active_kid, "k2");
    assert_eq!((report.remaining, report.unreadable), (0, 0), "{report:?}");
    // At least the 16 messages of finished turns, the 3 questions of the
    // unfinished ones, 8 metadata values, 3 memory values and the k1
    // canary; the 3 answers streaming under k1 count only if the rotation
    // reached them before the writer finished them under k2.
    let at_least: u64 = 16 + 3 + 8 + 3 + 1;
    assert!(report.rewritten() >= at_least, "{report:?}");

    // No stored value is under k1 any more.
    for (column, kid) in stored_kids(h).await {
        assert_eq!(kid, "k2", "{column} still holds a value under {kid}");
    }

    // The old key removed: the database opens and every message reads.
    let only_new = Keyring::parse(rotated.to_spec().split(',').next().unwrap()).unwrap();
    let new_only = StoreOptions { keyring: only_new, ..h.options.clone() };
    let reader = connect(&h.url, new_only.clone()).await.unwrap();
    let mut read = Vec::new();
    for session in all_sessions(h).await {
        for message in reader.list_messages(TENANT, session, 1000, None).await.unwrap() {
            read.push(message.content);
        }
    }
    read.sort();
    expected.sort();
    assert_eq!(read, expected, "history after the rotation, read with the new key alone");
    for (user, value) in &remembered {
        let item = reader.get_memory(TENANT, user, "likes").await.unwrap().unwrap();
        assert_eq!(&item.value, value, "{user}'s memory after the rotation");
    }

    // A second run has nothing to do, with or without the old key.
    let again = rotate_keys(&h.url, &new_first, 500, |_| {}).await.unwrap();
    assert_eq!((again.rewritten(), again.remaining), (0, 0), "{again:?}");
    let alone = rotate_keys(&h.url, &new_only, 500, |_| {}).await.unwrap();
    assert_eq!((alone.rewritten(), alone.remaining), (0, 0), "{alone:?}");

    // Read while `reader` is open, so SQLite's WAL is still there.
    for bytes in h.stored_bytes().await {
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "plaintext at rest");
        assert!(!bytes.windows(9).any(|w| w == b"PLAINMARK"), "plaintext prefix at rest");
    }
    drop(reader);
}

/// The key id of every stored encrypted value, read from the raw columns.
async fn stored_kids(h: &Harness) -> Vec<(&'static str, String)> {
    let queries = [
        ("messages.content", "SELECT content FROM messages"),
        ("messages.tools", "SELECT tools FROM messages WHERE tools IS NOT NULL"),
        ("sessions.metadata", "SELECT metadata FROM sessions WHERE metadata IS NOT NULL"),
        ("memory.value", "SELECT value FROM memory"),
        ("keycheck.canary", "SELECT canary FROM keycheck"),
    ];
    let mut out = Vec::new();
    for (column, sql) in queries {
        let values: Vec<Vec<u8>> = if h.is_sqlite() {
            let pool = sqlx::SqlitePool::connect(&h.url).await.unwrap();
            let values = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            values
        } else {
            let pool = sqlx::PgPool::connect(&h.url).await.unwrap();
            let values = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            values
        };
        if column != "messages.tools" {
            assert!(!values.is_empty(), "{column} holds no values to check");
        }
        out.extend(values.iter().map(|v| (column, kid_of(v))));
    }
    out
}

/// `version 1 ‖ kid length ‖ kid ‖ …`, as the store lays values out.
fn kid_of(value: &[u8]) -> String {
    assert_eq!(value.first(), Some(&1), "not a sealed value");
    let len = usize::from(value[1]);
    String::from_utf8(value[2..2 + len].to_vec()).unwrap()
}

async fn all_sessions(h: &Harness) -> Vec<Uuid> {
    let sql = "SELECT id FROM sessions";
    let ids: Vec<String> = if h.is_sqlite() {
        let pool = sqlx::SqlitePool::connect(&h.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&h.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    };
    ids.iter().map(|id| Uuid::parse_str(id).unwrap()).collect()
}
