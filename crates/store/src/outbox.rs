//! The outbox of outbound events (SPEC §19) in SQL: rows written with the
//! changes that cause them (`write.rs`: the session, turn, hold and close
//! writes), leased by the delivery worker of one node at a time,
//! settled after each try, listed, retried and resumed by admins.
//!
//! Leases. A worker takes due rows with one `UPDATE … RETURNING`; on
//! PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so two nodes
//! leasing at once never take the same row (SQLite has one writer and one
//! node). A settle only counts from the node that holds the lease, while
//! the row is still pending: a node that lost its lease (it stalled past
//! it) cannot overwrite what another node's try wrote.
//!
//! Bodies are encrypted like content, sealed at the row's own id (as a
//! session's values are at the session's), so `keys rotate` covers them.

mod write;

pub use write::*;

use crate::crypto::Aad;
use crate::db::{Conn, Dialect, Param};
use crate::rows::{crypto_err, time_of};
use crate::store::{Backend, SqlStore};
use std::sync::Arc;
use switchboard_core::outbound::{DeliveryStatus, NewEvent};
use switchboard_core::store::outbox::{
    Delivery, DeliveryQuery, DeliveryRecord, IdleSession, RetryOutcome, Settle,
};
use switchboard_core::store::StoreError;
use switchboard_core::time::Timestamp;
use uuid::Uuid;

/// The body's column in its associated data.
pub const OUTBOX_BODY: &str = "outbox_body";

/// Rows due at `now` (a parameter) and not leased, of tenants whose
/// endpoint is enabled.
/// Held rows count: one written held while a resume committed (or held
/// by a `410` that was resumed since) is sent, and goes `pending` when
/// leased; a row written pending while a `410` committed waits for the
/// resume. So no race of the two leaves a row stranded.
macro_rules! due {
    ($now:literal) => {
        concat!(
            "FROM outbox WHERE status IN ('pending', 'held') AND next_attempt_at <= ",
            $now,
            " AND (lease_until IS NULL OR lease_until <= ",
            $now,
            ") AND NOT EXISTS (SELECT 1 FROM event_endpoints_disabled d WHERE d.tenant_id = outbox.tenant_id)"
        )
    };
}
/// `$1` now: whether anything is due (a read, so an idle outbox costs the
/// writer nothing).
const ANY_DUE: &str = concat!("SELECT count(*) FROM (SELECT 1 ", due!("$1"), " LIMIT 1) AS due");
/// `$1` node, `$2` lease end, `$3` now, `$4` how many.
const LEASE: &str = concat!(
    "UPDATE outbox SET status = 'pending', lease_node = $1, lease_until = $2 WHERE id IN (SELECT id ",
    due!("$3"),
    " ORDER BY next_attempt_at LIMIT $4) RETURNING id, tenant_id, type, body, attempts, created_at"
);
/// The same, skipping rows another node is leasing (PostgreSQL).
const LEASE_SKIP_LOCKED: &str = concat!(
    "UPDATE outbox SET status = 'pending', lease_node = $1, lease_until = $2 WHERE id IN (SELECT id ",
    due!("$3"),
    " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, tenant_id, type, body, attempts, created_at"
);

// Statements on rows of one status but `delivered` repeat `status <>
// 'delivered'`: that is the condition of the partial index
// `outbox_tenant_open`, and SQLite uses a partial index only for a query
// that names its condition.

/// A settle's update: `$1` id, `$2` node, then its own; it counts only from
/// the node holding the lease, while the row is pending.
macro_rules! settled {
    ($set:literal) => {
        concat!(
            "UPDATE outbox SET ",
            $set,
            "attempts = attempts + 1, lease_node = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_node = $2 AND status = 'pending'"
        )
    };
}
/// `$3` status, `$4` now.
const DELIVERED: &str =
    settled!("status = 'delivered', last_status = $3, last_error = NULL, delivered_at = $4, ");
/// `$3` next try, `$4` status, `$5` error.
const RETRY: &str = settled!("next_attempt_at = $3, last_status = $4, last_error = $5, ");
/// `$3` status, `$4` error.
const DEAD: &str = settled!("status = 'dead', last_status = $3, last_error = $4, ");
const GONE: &str = settled!("status = 'gone', last_status = 410, last_error = NULL, ");
/// `$3` next try, `$4` why: not a try (`attempts` stays).
const POSTPONE: &str = "UPDATE outbox SET next_attempt_at = $3, last_error = $4, lease_node = NULL, \
     lease_until = NULL WHERE id = $1 AND lease_node = $2 AND status = 'pending'";
/// After a `410`, `$1` the row's id, `$2` now: its tenant's endpoint is
/// disabled…
const DISABLE: &str = "INSERT INTO event_endpoints_disabled (tenant_id, disabled_at) \
     SELECT tenant_id, $2 FROM outbox WHERE id = $1 ON CONFLICT (tenant_id) DO NOTHING";
/// …and its tenant's pending deliveries wait for the endpoint to be resumed.
const HOLD_PENDING: &str = "UPDATE outbox SET status = 'held', lease_node = NULL, lease_until = NULL \
     WHERE tenant_id = (SELECT tenant_id FROM outbox WHERE id = $1) AND status = 'pending' \
     AND status <> 'delivered'";

/// `$1` node.
const RELEASE: &str = "UPDATE outbox SET lease_node = NULL, lease_until = NULL \
     WHERE lease_node = $1 AND status = 'pending'";

const RECORD_COLUMNS: &str = "SELECT id, type, session_id, status, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at FROM outbox ";
/// `$1` tenant, `$2` ids below this one, `$3` how many (then `$4` status).
const LIST: &str = "WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
const LIST_BY_STATUS: &str = "WHERE tenant_id = $1 AND id < $2 AND status = $4 ORDER BY id DESC LIMIT $3";
/// The same for a status other than `delivered`, on the index of those rows.
const LIST_OPEN_BY_STATUS: &str = "WHERE tenant_id = $1 AND id < $2 AND status = $4 \
     AND status <> 'delivered' ORDER BY id DESC LIMIT $3";
/// Above every uuid's text: the first page's cursor.
const TOP: &str = "~";

/// `$1` id, `$2` tenant.
const EXISTS: &str = "SELECT count(*) FROM outbox WHERE id = $1 AND tenant_id = $2";
/// `$1` tenant.
const IS_DISABLED: &str = "SELECT count(*) FROM event_endpoints_disabled WHERE tenant_id = $1";
/// `$1` id, `$2` tenant, `$3` now: due now, with a fresh schedule.
const REQUEUE: &str = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $3, \
     delivered_at = NULL WHERE id = $1 AND tenant_id = $2";
/// `$1` tenant.
const ENABLE: &str = "DELETE FROM event_endpoints_disabled WHERE tenant_id = $1";
/// `$1` tenant, `$2` now.
const RESUME: &str = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2 \
     WHERE tenant_id = $1 AND status = 'held' AND status <> 'delivered'";

/// `$1` delivered before, `$2` how many.
const PURGE_DELIVERED: &str = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
     WHERE status = 'delivered' AND delivered_at < $1 LIMIT $2)";
/// `$1` dead or gone and created before, `$2` how many.
const PURGE_ENDED: &str = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
     WHERE status IN ('dead', 'gone') AND created_at < $1 LIMIT $2)";

/// Every status but `delivered` (which only grows until purged; its rate
/// is the deliveries counter's).
const COUNTS: &str = "SELECT status, count(*) FROM outbox WHERE status <> 'delivered' GROUP BY status";

/// `$1` tenant, `$2` since, `$3` before, `$4` how many.
const IDLE: &str = "SELECT id, owner, last_activity_at FROM sessions WHERE tenant_id = $1 \
     AND last_activity_at >= $2 AND last_activity_at < $3 AND status <> 'closed' \
     AND (idle_for IS NULL OR idle_for < last_activity_at) ORDER BY last_activity_at LIMIT $4";
/// `$1` id, `$2` tenant, `$3` the activity the stretch began at.
const MARK_IDLE: &str = "UPDATE sessions SET idle_for = last_activity_at \
     WHERE id = $1 AND tenant_id = $2 AND last_activity_at = $3 \
     AND (idle_for IS NULL OR idle_for < last_activity_at)";

/// Where an outbox row's body is sealed: at its own id.
pub fn place(tenant_id: &str, id: Uuid) -> Aad<'_> {
    Aad { tenant_id, session_id: id, seq: 0, column: OUTBOX_BODY }
}

pub(crate) type LeasedRow = (String, String, String, Vec<u8>, i64, i64);

/// The lease's arguments: node, now, lease end, how many.
pub(crate) type LeaseArgs = (String, Timestamp, Timestamp, i64);

/// The lease's statement and its parameters.
pub(crate) fn lease_statement(dialect: Dialect, args: &LeaseArgs) -> (&'static str, [Param<'_>; 4]) {
    let (node, now, until, limit) = args;
    let sql = if dialect == Dialect::Postgres { LEASE_SKIP_LOCKED } else { LEASE };
    (sql, [node.into(), until.into(), now.into(), (*limit).into()])
}

pub async fn lease(
    store: &SqlStore,
    node: &str,
    now: Timestamp,
    until: Timestamp,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let (due,): (i64,) = store.reader.one(ANY_DUE, &[(&now).into()]).await?;
    if due == 0 {
        return Ok(Vec::new());
    }
    let args = Arc::new((node.to_owned(), now, until, i64::from(limit)));
    let rows = match &store.backend {
        // On SQLite a direct write: statements in place, no thread hops.
        Backend::Sqlite(sqlite) => crate::sqlite::lease_deliveries(sqlite, args).await?,
        Backend::Postgres(_) => {
            store
                .write(move |mut conn: Conn<'_>| {
                    let args = args.clone();
                    Box::pin(async move {
                        let (sql, params) = lease_statement(conn.dialect(), &args);
                        Ok(conn.all(sql, &params).await?)
                    })
                })
                .await?
        }
    };
    let mut leased = Vec::with_capacity(rows.len());
    for (id, tenant_id, kind, body, attempts, created_at) in rows {
        let Ok(id) = parse_id(&id) else { continue };
        // A row that does not open (its key is gone, it is corrupt) is dead
        // at once: left leased it would come back first in every batch.
        let opened = store.cipher.decrypt_string(&place(&tenant_id, id), &body).map_err(crypto_err);
        match opened.and_then(|body| Ok((body, time_of("created_at", created_at)?))) {
            Ok((body, created_at)) => {
                let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
                leased.push(Delivery { id, tenant_id, kind, body, attempts, created_at });
            }
            Err(e) => {
                tracing::error!(%id, error = %e, "an outbound event cannot be read; it is dead");
                let dead = Settle::Dead { status: None, error: "the stored event cannot be read".into() };
                settle(store, id, node, &dead, now).await?;
            }
        }
    }
    Ok(leased)
}

pub async fn settle(
    store: &SqlStore,
    id: Uuid,
    node: &str,
    settle: &Settle,
    now: Timestamp,
) -> Result<bool, StoreError> {
    Ok(settle_many(store, node, vec![(id, settle.clone())], now).await? == 1)
}

/// Settles' arguments: the node, each row's id and how its try ended, now.
pub(crate) type SettleArgs = (String, Vec<(String, Settle)>, Timestamp);

/// Ends several of `node`'s tries in one transaction; returns how many
/// were still `node`'s to end.
pub async fn settle_many(
    store: &SqlStore,
    node: &str,
    settles: Vec<(Uuid, Settle)>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let settles: Vec<(String, Settle)> = settles.into_iter().map(|(id, s)| (id.to_string(), s)).collect();
    let args = Arc::new((node.to_owned(), settles, now));
    match &store.backend {
        Backend::Sqlite(sqlite) => crate::sqlite::settle_deliveries(sqlite, args).await,
        Backend::Postgres(_) => {
            store
                .write(move |mut conn: Conn<'_>| {
                    let args = args.clone();
                    Box::pin(async move {
                        let (node, settles, now) = &*args;
                        let mut done = 0;
                        for (id, settle) in settles {
                            let (sql, params) = settle_statement(id, node, settle, now);
                            if conn.execute(sql, &params).await? == 0 {
                                continue;
                            }
                            done += 1;
                            if matches!(settle, Settle::Gone) {
                                for (sql, params) in after_gone(id, now) {
                                    conn.execute(sql, &params).await?;
                                }
                            }
                        }
                        Ok(done)
                    })
                })
                .await
        }
    }
}

/// The update that ends a try as `settle` says.
pub(crate) fn settle_statement<'a>(
    id: &'a String,
    node: &'a String,
    settle: &'a Settle,
    now: &'a Timestamp,
) -> (&'static str, Vec<Param<'a>>) {
    let status = |s: &Option<u16>| Param::from(s.map(i64::from));
    let mut params: Vec<Param<'a>> = vec![id.into(), node.into()];
    let sql = match settle {
        Settle::Delivered { status: s } => {
            params.extend([i64::from(*s).into(), now.into()]);
            DELIVERED
        }
        Settle::Retry { at, status: s, error } => {
            params.extend([at.into(), status(s), error.into()]);
            RETRY
        }
        Settle::Dead { status: s, error } => {
            params.extend([status(s), error.into()]);
            DEAD
        }
        Settle::Postpone { at, why } => {
            params.extend([at.into(), why.into()]);
            POSTPONE
        }
        Settle::Gone => GONE,
    };
    (sql, params)
}

/// What a settled `410` (of row `id`) does besides: the endpoint disabled,
/// the tenant's pending rows held.
pub(crate) fn after_gone<'a>(id: &'a String, now: &'a Timestamp) -> [(&'static str, Vec<Param<'a>>); 2] {
    [(DISABLE, vec![id.into(), now.into()]), (HOLD_PENDING, vec![id.into()])]
}

pub async fn release(store: &SqlStore, node: &str) -> Result<u64, StoreError> {
    let node = Arc::new(node.to_owned());
    store
        .write(move |mut conn: Conn<'_>| {
            let node = node.clone();
            Box::pin(async move { Ok(conn.execute(RELEASE, &[node.as_str().into()]).await?) })
        })
        .await
}

type RecordRow = (String, String, String, String, i64, i64, Option<i64>, Option<String>, i64, Option<i64>);

pub async fn list(store: &SqlStore, q: &DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
    let before = q.before.map_or_else(|| TOP.to_owned(), |id| id.to_string());
    let mut params: Vec<Param<'_>> = vec![(&q.tenant_id).into(), (&before).into(), i64::from(q.limit).into()];
    let filter = match q.status {
        Some(status) => {
            params.push(status.as_str().into());
            if status == DeliveryStatus::Delivered {
                LIST_BY_STATUS
            } else {
                LIST_OPEN_BY_STATUS
            }
        }
        None => LIST,
    };
    let rows: Vec<RecordRow> = store.reader.all(&format!("{RECORD_COLUMNS}{filter}"), &params).await?;
    rows.into_iter().map(record).collect()
}

fn record(row: RecordRow) -> Result<DeliveryRecord, StoreError> {
    let (id, kind, session_id, status, attempts, next, last_status, last_error, created_at, delivered_at) =
        row;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("outbox status {status:?}")))?;
    Ok(DeliveryRecord {
        id: parse_id(&id)?,
        kind,
        session_id: parse_id(&session_id)?,
        status,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| time_of("next_attempt_at", next))
            .transpose()?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error,
        created_at: time_of("created_at", created_at)?,
        delivered_at: delivered_at.map(|t| time_of("delivered_at", t)).transpose()?,
    })
}

pub async fn retry(
    store: &SqlStore,
    tenant_id: &str,
    id: Uuid,
    now: Timestamp,
) -> Result<RetryOutcome, StoreError> {
    let args = Arc::new((tenant_id.to_owned(), id.to_string(), now));
    store
        .write(move |mut conn: Conn<'_>| {
            let args = args.clone();
            Box::pin(async move {
                let (tenant, id, now) = &*args;
                let (found,): (i64,) = conn.one(EXISTS, &[id.into(), tenant.into()]).await?;
                if found == 0 {
                    return Ok(RetryOutcome::NotFound);
                }
                let (disabled,): (i64,) = conn.one(IS_DISABLED, &[tenant.into()]).await?;
                if disabled > 0 {
                    return Ok(RetryOutcome::Disabled);
                }
                let done = conn.execute(REQUEUE, &[id.into(), tenant.into(), now.into()]).await?;
                Ok(if done > 0 { RetryOutcome::Queued } else { RetryOutcome::NotFound })
            })
        })
        .await
}

pub async fn resume(store: &SqlStore, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError> {
    let args = Arc::new((tenant_id.to_owned(), now));
    store
        .write(move |mut conn: Conn<'_>| {
            let args = args.clone();
            Box::pin(async move {
                let (tenant, now) = &*args;
                conn.execute(ENABLE, &[tenant.into()]).await?;
                Ok(conn.execute(RESUME, &[tenant.into(), now.into()]).await?)
            })
        })
        .await
}

pub async fn purge(
    store: &SqlStore,
    delivered_before: Timestamp,
    ended_before: Timestamp,
    limit: u32,
) -> Result<u64, StoreError> {
    let args = Arc::new((delivered_before, ended_before, i64::from(limit)));
    store
        .write(move |mut conn: Conn<'_>| {
            let args = args.clone();
            Box::pin(async move {
                let (delivered, ended, limit) = &*args;
                let gone = conn.execute(PURGE_DELIVERED, &[delivered.into(), (*limit).into()]).await?;
                let left = limit - i64::try_from(gone).unwrap_or(*limit);
                let ended =
                    if left > 0 { conn.execute(PURGE_ENDED, &[ended.into(), left.into()]).await? } else { 0 };
                Ok(gone + ended)
            })
        })
        .await
}

pub async fn counts(store: &SqlStore) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = store.reader.all(COUNTS, &[]).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| Some((DeliveryStatus::parse(&s)?, u64::try_from(n).unwrap_or(0))))
        .collect())
}

pub async fn idle_sessions(
    store: &SqlStore,
    tenant_id: &str,
    since: Timestamp,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<IdleSession>, StoreError> {
    let params = [tenant_id.into(), (&since).into(), (&before).into(), i64::from(limit).into()];
    let rows: Vec<(String, String, i64)> = store.reader.all(IDLE, &params).await?;
    rows.into_iter()
        .map(|(id, owner, at)| {
            Ok(IdleSession {
                session_id: parse_id(&id)?,
                owner,
                last_activity_at: time_of("last_activity_at", at)?,
            })
        })
        .collect()
}

pub async fn mark_idle(store: &SqlStore, idle: &IdleSession, event: &NewEvent) -> Result<bool, StoreError> {
    let sealed = seal(store, event)?;
    let args = Arc::new((idle.session_id.to_string(), idle.last_activity_at, sealed));
    store
        .write(move |mut conn: Conn<'_>| {
            let args = args.clone();
            Box::pin(async move {
                let (id, at, sealed) = &*args;
                let marked =
                    conn.execute(MARK_IDLE, &[id.into(), tenant_of(sealed).into(), at.into()]).await?;
                if marked > 0 {
                    let (sql, params) = insert(sealed);
                    conn.execute(sql, &params).await?;
                }
                Ok(marked > 0)
            })
        })
        .await
}

fn parse_id(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("outbox id {text:?}")))
}
