//! Rotation on a SQLite file, with rows written directly (every encrypted
//! column, tool payloads included, which no `Store` call writes yet), so the
//! stored bytes can be checked column by column; memory entries are read
//! back through the store afterwards, as their reader derives their place. Rotation under concurrent
//! writers, on both backends, is in `tests/rotation.rs`.

use super::*;
use crate::crypto::{stored_kid, Aad, Cipher};
use crate::memory;
use crate::outbox;
use crate::rows::{CONTENT, CONTEXT, METADATA, TOOLS};
use crate::schema::canary_place;
use crate::{Durability, Keyring};
use sqlx::SqlitePool;
use uuid::Uuid;

const TENANT: &str = "acme";

fn options(keyring: &Keyring) -> StoreOptions {
    StoreOptions { keyring: keyring.clone(), durability: Durability::Normal }
}

/// The first key of `keyring` alone (what is left once the old key is removed).
fn only_first(keyring: &Keyring) -> Keyring {
    Keyring::parse(keyring.to_spec().split(',').next().unwrap()).unwrap()
}

struct Db {
    _dir: tempfile::TempDir,
    url: String,
    pool: SqlitePool,
}

async fn database(keyring: &Keyring) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotate.db").display());
    crate::migrate(&url, &options(keyring)).await.unwrap();
    let pool = SqlitePool::connect(&url).await.unwrap();
    Db { _dir: dir, url, pool }
}

/// What was written in clear, to compare after the rotation.
#[derive(Default)]
struct Written {
    /// (table.column, id, seq, plaintext)
    values: Vec<(&'static str, String, i64, String)>,
}

impl Db {
    /// A session with its metadata and page context, each if given.
    async fn session(
        &self,
        cipher: &Cipher,
        written: &mut Written,
        metadata: Option<&str>,
        context: Option<&str>,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let mut seal = |name, column, value: Option<&str>| {
            value.map(|v| {
                written.values.push((name, id.to_string(), 0, v.to_owned()));
                cipher.encrypt_str(&Aad { tenant_id: TENANT, session_id: id, seq: 0, column }, v).unwrap()
            })
        };
        let metadata = seal("sessions.metadata", METADATA, metadata);
        let context = seal("sessions.context", CONTEXT, context);
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, owner, status, created_at, last_activity_at, metadata, \
             context) VALUES ($1, $2, 'visitor:1', 'active', 0, 0, $3, $4)",
        )
        .bind(id.to_string())
        .bind(TENANT)
        .bind(metadata)
        .bind(context)
        .execute(&self.pool)
        .await
        .unwrap();
        id
    }

    /// A memory entry of `subject`, sealed where its reader looks for it.
    async fn memory(&self, cipher: &Cipher, written: &mut Written, subject: &str, key: &str, value: &str) {
        let id = memory::row_id(TENANT, subject, key);
        written.values.push(("memory.value", id.to_string(), 0, value.to_owned()));
        let sealed = cipher.encrypt_str(&memory::place(TENANT, id), value).unwrap();
        sqlx::query(
            "INSERT INTO memory (tenant_id, subject, key, id, value, updated_at) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(TENANT)
        .bind(subject)
        .bind(key)
        .bind(id.to_string())
        .bind(sealed)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// An outbound event's body, sealed at the event's id.
    async fn outbox(&self, cipher: &Cipher, written: &mut Written, body: &str) {
        let id = Uuid::now_v7();
        written.values.push(("outbox.body", id.to_string(), 0, body.to_owned()));
        let sealed = cipher.encrypt_str(&outbox::place(TENANT, id), body).unwrap();
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, session_id, type, body, status, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, 'session.created', $4, 'pending', 0, 0)",
        )
        .bind(id.to_string())
        .bind(TENANT)
        .bind(Uuid::new_v4().to_string())
        .bind(sealed)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    async fn message(
        &self,
        cipher: &Cipher,
        written: &mut Written,
        (session_id, seq): (Uuid, i64),
        content: &str,
        tools: Option<&str>,
    ) {
        let at = |column| Aad { tenant_id: TENANT, session_id, seq, column };
        written.values.push(("messages.content", session_id.to_string(), seq, content.to_owned()));
        let tools = tools.map(|t| {
            written.values.push(("messages.tools", session_id.to_string(), seq, t.to_owned()));
            cipher.encrypt_str(&at(TOOLS), t).unwrap()
        });
        self.raw_message(session_id, seq, cipher.encrypt_str(&at(CONTENT), content).unwrap(), tools).await;
    }

    async fn raw_message(&self, session_id: Uuid, seq: i64, content: Vec<u8>, tools: Option<Vec<u8>>) {
        sqlx::query(
            "INSERT INTO messages (session_id, seq, tenant_id, role, content, status, created_at, tools) \
             VALUES ($1, $2, $3, 'user', $4, 'complete', 0, $5)",
        )
        .bind(session_id.to_string())
        .bind(seq)
        .bind(TENANT)
        .bind(content)
        .bind(tools)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Every stored encrypted value: (table.column, id, seq, tenant, bytes).
    async fn stored(&self) -> Vec<(&'static str, String, i64, String, Vec<u8>)> {
        let mut out = Vec::new();
        for column in ENCRYPTED {
            let mut select = sqlx::query_as(column.select).bind(i64::MAX).bind("");
            if column.identity == columns::Identity::Message {
                select = select.bind(i64::MIN);
            }
            let rows: Vec<columns::StoredValue> = select.fetch_all(&self.pool).await.unwrap();
            for row in rows {
                if let Some(value) = row.value {
                    out.push((column.name, row.id, row.seq, row.tenant_id, value));
                }
            }
        }
        out
    }
}

/// Opens a stored value the way its reader would.
fn open(cipher: &Cipher, column: &str, id: &str, seq: i64, tenant: &str, value: &[u8]) -> String {
    let place = |sealed_as| Aad {
        tenant_id: tenant,
        session_id: Uuid::parse_str(id).unwrap(),
        seq,
        column: sealed_as,
    };
    let at = match column {
        "messages.content" => place(CONTENT),
        "messages.tools" => place(TOOLS),
        "sessions.metadata" => place(METADATA),
        "sessions.context" => place(CONTEXT),
        "memory.value" => memory::place(tenant, Uuid::parse_str(id).unwrap()),
        "outbox.body" => outbox::place(tenant, Uuid::parse_str(id).unwrap()),
        "keycheck.canary" => canary_place(),
        other => panic!("unknown column {other}"),
    };
    String::from_utf8(cipher.decrypt(&at, value).unwrap()).unwrap()
}

#[tokio::test]
async fn rotates_every_column_once_and_old_key_can_go() {
    let old = Keyring::generate("k1");
    let db = database(&old).await;
    let cipher = Cipher::new(old.clone());
    let mut written = Written::default();
    for n in 0..3 {
        let metadata = (n != 1).then(|| format!("{{\"page\":\"MARK-meta-{n}\"}}"));
        let context = (n != 0).then(|| format!("{{\"page\":\"MARK-context-{n}\"}}"));
        let sid = db.session(&cipher, &mut written, metadata.as_deref(), context.as_deref()).await;
        for seq in 1..=3 {
            let tools = (seq == 2).then(|| format!("[{{\"card\":\"MARK-tool-{n}\"}}]"));
            db.message(&cipher, &mut written, (sid, seq), &format!("MARK-{n}-{seq}"), tools.as_deref()).await;
        }
    }
    db.memory(&cipher, &mut written, "user:alice", "size", "MARK-memory-M").await;
    db.memory(&cipher, &mut written, "user:alice", "likes", "MARK-memory-denim").await;
    db.memory(&cipher, &mut written, "user:bob", "size", "MARK-memory-L").await;
    db.outbox(&cipher, &mut written, r#"{"type":"session.created","data":"MARK-event-1"}"#).await;
    db.outbox(&cipher, &mut written, r#"{"type":"session.created","data":"MARK-event-2"}"#).await;

    let rotated = old.rotated("k2").unwrap();
    let mut pages = 0;
    let report = rotate_keys(&db.url, &options(&rotated), 2, |_| pages += 1).await.unwrap();
    // 9 contents, 3 tool payloads, 2 metadata, 2 page contexts, 2 event
    // bodies, 3 memory values, and the k1 canary (the k2 canary was written
    // under k2 when the rotation opened the database).
    assert_eq!(report.rewritten(), 22, "{report:?}");
    assert_eq!((report.remaining, report.unreadable, report.passes), (0, 0, 1), "{report:?}");
    assert_eq!(report.active_kid, "k2");
    let by_column: Vec<(&str, u64)> =
        report.columns.iter().map(|c| (c.column.as_str(), c.rewritten)).collect();
    assert_eq!(
        by_column,
        [
            ("messages.content", 9),
            ("messages.tools", 3),
            ("sessions.metadata", 2),
            ("sessions.context", 2),
            ("outbox.body", 2),
            ("memory.value", 3),
            ("keycheck.canary", 1)
        ]
    );
    assert!(pages >= 9, "pages of two rows each: {pages}");

    // Every stored value is under k2 and opens with k2 alone, where it is.
    let new_only = Cipher::new(only_first(&rotated));
    let stored = db.stored().await;
    assert_eq!(stored.len(), 9 + 3 + 2 + 2 + 2 + 3 + 2);
    for (column, id, seq, tenant, value) in &stored {
        assert_eq!(stored_kid(value), Some("k2"), "{column} {id} {seq}");
        let plain = open(&new_only, column, id, *seq, tenant, value);
        if *column == "keycheck.canary" {
            continue;
        }
        let expected = written.values.iter().find(|(c, i, s, _)| c == column && i == id && s == seq).unwrap();
        assert_eq!(plain, expected.3);
    }

    // The old key can go: the database opens with the new key alone.
    let store = crate::connect(&db.url, options(&only_first(&rotated))).await.unwrap();
    store.ping().await.unwrap();
    // Memory reads back where its reader derives the place from.
    let values = |items: Vec<switchboard_core::memory::MemoryItem>| {
        items.into_iter().map(|i| (i.key, i.value)).collect::<Vec<_>>()
    };
    assert_eq!(
        values(store.list_memory(TENANT, "user:alice").await.unwrap()),
        [
            ("likes".to_owned(), "MARK-memory-denim".to_owned()),
            ("size".to_owned(), "MARK-memory-M".to_owned())
        ]
    );
    assert_eq!(store.get_memory(TENANT, "user:bob", "size").await.unwrap().unwrap().value, "MARK-memory-L");
    // Event bodies read back where the delivery worker opens them.
    let now = switchboard_core::time::from_millis(1).unwrap();
    let leased = store.lease_deliveries("node", now, now, 10).await.unwrap();
    let mut bodies: Vec<&str> = leased.iter().map(|d| d.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].contains("MARK-event-1") && bodies[1].contains("MARK-event-2"));
    drop(store);

    // A second run finds nothing to do.
    let again = rotate_keys(&db.url, &options(&rotated), 500, |_| {}).await.unwrap();
    assert_eq!((again.rewritten(), again.remaining, again.examined()), (0, 0, 23), "{again:?}");
    // So does a run with the new key alone.
    let alone = rotate_keys(&db.url, &options(&only_first(&rotated)), 500, |_| {}).await.unwrap();
    assert_eq!((alone.rewritten(), alone.remaining), (0, 0));
}

#[tokio::test]
async fn values_no_key_opens_are_reported_and_left_as_they_are() {
    let old = Keyring::generate("k1");
    let db = database(&old).await;
    let cipher = Cipher::new(old.clone());
    let mut written = Written::default();
    let sid = db.session(&cipher, &mut written, None, None).await;
    db.message(&cipher, &mut written, (sid, 1), "fine", None).await;
    let stranger = Cipher::new(Keyring::generate("k9"));
    let foreign = stranger
        .encrypt_str(&Aad { tenant_id: TENANT, session_id: sid, seq: 2, column: CONTENT }, "x")
        .unwrap();
    db.raw_message(sid, 2, foreign.clone(), None).await;
    db.raw_message(sid, 3, b"not a sealed value".to_vec(), None).await;

    let rotated = old.rotated("k2").unwrap();
    let report = rotate_keys(&db.url, &options(&rotated), 500, |_| {}).await.unwrap();
    assert_eq!((report.rewritten(), report.unreadable, report.remaining), (2, 2, 2), "{report:?}");
    // Nothing moved, so one pass is enough.
    assert_eq!(report.passes, 1);
    let examples = report.unreadable_examples.join("\n");
    let foreign_at = format!("messages.content of session {sid} seq 2: value was encrypted with key \"k9\"");
    assert!(examples.contains(&foreign_at), "{examples}");
    assert!(examples.contains("seq 3 (key \"?\")"), "{examples}");
    let stored = db.stored().await;
    let seq2 = stored.iter().find(|(c, _, seq, _, _)| *c == "messages.content" && *seq == 2).unwrap();
    assert_eq!(seq2.4, foreign, "an unreadable value is left untouched");
}

#[tokio::test]
async fn a_value_changed_between_read_and_swap_is_left_to_its_writer() {
    let old = Keyring::generate("k1");
    let rotated = old.rotated("k2").unwrap();
    let db = database(&old).await;
    let cipher = Cipher::new(old.clone());
    let sid = db.session(&cipher, &mut Written::default(), None, None).await;
    db.message(&cipher, &mut Written::default(), (sid, 1), "first", None).await;
    let column = &ENCRYPTED[0];
    let rows: Vec<columns::StoredValue> =
        sqlx::query_as(column.select).bind(10_i64).bind("").bind(i64::MIN).fetch_all(&db.pool).await.unwrap();
    let plan = columns::plan(column, rows, &Cipher::new(rotated.clone()));
    assert_eq!(plan.rewrites.len(), 1);
    // A writer (on a node that has k2 first) finishes the message meanwhile.
    let newer = Cipher::new(rotated.clone())
        .encrypt_str(&Aad { tenant_id: TENANT, session_id: sid, seq: 1, column: CONTENT }, "finished")
        .unwrap();
    sqlx::query("UPDATE messages SET content = $1").bind(&newer).execute(&db.pool).await.unwrap();
    let swap = &plan.rewrites[0];
    let done = sqlx::query(column.update)
        .bind(&swap.new)
        .bind(&swap.id)
        .bind(&swap.old)
        .bind(swap.seq)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 0, "the swap must not overwrite the writer's value");
    let (content,): (Vec<u8>,) =
        sqlx::query_as("SELECT content FROM messages").fetch_one(&db.pool).await.unwrap();
    assert_eq!(
        open(&Cipher::new(rotated), "messages.content", &sid.to_string(), 1, TENANT, &content),
        "finished"
    );
}

#[tokio::test]
async fn in_memory_databases_are_refused() {
    let keys = Keyring::generate("k1");
    let err = rotate_keys("sqlite::memory:", &options(&keys), 500, |_| {}).await.unwrap_err();
    assert!(matches!(err, RotateError::InMemory), "{err}");
}
