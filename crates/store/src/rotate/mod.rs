//! `keys rotate`: re-encrypts every stored value that is not under the active
//! key (the keyring's first), while servers may be running and writing.
//!
//! Each encrypted column is walked in pages in key order; each page is one
//! transaction that re-reads its rows and swaps only values under another
//! key id, each swap conditional on the row still holding the value read
//! (compare-and-swap), so a concurrent writer's update is never lost. On
//! PostgreSQL the page also locks its rows, skipping rows that writers hold,
//! so the rotation never waits on them; on SQLite the transaction holds the
//! one write lock. Values are sealed with the same associated data as normal
//! writes. The key-check canaries are re-encrypted too, so that once no value
//! is under the old key the operator can remove it and nodes still start.
//!
//! Afterwards the values still under other keys are counted in the database.
//! Rows skipped because a writer held them, or written meanwhile by a node
//! that still encrypts with an old key, are picked up by another pass; what
//! remains is reported, never hidden. Running it again rewrites nothing.

pub(crate) mod backend;
pub(crate) mod columns;

use crate::crypto::kid_prefix;
use crate::store::SqlStore;
use crate::{schema, StoreOpenError, StoreOptions};
use columns::{Cursor, ENCRYPTED};
use std::time::Duration;
use switchboard_core::store::StoreError;

/// Rows per transaction unless the caller says otherwise.
pub const DEFAULT_BATCH: u32 = 500;
/// Passes at most: the first does the work; later ones pick up rows that
/// writers held or wrote under an old key meanwhile.
const MAX_PASSES: u32 = 3;
/// Between passes, so writers in flight can commit.
const PASS_PAUSE: Duration = Duration::from_millis(500);
/// Unreadable values described in the report (all are counted).
const MAX_EXAMPLES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Open(#[from] StoreOpenError),
    #[error("rotating keys failed: {0}")]
    Store(#[from] StoreError),
    #[error("an in-memory database lives only in its process; there is nothing to rotate")]
    InMemory,
}

/// Where a rotation is, after each page.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// `table.column`.
    pub column: &'a str,
    pub pass: u32,
    /// This column's values read so far, in all passes.
    pub examined: u64,
    /// This column's values re-encrypted so far.
    pub rewritten: u64,
}

/// One encrypted column's share of a rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnReport {
    /// `table.column`.
    pub column: String,
    /// Values read, in all passes.
    pub examined: u64,
    /// Values re-encrypted under the active key.
    pub rewritten: u64,
    /// Values a writer changed between the read and the swap (left as written).
    pub changed_meanwhile: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The key everything was re-encrypted under.
    pub active_kid: String,
    pub columns: Vec<ColumnReport>,
    pub passes: u32,
    /// Values no configured key opens (in the last pass), left untouched.
    pub unreadable: u64,
    /// Up to 20 of them: where they are, their key id and why.
    pub unreadable_examples: Vec<String>,
    /// Values still not under the active key when the rotation ended
    /// (unreadable ones included); 0 means the old keys can be removed.
    pub remaining: u64,
}

impl RotationReport {
    pub fn rewritten(&self) -> u64 {
        self.columns.iter().map(|c| c.rewritten).sum()
    }

    pub fn examined(&self) -> u64 {
        self.columns.iter().map(|c| c.examined).sum()
    }
}

/// Opens the database with `options` (the schema must be migrated and the
/// keys must pass the key check, which also registers the active key),
/// re-encrypts every value under another key id to the active key, `batch`
/// rows per transaction, and closes it. `progress` hears after every page.
pub async fn rotate_keys(
    database_url: &str,
    options: &StoreOptions,
    batch: u32,
    progress: impl FnMut(&Progress<'_>) + Send,
) -> Result<RotationReport, RotateError> {
    let store = SqlStore::open(database_url, options).await?;
    if store.in_memory() {
        store.close().await;
        return Err(RotateError::InMemory);
    }
    let result = match schema::ensure_ready(&store).await {
        Ok(()) => rotate(&store, batch.max(1), progress).await,
        Err(e) => Err(e.into()),
    };
    store.close().await;
    result
}

/// The rotation proper, on an opened and checked backend.
async fn rotate(
    store: &SqlStore,
    batch: u32,
    mut progress: impl FnMut(&Progress<'_>) + Send,
) -> Result<RotationReport, RotateError> {
    let active = store.cipher.keyring().current_kid().to_owned();
    let prefix = kid_prefix(&active);
    let mut report = RotationReport {
        active_kid: active,
        columns: ENCRYPTED
            .iter()
            .map(|c| ColumnReport { column: c.name.into(), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    for pass in 1..=MAX_PASSES {
        report.passes = pass;
        let before = report.rewritten();
        let mut unreadable = Vec::new();
        for (column, tally) in ENCRYPTED.iter().zip(report.columns.iter_mut()) {
            let mut after = Cursor::start();
            loop {
                let page = backend::reseal_page(store, column, &after, batch).await?;
                tally.examined += page.examined;
                tally.rewritten += page.rewritten;
                tally.changed_meanwhile += page.changed_meanwhile;
                unreadable.extend(page.unreadable);
                progress(&Progress {
                    column: column.name,
                    pass,
                    examined: tally.examined,
                    rewritten: tally.rewritten,
                });
                match page.next {
                    Some(next) => after = next,
                    None => break,
                }
            }
        }
        report.remaining = remaining(store, &prefix).await?;
        report.unreadable = u64::try_from(unreadable.len()).unwrap_or(u64::MAX);
        unreadable.truncate(MAX_EXAMPLES);
        report.unreadable_examples = unreadable;
        // Done when only unreadable values are left, or when a pass changed
        // nothing (what is left is not going to move on its own).
        if report.remaining <= report.unreadable || report.rewritten() == before {
            break;
        }
        if pass < MAX_PASSES {
            tokio::time::sleep(PASS_PAUSE).await;
        }
    }
    Ok(report)
}

async fn remaining(store: &SqlStore, prefix: &[u8]) -> Result<u64, StoreError> {
    let mut total = 0;
    for column in ENCRYPTED {
        total += backend::count_others(store, column, prefix).await?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
