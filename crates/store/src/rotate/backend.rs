//! What rotation needs from a backend: one page of one encrypted column
//! re-encrypted in one transaction, and a count of the values still under
//! other keys. Expanded for each backend by `impl_rotation!` (sqlx's
//! connection types differ, the statements and steps do not).

use super::columns::{Cursor, Encrypted};
use crate::schema::Schema;
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

#[async_trait::async_trait]
pub trait Rotation: Schema {
    /// Reads up to `limit` rows of `column` after `after` and swaps each
    /// value not under the active key for one that is, all in one
    /// transaction. A swap applies only while the row still holds the value
    /// that was read, so a concurrent write is never overwritten.
    async fn reseal_page(
        &self,
        column: &'static Encrypted,
        after: &Cursor,
        limit: u32,
    ) -> Result<PageOutcome, StoreError>;

    /// How many values of `column` do not start with `prefix` (the active
    /// key's), counted in the database without reading them out.
    async fn count_others(&self, column: &'static Encrypted, prefix: &[u8]) -> Result<u64, StoreError>;
}

/// `impl_rotation!(Type, conn = Connection, select = field)`: `select` names
/// the `Encrypted` statement that pages through a column (`select`, or
/// `select_locking` where row locks exist). The type must have a `reader`
/// pool, a `cipher: Arc<Cipher>` and `write(work)`, which runs the work in a
/// transaction of its own (see `store_impl`).
///
/// On SQLite the work runs on the process's one writing connection; that is
/// the `keys rotate` process, where nothing else writes, so its decryption
/// and encryption inside the transaction delay no one else's writes.
macro_rules! impl_rotation {
    ($store:ty, conn = $conn:ty, select = $select:ident) => {
        const _: () = {
            use switchboard_core::store::StoreError;
            use $crate::rotate::backend::{PageOutcome, Rotation};
            use $crate::rotate::columns::{plan, Cursor, Encrypted, Identity, StoredValue};
            use $crate::rows::db_err;

            #[async_trait::async_trait]
            impl Rotation for $store {
                async fn reseal_page(
                    &self,
                    column: &'static Encrypted,
                    after: &Cursor,
                    limit: u32,
                ) -> Result<PageOutcome, StoreError> {
                    let (cipher, after) = (self.cipher.clone(), after.clone());
                    let by_seq = column.identity == Identity::Message;
                    self.write(move |conn: &mut $conn| {
                        let (cipher, after) = (cipher.clone(), after.clone());
                        Box::pin(async move {
                            let mut select = sqlx::query_as::<_, StoredValue>(column.$select)
                                .bind(i64::from(limit))
                                .bind(&after.id);
                            if by_seq {
                                select = select.bind(after.seq);
                            }
                            let rows = select.fetch_all(&mut *conn).await?;
                            let plan = plan(column, rows, &cipher);
                            let mut outcome = PageOutcome {
                                examined: plan.examined,
                                unreadable: plan.unreadable,
                                next: plan.last,
                                ..PageOutcome::default()
                            };
                            for rewrite in &plan.rewrites {
                                let mut swap = sqlx::query(column.update)
                                    .bind(&rewrite.new)
                                    .bind(&rewrite.id)
                                    .bind(&rewrite.old);
                                if by_seq {
                                    swap = swap.bind(rewrite.seq);
                                }
                                if swap.execute(&mut *conn).await?.rows_affected() > 0 {
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

                async fn count_others(
                    &self,
                    column: &'static Encrypted,
                    prefix: &[u8],
                ) -> Result<u64, StoreError> {
                    // substr's length is an integer on PostgreSQL, not a bigint.
                    let len = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
                    let count: i64 = sqlx::query_scalar(column.count_others)
                        .bind(len)
                        .bind(prefix)
                        .fetch_one(&self.reader)
                        .await
                        .map_err(db_err)?;
                    Ok(u64::try_from(count).unwrap_or(0))
                }
            }
        };
    };
}
pub(crate) use impl_rotation;
