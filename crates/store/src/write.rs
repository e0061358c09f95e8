//! What a write looks like to the backends: a re-runnable unit of work on one
//! connection, inside a transaction that the backend owns (PostgreSQL: one
//! per write; SQLite: one per batch of queued writes). Re-runnable, because a
//! write refused by a unique index is tried again, and a SQLite batch that
//! fails is replayed one write at a time.

use crate::rows::{db_err, is_unique_violation};
use std::future::Future;
use std::pin::Pin;
use switchboard_core::store::StoreError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many times one write is tried in all when a unique index refuses it
/// (a concurrent twin committed first; the next try sees it).
pub const ATTEMPTS: usize = 3;

/// Why one run of a write did not finish.
#[derive(Debug)]
pub enum WriteError {
    /// A unique index refused a row: worth another try.
    Conflict(StoreError),
    Store(StoreError),
}

impl WriteError {
    pub fn into_store(self) -> StoreError {
        match self {
            Self::Conflict(e) | Self::Store(e) => e,
        }
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        if is_unique_violation(&e) {
            Self::Conflict(db_err(e))
        } else {
            Self::Store(db_err(e))
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
