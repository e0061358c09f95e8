//! Cases about vendors' conversation ids: kept per session and key, replaced
//! when the vendor names a new one, never written into a foreign tenant's or
//! a deleted session, and gone with the session.

use super::*;
use crate::common::Harness;

const KEY: &str = "dify https://api.dify.ai/v1/chat-messages DIFY_KEY";

pub async fn conversation_ids_are_kept_per_session_and_key(h: &mut Harness) {
    let session = new_session(&h.store).await;
    let other = new_session(&h.store).await;
    assert_eq!(h.store.conversation_id(TENANT, session.id, KEY).await.unwrap(), None);

    h.store.set_conversation_id(TENANT, session.id, KEY, "conv-1").await.unwrap();
    assert_eq!(h.store.conversation_id(TENANT, session.id, KEY).await.unwrap().as_deref(), Some("conv-1"));
    assert_eq!(h.store.conversation_id(TENANT, session.id, "another app").await.unwrap(), None);
    assert_eq!(h.store.conversation_id(TENANT, other.id, KEY).await.unwrap(), None);

    h.store.set_conversation_id(TENANT, session.id, KEY, "conv-2").await.unwrap();
    assert_eq!(h.store.conversation_id(TENANT, session.id, KEY).await.unwrap().as_deref(), Some("conv-2"));
    // Nor read it from another tenant.
    assert_eq!(h.store.conversation_id("other", session.id, KEY).await.unwrap(), None);

    // A foreign tenant cannot write into the session.
    h.store.set_conversation_id("other", other.id, KEY, "forged").await.unwrap();
    assert_eq!(h.store.conversation_id(TENANT, other.id, KEY).await.unwrap(), None);

    // Gone with the session; a late write for a deleted session is a no-op.
    assert!(h.store.delete_session(TENANT, session.id).await.unwrap());
    assert_eq!(h.store.conversation_id(TENANT, session.id, KEY).await.unwrap(), None);
    h.store.set_conversation_id(TENANT, session.id, KEY, "late").await.unwrap();
    assert_eq!(h.store.conversation_id(TENANT, session.id, KEY).await.unwrap(), None);
}
