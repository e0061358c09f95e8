//! Cases about users' memories (SPEC §18): entries kept per (tenant,
//! subject, key), listed by key, overwritten in place, deleted one by one or
//! all at once; the key limit, alone and under concurrent writers; values
//! encrypted at rest and bound to their row.

use super::*;
use crate::common::Harness;
use switchboard_core::memory::{MemoryItem, MAX_KEYS};
use switchboard_core::store::memory::{PutMemory, PutOutcome};
use switchboard_core::store::StoreError;

const ALICE: &str = "user:alice";
const BOB: &str = "user:bob";

fn put(tenant: &str, owner: &str, key: &str, value: &str, now: Timestamp) -> PutMemory {
    PutMemory {
        tenant_id: tenant.into(),
        owner: owner.into(),
        key: key.into(),
        value: value.into(),
        max_keys: MAX_KEYS,
        now,
    }
}

async fn write(store: &Arc<dyn Store>, tenant: &str, owner: &str, key: &str, value: &str) -> PutOutcome {
    store.put_memory(&put(tenant, owner, key, value, at(0))).await.unwrap()
}

fn item(key: &str, value: &str, updated_at: Timestamp) -> MemoryItem {
    MemoryItem { key: key.into(), value: value.into(), updated_at }
}

/// (key, value) of each entry, in the order the store lists them.
async fn entries(store: &Arc<dyn Store>, tenant: &str, owner: &str) -> Vec<(String, String)> {
    let items = store.list_memory(tenant, owner).await.unwrap();
    items.into_iter().map(|i| (i.key, i.value)).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

pub async fn memory_put_get_list_delete_and_clear(h: &mut Harness) {
    let store = h.store.clone();
    assert!(store.list_memory(TENANT, ALICE).await.unwrap().is_empty());
    assert_eq!(store.get_memory(TENANT, ALICE, "size").await.unwrap(), None);

    let written = store.put_memory(&put(TENANT, ALICE, "size", "M", at(10))).await.unwrap();
    assert_eq!(written, PutOutcome::Written(item("size", "M", at(10))));
    for (key, value, t) in [("likes", "denim ✓ und Größe", 20), ("a.b_c-9", "x", 30)] {
        store.put_memory(&put(TENANT, ALICE, key, value, at(t))).await.unwrap();
    }
    assert_eq!(store.get_memory(TENANT, ALICE, "size").await.unwrap(), Some(item("size", "M", at(10))));
    // Sorted by key, whatever the order of writing.
    let listed = store.list_memory(TENANT, ALICE).await.unwrap();
    assert_eq!(
        listed,
        [item("a.b_c-9", "x", at(30)), item("likes", "denim ✓ und Größe", at(20)), item("size", "M", at(10))]
    );

    // Overwriting keeps one entry, with the new value and time.
    let again = store.put_memory(&put(TENANT, ALICE, "size", "L", at(40))).await.unwrap();
    assert_eq!(again, PutOutcome::Written(item("size", "L", at(40))));
    assert_eq!(store.get_memory(TENANT, ALICE, "size").await.unwrap(), Some(item("size", "L", at(40))));
    assert_eq!(store.list_memory(TENANT, ALICE).await.unwrap().len(), 3);

    assert!(store.delete_memory(TENANT, ALICE, "likes").await.unwrap());
    assert!(!store.delete_memory(TENANT, ALICE, "likes").await.unwrap());
    assert_eq!(store.get_memory(TENANT, ALICE, "likes").await.unwrap(), None);
    assert_eq!(entries(&store, TENANT, ALICE).await, pairs(&[("a.b_c-9", "x"), ("size", "L")]));

    h.reopen().await;
    let store = h.store.clone();
    assert_eq!(entries(&store, TENANT, ALICE).await, pairs(&[("a.b_c-9", "x"), ("size", "L")]));
    assert_eq!(store.clear_memory(TENANT, ALICE).await.unwrap(), 2);
    assert!(store.list_memory(TENANT, ALICE).await.unwrap().is_empty());
    assert_eq!(store.clear_memory(TENANT, ALICE).await.unwrap(), 0);
}

pub async fn memory_key_limit_allows_overwrites(h: &mut Harness) {
    let store = h.store.clone();
    for n in 0..MAX_KEYS {
        let outcome = write(&store, TENANT, ALICE, &format!("k{n:02}"), "v").await;
        assert!(matches!(outcome, PutOutcome::Written(_)), "key {n}: {outcome:?}");
    }
    // The 51st key is refused and nothing is written.
    assert_eq!(write(&store, TENANT, ALICE, "one-more", "v").await, PutOutcome::Full);
    assert_eq!(store.get_memory(TENANT, ALICE, "one-more").await.unwrap(), None);
    assert_eq!(store.list_memory(TENANT, ALICE).await.unwrap().len(), MAX_KEYS as usize);
    // Overwriting a key it holds is always allowed.
    assert!(matches!(write(&store, TENANT, ALICE, "k07", "changed").await, PutOutcome::Written(_)));
    assert_eq!(store.get_memory(TENANT, ALICE, "k07").await.unwrap().unwrap().value, "changed");
    // Once a key is gone, a new one fits again.
    assert!(store.delete_memory(TENANT, ALICE, "k00").await.unwrap());
    assert!(matches!(write(&store, TENANT, ALICE, "one-more", "v").await, PutOutcome::Written(_)));
    assert_eq!(write(&store, TENANT, ALICE, "two-more", "v").await, PutOutcome::Full);
    // The limit is the caller's to set.
    let small = PutMemory { max_keys: 1, ..put(TENANT, BOB, "a", "v", at(0)) };
    assert!(matches!(store.put_memory(&small).await.unwrap(), PutOutcome::Written(_)));
    let second = PutMemory { key: "b".into(), ..small };
    assert_eq!(store.put_memory(&second).await.unwrap(), PutOutcome::Full);
}

pub async fn memory_is_per_tenant_and_subject(h: &mut Harness) {
    let store = h.store.clone();
    write(&store, TENANT, ALICE, "size", "M").await;
    write(&store, "other", ALICE, "size", "XL").await;
    write(&store, TENANT, BOB, "size", "S").await;
    assert_eq!(store.get_memory(TENANT, ALICE, "size").await.unwrap().unwrap().value, "M");
    assert_eq!(store.get_memory("other", ALICE, "size").await.unwrap().unwrap().value, "XL");
    assert_eq!(store.get_memory(TENANT, BOB, "size").await.unwrap().unwrap().value, "S");
    assert_eq!(store.get_memory("nobody", ALICE, "size").await.unwrap(), None);

    // Each (tenant, subject) has its own limit.
    for n in 1..MAX_KEYS {
        write(&store, TENANT, ALICE, &format!("k{n:02}"), "v").await;
    }
    assert_eq!(write(&store, TENANT, ALICE, "extra", "v").await, PutOutcome::Full);
    assert!(matches!(write(&store, "other", ALICE, "extra", "v").await, PutOutcome::Written(_)));
    assert!(matches!(write(&store, TENANT, BOB, "extra", "v").await, PutOutcome::Written(_)));

    // Deleting and clearing touch one memory only.
    assert!(!store.delete_memory(TENANT, BOB, "k01").await.unwrap());
    assert!(store.delete_memory(TENANT, BOB, "size").await.unwrap());
    assert_eq!(store.get_memory(TENANT, ALICE, "size").await.unwrap().unwrap().value, "M");
    assert_eq!(store.clear_memory(TENANT, ALICE).await.unwrap(), u64::from(MAX_KEYS));
    assert_eq!(entries(&store, "other", ALICE).await, pairs(&[("extra", "v"), ("size", "XL")]));
    assert_eq!(entries(&store, TENANT, BOB).await, pairs(&[("extra", "v")]));
}

pub async fn concurrent_writes_of_one_key_end_with_one_value(h: &mut Harness) {
    let values: Vec<String> = (0..16).map(|n| format!("device {n}")).collect();
    let mut tasks = Vec::new();
    for value in &values {
        let (store, value) = (h.store.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            store.put_memory(&put(TENANT, ALICE, "size", &value, at(5))).await
        }));
    }
    for task in tasks {
        let outcome = task.await.unwrap().expect("a concurrent write of one key is no error");
        assert!(matches!(outcome, PutOutcome::Written(_)), "{outcome:?}");
    }
    let listed = h.store.list_memory(TENANT, ALICE).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(values.contains(&listed[0].value), "{listed:?}");
    assert_eq!(h.store.get_memory(TENANT, ALICE, "size").await.unwrap().as_ref(), listed.first());
}

pub async fn concurrent_new_keys_never_pass_the_limit(h: &mut Harness) {
    let prefilled = MAX_KEYS - 5;
    for n in 0..prefilled {
        write(&h.store, TENANT, ALICE, &format!("old{n:02}"), "v").await;
    }
    // 20 devices each add a key of their own at once (and another user
    // beside them, who has room); only 5 fit.
    let mut tasks = Vec::new();
    for n in 0..20 {
        for owner in [ALICE, BOB] {
            let store = h.store.clone();
            let key = format!("new{n:02}");
            tasks.push(tokio::spawn(async move {
                let outcome = store.put_memory(&put(TENANT, owner, &key, "v", at(5))).await;
                (owner, outcome.expect("a write refused for the limit is no error"))
            }));
        }
    }
    let (mut alice_written, mut alice_full, mut bob_written) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (ALICE, PutOutcome::Written(_)) => alice_written += 1,
            (ALICE, PutOutcome::Full) => alice_full += 1,
            (_, PutOutcome::Written(_)) => bob_written += 1,
            (owner, outcome) => panic!("{owner}: {outcome:?}"),
        }
    }
    assert_eq!((alice_written, alice_full, bob_written), (5, 15, 20));
    assert_eq!(h.store.list_memory(TENANT, ALICE).await.unwrap().len(), MAX_KEYS as usize);
    assert_eq!(h.store.list_memory(TENANT, BOB).await.unwrap().len(), 20);
}

pub async fn memory_values_are_encrypted_at_rest(h: &mut Harness) {
    let marker = format!("MARKER-{}", Uuid::new_v4().simple());
    write(&h.store, TENANT, ALICE, "likes", &format!("likes {marker}")).await;
    write(&h.store, TENANT, ALICE, "likes", &format!("now {marker} again")).await;
    write(&h.store, "other", BOB, "size", &marker).await;
    assert!(h.store.get_memory(TENANT, ALICE, "likes").await.unwrap().unwrap().value.contains(&marker));

    let stored = h.stored_bytes().await;
    assert!(!stored.is_empty());
    for bytes in &stored {
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "plaintext marker at rest");
        assert!(!bytes.windows(6).any(|w| w == b"MARKER"), "plaintext marker prefix at rest");
    }
}

/// A value copied into another user's row (or another tenant's) is refused
/// as undecryptable, not shown to the wrong user.
pub async fn memory_value_moved_to_another_row_does_not_decrypt(h: &mut Harness) {
    write(&h.store, TENANT, ALICE, "size", "M").await;
    write(&h.store, TENANT, BOB, "size", "S").await;
    write(&h.store, "other", ALICE, "size", "XL").await;
    write(&h.store, TENANT, ALICE, "likes", "denim").await;
    let copy = |to_tenant: &str, to_subject: &str, to_key: &str| {
        format!(
            "UPDATE memory SET value = (SELECT value FROM memory WHERE tenant_id = '{TENANT}' \
             AND subject = '{ALICE}' AND key = 'size') \
             WHERE tenant_id = '{to_tenant}' AND subject = '{to_subject}' AND key = '{to_key}'"
        )
    };
    h.exec(&copy(TENANT, BOB, "size")).await;
    h.exec(&copy("other", ALICE, "size")).await;
    h.exec(&copy(TENANT, ALICE, "likes")).await;
    for (tenant, subject, key) in [(TENANT, BOB, "size"), ("other", ALICE, "size"), (TENANT, ALICE, "likes")]
    {
        let read = h.store.get_memory(tenant, subject, key).await;
        assert!(matches!(read, Err(StoreError::Crypto(_))), "{tenant} {subject} {key}: {read:?}");
    }
    assert_eq!(h.store.get_memory(TENANT, ALICE, "size").await.unwrap().unwrap().value, "M");
}
