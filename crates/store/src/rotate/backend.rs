//! What rotation does in the database: one page of one encrypted column
//! re-encrypted in one transaction, and a count of the values still under
//! other keys.
//!
//! On SQLite the work runs on the process's one writing connection; that is
//! the `keys rotate` process, where nothing else writes, so its decryption
//! and encryption inside the transaction delay no one else's writes.

use super::columns::{plan, Cursor, Encrypted, Identity, StoredValue};
use crate::db::{Conn, Param};
use crate::store::SqlStore;
use switchboard_core::store::StoreError;

/// How one page went.
#[derive(Debug, Default)]
pub struct PageOutcome {
    pub examined: u64,
    pub rewritten: u64,
    /// Values a writer changed between the read and the swap: left as the
    /// writer wrote them (under the active key, on a node that has it first).
    pub changed_meanwhile: u64,
    pub unreadable: Vec<String>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<Cursor>,
}

/// Reads up to `limit` rows of `column` after `after` and swaps each value
/// not under the active key for one that is, all in one transaction. A swap
/// applies only while the row still holds the value that was read, so a
/// concurrent write is never overwritten. On PostgreSQL the page locks its
/// rows and skips rows others hold (`select_locking`).
pub async fn reseal_page(
    store: &SqlStore,
    column: &'static Encrypted,
    after: &Cursor,
    limit: u32,
) -> Result<PageOutcome, StoreError> {
    let (cipher, after) = (store.cipher.clone(), after.clone());
    let by_seq = column.identity == Identity::Message;
    store
        .write(move |mut conn: Conn<'_>| {
            let (cipher, after) = (cipher.clone(), after.clone());
            Box::pin(async move {
                let select = conn.dialect().pick(column.select, column.select_locking);
                let mut params: Vec<Param<'_>> = vec![i64::from(limit).into(), (&after.id).into()];
                if by_seq {
                    params.push(after.seq.into());
                }
                let rows: Vec<StoredValue> = conn.all(select, &params).await?;
                let plan = plan(column, rows, &cipher);
                let mut outcome = PageOutcome {
                    examined: plan.examined,
                    unreadable: plan.unreadable,
                    next: plan.last,
                    ..PageOutcome::default()
                };
                for rewrite in &plan.rewrites {
                    let mut swap: Vec<Param<'_>> =
                        vec![(&rewrite.new).into(), (&rewrite.id).into(), (&rewrite.old).into()];
                    if by_seq {
                        swap.push(rewrite.seq.into());
                    }
                    if conn.execute(column.update, &swap).await? > 0 {
                        outcome.rewritten += 1;
                    } else {
                        outcome.changed_meanwhile += 1;
                    }
                }
                Ok(outcome)
            })
        })
        .await
}

/// How many values of `column` do not start with `prefix` (the active
/// key's), counted in the database without reading them out.
pub async fn count_others(
    store: &SqlStore,
    column: &'static Encrypted,
    prefix: &[u8],
) -> Result<u64, StoreError> {
    // substr's length is an integer on PostgreSQL, not a bigint.
    let len = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
    let (count,): (i64,) = store.reader.one(column.count_others, &[len.into(), prefix.into()]).await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
