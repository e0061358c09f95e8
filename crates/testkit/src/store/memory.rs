//! Users' memories (SPEC §18) in the memory store: one map per (tenant,
//! subject). Each call holds the store's one lock, so the count of keys
//! and the write are one step, as the SQL backends' transaction makes them.

use super::{ms, State};
use switchboard_core::memory::MemoryItem;
use switchboard_core::store::memory::{PutMemory, PutOutcome};

fn owner(tenant_id: &str, subject: &str) -> (String, String) {
    (tenant_id.to_owned(), subject.to_owned())
}

impl State {
    /// Sorted by key, as the map keeps them.
    pub(super) fn list_memory(&self, tenant_id: &str, subject: &str) -> Vec<MemoryItem> {
        self.memory.get(&owner(tenant_id, subject)).into_iter().flat_map(|m| m.values().cloned()).collect()
    }

    pub(super) fn get_memory(&self, tenant_id: &str, subject: &str, key: &str) -> Option<MemoryItem> {
        self.memory.get(&owner(tenant_id, subject)).and_then(|m| m.get(key)).cloned()
    }

    pub(super) fn put_memory(&mut self, put: &PutMemory) -> PutOutcome {
        let entries = self.memory.entry(owner(&put.tenant_id, &put.owner)).or_default();
        let held = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        if !entries.contains_key(&put.key) && held >= put.max_keys {
            return PutOutcome::Full;
        }
        let item = MemoryItem { key: put.key.clone(), value: put.value.clone(), updated_at: ms(put.now) };
        entries.insert(put.key.clone(), item.clone());
        PutOutcome::Written(item)
    }

    pub(super) fn delete_memory(&mut self, tenant_id: &str, subject: &str, key: &str) -> bool {
        self.memory.get_mut(&owner(tenant_id, subject)).is_some_and(|m| m.remove(key).is_some())
    }

    pub(super) fn clear_memory(&mut self, tenant_id: &str, subject: &str) -> u64 {
        let gone = self.memory.remove(&owner(tenant_id, subject)).map_or(0, |m| m.len());
        u64::try_from(gone).unwrap_or(u64::MAX)
    }
}
