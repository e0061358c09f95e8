//! Cases about encryption at rest: the key check at open, rotation, and no
//! plaintext content anywhere the database keeps bytes.

use super::*;
use crate::common::Harness;
use switchboard_core::store::{Checkpoint, StoreError};
use switchboard_store::{connect, migrate, Keyring, StoreOpenError, StoreOptions};

fn with_keys(h: &Harness, keyring: Keyring) -> StoreOptions {
    StoreOptions { keyring, ..h.options.clone() }
}

pub async fn wrong_keys_refuse_to_open(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "secret", at(0)).await;

    let same_kid = with_keys(h, Keyring::generate("k1"));
    let err = migrate(&h.url, &same_kid).await.unwrap_err();
    assert!(matches!(err, StoreOpenError::KeyConflict { .. }), "{err}");
    assert!(err.to_string().contains("cannot decrypt this database's content"), "{err}");
    assert!(matches!(connect(&h.url, same_kid).await.err().unwrap(), StoreOpenError::KeyConflict { .. }));

    let other_kid = with_keys(h, Keyring::generate("k9"));
    let err = connect(&h.url, other_kid.clone()).await.err().unwrap();
    assert!(matches!(err, StoreOpenError::KeysCannotDecrypt { .. }), "{err}");
    assert!(err.to_string().contains("cannot decrypt this database's content"), "{err}");
    assert!(matches!(
        migrate(&h.url, &other_kid).await.unwrap_err(),
        StoreOpenError::KeysCannotDecrypt { .. }
    ));
    // The refused keys left no canary behind: the right keys still open it.
    h.reopen().await;
    assert_eq!(h.store.list_messages(TENANT, s.id, 10, None).await.unwrap()[1].content, "secret");
}

pub async fn rotated_keys_read_old_content(h: &mut Harness) {
    let s = new_session(&h.store).await;
    complete_turn(&h.store, &s, "old words", at(0)).await;

    let rotated = h.options.keyring.rotated("k2").unwrap();
    migrate(&h.url, &with_keys(h, rotated.clone())).await.unwrap();
    h.options = with_keys(h, rotated.clone());
    h.reopen().await;
    complete_turn(&h.store, &s, "new words", at(10)).await;
    let all = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["answer to new words", "new words", "answer to old words", "old words"]);

    // Dropping the old key: the database still opens (k2 reads it), but what
    // only k1 could read is now an error, not garbage.
    let only_new = Keyring::parse(rotated.to_spec().split(',').next().unwrap()).unwrap();
    h.options = with_keys(h, only_new);
    h.reopen().await;
    let err = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "{err}");
    assert_eq!(h.store.list_messages(TENANT, s.id, 2, None).await.unwrap()[1].content, "new words");
}

pub async fn connect_refuses_unmigrated_database(h: &mut Harness) {
    let url = h.fresh_url().await;
    let err = connect(&url, h.options.clone()).await.err().unwrap();
    assert!(matches!(err, StoreOpenError::NotMigrated), "{err}");
    migrate(&url, &h.options).await.unwrap();
    // Migrating again changes nothing.
    migrate(&url, &h.options).await.unwrap();
    let store = connect(&url, h.options.clone()).await.unwrap();
    store.ping().await.unwrap();
    assert!(store.list_tenants().await.unwrap().is_empty());
}

pub async fn content_is_encrypted_at_rest(h: &mut Harness) {
    let marker = format!("MARKER-{}", Uuid::new_v4().simple());
    let s = new_session(&h.store).await;
    let mut first = turn(&s, &format!("user says {marker}"), at(0));
    first.context = Some(serde_json::json!({"page": format!("/p/{marker}")}));
    let (_, assistant, _) = start(&h.store, &first).await;
    let checkpoint = Checkpoint {
        tools: Vec::new(),
        tenant_id: TENANT.into(),
        session_id: s.id,
        seq: assistant.seq,
        content: format!("partial {marker}"),
        node_id: NODE.into(),
        lease_until: at(20_000),
    };
    assert!(h.store.checkpoint(&checkpoint).await.unwrap());
    let finish = finish_of(&assistant, TENANT, &format!("final {marker} text"), at(1_000));
    assert!(h.store.finish_message(&finish).await.unwrap());
    let read = h.store.list_messages(TENANT, s.id, 10, None).await.unwrap();
    assert!(read[0].content.contains(&marker));

    let stored = h.stored_bytes().await;
    assert!(!stored.is_empty());
    for bytes in &stored {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "plaintext marker found at rest"
        );
        assert!(!bytes.windows(6).any(|w| w == b"MARKER"), "plaintext marker prefix found at rest");
    }
}
