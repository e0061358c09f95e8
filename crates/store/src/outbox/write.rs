//! Writing events (SPEC §19) with the changes that cause them: sealed
//! before the write ([`seal`]), inserted in the change's transaction
//! ([`insert`], [`write_event`]), leased to this node when its delivery
//! worker has room for them ([`seal_leased`]) and handed to it after the
//! commit ([`handed`]); or enqueued on their own ([`enqueue`]).

use super::place;
use crate::db::{Conn, Param};
use crate::rows::crypto_err;
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::outbound::{DeliveryStatus, NewEvent};
use switchboard_core::store::outbox::Reserved;
use switchboard_core::store::StoreError;
use switchboard_core::time::Timestamp;

/// `$1` id, `$2` tenant, `$3` session, `$4` type, `$5` body (sealed), `$6`
/// now: pending, or held while the tenant's endpoint is disabled.
const INSERT: &str = "INSERT INTO outbox \
     (id, tenant_id, session_id, type, body, status, attempts, next_attempt_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, CASE WHEN EXISTS \
     (SELECT 1 FROM event_endpoints_disabled WHERE tenant_id = $2) THEN 'held' ELSE 'pending' END, \
     0, $6, $6)";

/// The same, leased to `$7` until `$8` unless held (see [`Reserved`]);
/// returns the status written. On PostgreSQL: one round trip.
const INSERT_LEASED: &str = "INSERT INTO outbox \
     (id, tenant_id, session_id, type, body, status, attempts, next_attempt_at, created_at, \
     lease_node, lease_until) \
     SELECT $1, $2, $3, $4, $5, CASE WHEN held THEN 'held' ELSE 'pending' END, 0, $6, $6, \
     CASE WHEN held THEN NULL ELSE $7 END, CASE WHEN held THEN NULL ELSE $8 END \
     FROM (SELECT EXISTS (SELECT 1 FROM event_endpoints_disabled WHERE tenant_id = $2) AS held) AS d \
     RETURNING status";

/// Whether the tenant's endpoint is disabled: `$1` tenant.
pub(crate) const DISABLED: &str = "SELECT 1 FROM event_endpoints_disabled WHERE tenant_id = $1";
/// The same row with its status and lease given (`$7` status, `$8` node,
/// `$9` lease end), for a writer that read [`DISABLED`] in its transaction.
const INSERT_KNOWN: &str = "INSERT INTO outbox \
     (id, tenant_id, session_id, type, body, status, attempts, next_attempt_at, created_at, \
     lease_node, lease_until) VALUES ($1, $2, $3, $4, $5, $7, 0, $6, $6, $8, $9)";

/// An event with its body sealed, ready to insert; leased to this node
/// when its worker had room for it (the place is held apart, in
/// [`Reserved`], and the event handed over once its write committed).
#[derive(Debug, Clone)]
pub struct Sealed {
    id: String,
    tenant_id: String,
    session_id: String,
    kind: &'static str,
    body: Vec<u8>,
    at: Timestamp,
    lease: Option<(Arc<str>, Timestamp)>,
}

/// Seals `event`'s body for [`insert`], unleased.
pub fn seal(store: &SqlStore, event: &NewEvent) -> Result<Sealed, StoreError> {
    let body =
        store.cipher.encrypt_str(&place(&event.tenant_id, event.id), &event.body).map_err(crypto_err)?;
    Ok(Sealed {
        id: event.id.to_string(),
        tenant_id: event.tenant_id.clone(),
        session_id: event.session_id.to_string(),
        kind: event.kind.as_str(),
        body,
        at: event.at,
        lease: None,
    })
}

/// Seals an optional event (most changes have none), unleased: the
/// worker finds it at its next look (the rare events: holds, closes).
pub fn seal_opt(store: &SqlStore, event: Option<&NewEvent>) -> Result<Option<Sealed>, StoreError> {
    event.map(|e| seal(store, e)).transpose()
}

/// Seals an optional event leased to this node when its worker has room
/// (a turn's end, a new session): then the place taken comes with it, for
/// [`handed`] after the write.
pub fn seal_leased(
    store: &SqlStore,
    event: Option<&NewEvent>,
) -> Result<(Option<Sealed>, Option<Reserved>), StoreError> {
    let Some(event) = event else { return Ok((None, None)) };
    let mut sealed = seal(store, event)?;
    let reserved = store.handoff.get().and_then(|handoff| handoff.reserve(event));
    sealed.lease = reserved.as_ref().map(Reserved::lease);
    Ok((Some(sealed), reserved))
}

/// After the write: hands `event` to this node's worker if it was written
/// leased (`leased`, from [`write_event`] or `sqlite::write_event`).
pub fn handed(reserved: Option<Reserved>, event: Option<&NewEvent>, leased: bool) {
    if let (Some(reserved), Some(event), true) = (reserved, event, leased) {
        reserved.hand(event);
    }
}

/// The statement that writes a sealed event, for a change's transaction;
/// a leased one returns the status written (see [`is_leased`]).
pub fn insert(e: &Sealed) -> (&'static str, Vec<Param<'_>>) {
    let mut params = row_params(e);
    match &e.lease {
        Some((node, until)) => {
            params.extend([(&**node).into(), until.into()]);
            (INSERT_LEASED, params)
        }
        None => (INSERT, params),
    }
}

/// The insert of a leased event whose tenant's endpoint is known to be
/// disabled (`held`: written held, unleased) or not (SQLite's writer, the
/// only one, reads that first: cheaper there than `RETURNING`).
pub(crate) fn insert_known(e: &Sealed, held: bool) -> (&'static str, Vec<Param<'_>>) {
    let mut params = row_params(e);
    let lease = e.lease.as_ref().filter(|_| !held);
    let status = if held { DeliveryStatus::Held } else { DeliveryStatus::Pending };
    params.extend([
        status.as_str().into(),
        lease.map(|(node, _)| &**node).into(),
        Param::Int(lease.map(|(_, until)| until.timestamp_millis())),
    ]);
    (INSERT_KNOWN, params)
}

/// `$1`–`$6` of every insert.
fn row_params(e: &Sealed) -> Vec<Param<'_>> {
    vec![
        (&e.id).into(),
        (&e.tenant_id).into(),
        (&e.session_id).into(),
        e.kind.into(),
        (&e.body).into(),
        (&e.at).into(),
    ]
}

/// The tenant a sealed event is of.
pub(crate) fn tenant_of(e: &Sealed) -> &str {
    &e.tenant_id
}

/// Writes a sealed event in a change's transaction; whether it was
/// written leased to this node (not held), to hand over after the commit.
pub async fn write_event(conn: &mut Conn<'_>, e: &Sealed) -> Result<bool, sqlx::Error> {
    let (sql, params) = insert(e);
    if e.lease.is_none() {
        conn.execute(sql, &params).await?;
        return Ok(false);
    }
    let (status,): (String,) = conn.one(sql, &params).await?;
    Ok(status == DeliveryStatus::Pending.as_str())
}

/// Whether a sealed event's insert returns its status (see [`insert`]).
pub fn is_leased(e: &Sealed) -> bool {
    e.lease.is_some()
}

pub async fn enqueue(store: &SqlStore, events: &[NewEvent]) -> Result<(), StoreError> {
    let sealed: Vec<Sealed> = events.iter().map(|e| seal(store, e)).collect::<Result<_, _>>()?;
    let sealed = Arc::new(sealed);
    store
        .write(move |mut conn: Conn<'_>| {
            let sealed = sealed.clone();
            Box::pin(async move {
                for event in sealed.iter() {
                    let (sql, params) = insert(event);
                    conn.execute(sql, &params).await?;
                }
                Ok(())
            })
        })
        .await
}
