//! Opening SQLite in its less common forms: in memory, with full durability,
//! and refusing URLs of no known backend.

use switchboard_core::store::{NewSession, TenantRecord};
use switchboard_core::time::from_millis;
use switchboard_store::{connect, migrate, Durability, Keyring, StoreOpenError, StoreOptions};

fn options(durability: Durability) -> StoreOptions {
    StoreOptions { keyring: Keyring::generate("k1"), durability }
}

#[tokio::test]
async fn memory_database_migrates_itself_and_keeps_data() {
    let store = connect("sqlite::memory:", options(Durability::Normal)).await.unwrap();
    let tenant = TenantRecord {
        id: "acme".into(),
        name: "Acme".into(),
        source: "db".into(),
        config: serde_json::json!({}),
        kill_switch: false,
        created_at: from_millis(1).unwrap(),
        updated_at: from_millis(1).unwrap(),
    };
    store.upsert_tenant(&tenant).await.unwrap();
    let new = NewSession {
        event: None,
        id: uuid::Uuid::new_v4(),
        tenant_id: "acme".into(),
        owner: "user:1".into(),
        metadata: None,
        now: from_millis(5).unwrap(),
    };
    store.create_session(&new).await.unwrap();
    assert_eq!(store.get_tenant("acme").await.unwrap(), Some(tenant));
    assert!(store.get_session("acme", new.id).await.unwrap().is_some());
    // Another in-memory store is another database.
    let other = connect("sqlite::memory:", options(Durability::Normal)).await.unwrap();
    assert!(other.get_tenant("acme").await.unwrap().is_none());
}

#[tokio::test]
async fn full_durability_opens_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a/b/sb.db").display());
    let opts = options(Durability::Full);
    migrate(&url, &opts).await.unwrap();
    let store = connect(&url, opts).await.unwrap();
    store.ping().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn unknown_urls_are_refused_without_echoing_them() {
    for url in ["mysql://user:secret@host/db", "", "./data/switchboard.db"] {
        let err = connect(url, options(Durability::Normal)).await.err().unwrap();
        assert!(matches!(err, StoreOpenError::UnsupportedUrl));
        assert!(!err.to_string().contains("secret"));
    }
}
