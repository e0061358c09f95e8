//! A visitor's or user's sessions: creating one, reading it, paging
//! through an owner's, and deleting one with its messages.

use crate::crypto::Aad;
use crate::db::{Conn, Param};
use crate::rows::{crypto_err, open_context, session_columns, to_json, SessionRow, METADATA};
use crate::store::{Backend, SqlStore};
use crate::write::{BoxFuture, WriteError};
use std::sync::Arc;
use switchboard_core::model::{Session, SessionStatus};
use switchboard_core::store::{NewSession, SessionCursor, StoreError};
use uuid::Uuid;

/// `$1` id, `$2` tenant, `$3` owner, `$4` now, `$5` metadata (encrypted).
pub(crate) const INSERT: &str = "INSERT INTO sessions (id, tenant_id, owner, status, created_at, \
     last_activity_at, message_count, latest_seq, admin_assisted, takeover, metadata) \
     VALUES ($1, $2, $3, 'active', $4, $4, 0, 0, FALSE, NULL, $5)";
/// `$1` id, `$2` tenant.
pub const GET: &str =
    concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1 AND tenant_id = $2");
/// Keyset page of tenant `$1`'s owner `$2`: strictly after `($3, $4)` in
/// (last_activity_at, id) descending, `$5` at most.
const LIST: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE tenant_id = $1 AND owner = $2 AND (last_activity_at, id) < ($3, $4) \
     ORDER BY last_activity_at DESC, id DESC LIMIT $5"
);
/// `$1` id, `$2` tenant.
const CONTEXT_OF: &str = "SELECT context FROM sessions WHERE id = $1 AND tenant_id = $2";
/// `$1` id, `$2` tenant, both statements.
const DELETE_MESSAGES: &str = "DELETE FROM messages WHERE session_id = $1 AND tenant_id = $2";
const DELETE: &str = "DELETE FROM sessions WHERE id = $1 AND tenant_id = $2";
/// Its events go with it, sent or not: they would name a deleted session.
const DELETE_EVENTS: &str = "DELETE FROM outbox WHERE session_id = $1 AND tenant_id = $2";

pub(crate) type NewRow = (NewSession, Option<Vec<u8>>, Option<crate::outbox::Sealed>);

/// The new session's row: [`INSERT`]'s parameters.
pub(crate) fn insert_params(row: &NewRow) -> [Param<'_>; 5] {
    let (new, metadata, _) = row;
    [new.id.into(), (&new.tenant_id).into(), (&new.owner).into(), (&new.now).into(), metadata.into()]
}

/// The write of a new session and its `session.created`, if any; whether
/// the event was written leased to this node.
fn insert_session(
    row: Arc<NewRow>,
) -> impl for<'c> FnMut(Conn<'c>) -> BoxFuture<'c, Result<bool, WriteError>> + Send + 'static {
    move |mut conn: Conn<'_>| {
        let row = row.clone();
        Box::pin(async move {
            conn.execute(INSERT, &insert_params(&row)).await?;
            match &row.2 {
                Some(event) => Ok(crate::outbox::write_event(&mut conn, event).await?),
                None => Ok(false),
            }
        })
    }
}

pub async fn create(store: &SqlStore, new: &NewSession) -> Result<Session, StoreError> {
    let metadata = match &new.metadata {
        Some(value) => {
            let at = Aad { tenant_id: &new.tenant_id, session_id: new.id, seq: 0, column: METADATA };
            Some(store.cipher.encrypt_str(&at, &to_json(value)?).map_err(crypto_err)?)
        }
        None => None,
    };
    let (event, reserved) = crate::outbox::seal_leased(store, new.event.as_ref())?;
    let with_event = event.is_some();
    let row = Arc::new((new.clone(), metadata, event));
    let leased = match &store.backend {
        // A direct write on SQLite: no statement hops to sqlx's thread.
        Backend::Sqlite(sqlite) => crate::sqlite::create_session(sqlite, row).await?,
        // One statement needs no transaction of its own; with the event, two do.
        Backend::Postgres(_) if with_event => store.write(insert_session(row)).await?,
        Backend::Postgres(_) => store.write_one(insert_session(row)).await?,
    };
    crate::outbox::handed(reserved, new.event.as_ref(), leased);
    Ok(Session {
        id: new.id,
        tenant_id: new.tenant_id.clone(),
        status: SessionStatus::Active,
        created_at: new.now,
        last_activity_at: new.now,
        message_count: 0,
        admin_assisted: false,
        latest_seq: 0,
        takeover: None,
        owner: new.owner.clone(),
    })
}

pub async fn get(store: &SqlStore, tenant_id: &str, id: Uuid) -> Result<Option<Session>, StoreError> {
    let row: Option<SessionRow> = store.reader.optional(GET, &[id.into(), tenant_id.into()]).await?;
    row.map(SessionRow::decode).transpose()
}

/// The latest page context of a session of the tenant (SPEC §16), if it
/// has one; read apart from the session, as only agents and tools need it.
pub async fn context(
    store: &SqlStore,
    tenant_id: &str,
    id: Uuid,
) -> Result<Option<serde_json::Value>, StoreError> {
    let row: Option<(Option<Vec<u8>>,)> =
        store.reader.optional(CONTEXT_OF, &[id.into(), tenant_id.into()]).await?;
    match row.and_then(|(sealed,)| sealed) {
        Some(sealed) => open_context(&store.cipher, tenant_id, id, &sealed).map(Some),
        None => Ok(None),
    }
}

pub async fn list(
    store: &SqlStore,
    tenant_id: &str,
    owner: &str,
    limit: u32,
    after: Option<&SessionCursor>,
) -> Result<Vec<Session>, StoreError> {
    // No cursor: start above every real position.
    let (at, id) = after
        .map_or((i64::MAX, String::new()), |c| (c.last_activity_at.timestamp_millis(), c.id.to_string()));
    let params = [tenant_id.into(), owner.into(), at.into(), id.into(), i64::from(limit).into()];
    let rows: Vec<SessionRow> = store.reader.all(LIST, &params).await?;
    rows.into_iter().map(SessionRow::decode).collect()
}

pub async fn delete(store: &SqlStore, tenant_id: &str, id: Uuid) -> Result<bool, StoreError> {
    let key = Arc::new((id.to_string(), tenant_id.to_owned()));
    store
        .write(move |mut conn: Conn<'_>| {
            let key = key.clone();
            Box::pin(async move {
                let (id, tenant_id) = &*key;
                let params = [id.into(), tenant_id.into()];
                conn.execute(DELETE_MESSAGES, &params).await?;
                conn.execute(DELETE_EVENTS, &params).await?;
                Ok(conn.execute(DELETE, &params).await? > 0)
            })
        })
        .await
}
