//! What a user's memory (SPEC §18) asks of the store: one user's keys and
//! values in one tenant, read, written, deleted. The rules (who has a
//! memory, what a key or value may be) are `crate::memory`'s; the store
//! only keeps the key limit atomic, so concurrent writes of new keys, on any
//! node, can never take a memory past it.

use crate::time::{self, Timestamp};
use serde::Serialize;

/// One remembered preference, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryItem {
    pub key: String,
    pub value: String,
    #[serde(with = "time::wire")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// Writes `key` (a new one, or over the one there) in the memory of
/// `owner`, unless it is new and the memory holds `max_keys` already. The
/// count and the write are one transaction, taken one at a time per
/// (tenant, owner) across nodes.
#[derive(Debug, Clone)]
pub struct PutMemory {
    pub tenant_id: String,
    /// The user's subject, `user:<sub>`.
    pub owner: String,
    pub key: String,
    pub value: String,
    pub max_keys: u32,
    pub now: Timestamp,
}

/// What a [`PutMemory`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written: the entry as it is now.
    Written(MemoryItem),
    /// A new key while the memory is full: nothing was written.
    Full,
}
