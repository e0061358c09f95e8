//! The PostgreSQL backend, for several nodes sharing one database: a turn
//! locks its session row (`FOR UPDATE`) before choosing seqs, so nodes never
//! hand out the same seq or start two answers at once.

use crate::crypto::Cipher;
use crate::rows::{db_err, encrypt_content, to_json, MessageRow, TurnCheckRow, TurnSessionRow, TurnStateRow};
use crate::schema::Schema;
use crate::store_impl::impl_store;
use crate::turn::{self, bind_turn_writes, Decision, RawTurn};
use crate::write::{BoxFuture, WriteError, ATTEMPTS};
use crate::{sql, StoreOpenError, StoreOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::PgConnection;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per node; the database's `max_connections` must cover every
/// node's pool.
const MAX_CONNECTIONS: u32 = 16;

pub struct PgStore {
    /// Reads and writes share one pool: PostgreSQL has no single writer.
    reader: PgPool,
    cipher: Arc<Cipher>,
}

impl PgStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreOpenError> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        Ok(Self { reader: pool, cipher: Arc::new(Cipher::new(options.keyring.clone())) })
    }

    /// Runs `work` in a transaction of its own, again (in a new one) when a
    /// unique index refused it.
    async fn write<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.reader.begin().await.map_err(db_err)?;
            match work(&mut tx).await {
                Ok(output) => {
                    tx.commit().await.map_err(db_err)?;
                    return Ok(output);
                }
                // Dropping the transaction rolls it back.
                Err(WriteError::Conflict(_)) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into_store()),
            }
        }
    }

    /// A single statement is atomic by itself: no BEGIN and COMMIT round trips.
    async fn write_one<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.reader.acquire().await.map_err(db_err)?;
            match work(&mut conn).await {
                Ok(output) => return Ok(output),
                Err(WriteError::Conflict(_)) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into_store()),
            }
        }
    }
}

impl_store!(
    PgStore,
    conn = PgConnection,
    dialect = sql::postgres,
    begin_turn = begin_turn,
    checkpoint = checkpoint,
    finish_message = finish_message,
    messages_after = messages_after
);
crate::rotate::backend::impl_rotation!(PgStore, conn = PgConnection, select = select_locking);
crate::retention::impl_retention!(PgStore, conn = PgConnection, dialect = crate::retention::postgres);

/// A replay's page, oldest first.
async fn messages_after(
    store: &PgStore,
    tenant_id: &str,
    session_id: uuid::Uuid,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<switchboard_core::Message>, StoreError> {
    let rows: Vec<MessageRow> = sqlx::query_as(sql::postgres::MESSAGES_AFTER)
        .bind(session_id.to_string())
        .bind(tenant_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&store.reader)
        .await
        .map_err(db_err)?;
    crate::rows::decode_messages(rows, &store.cipher)
}

/// One transaction that locks the session row, decides and writes; then the
/// history, read after the commit.
async fn begin_turn(store: &PgStore, turn: &BeginTurn) -> Result<BeginTurnOutcome, StoreError> {
    let shared = Arc::new(turn.clone());
    let cipher = store.cipher.clone();
    let raw = store
        .write(move |conn: &mut PgConnection| {
            let (turn, cipher) = (shared.clone(), cipher.clone());
            Box::pin(async move { begin_turn_in(conn, &turn, &cipher).await })
        })
        .await?;
    // Committed, so any connection sees the same history.
    let earlier: Vec<MessageRow> = match &raw {
        RawTurn::Started { user, .. } if turn::earlier_needed(turn) > 0 => sqlx::query_as(sql::HISTORY)
            .bind(turn.session_id.to_string())
            .bind(user.seq - 1)
            .bind(turn::earlier_needed(turn))
            .bind(crate::rows::millis(&turn.retained_since))
            .fetch_all(&store.reader)
            .await
            .map_err(db_err)?,
        _ => Vec::new(),
    };
    raw.decode(turn, earlier, &store.cipher)
}

async fn begin_turn_in(
    conn: &mut PgConnection,
    turn: &BeginTurn,
    cipher: &Cipher,
) -> Result<RawTurn, WriteError> {
    let session_id = turn.session_id.to_string();
    let state = turn_state(conn, &session_id, &turn.tenant_id, turn.client_message_id.as_deref()).await?;
    let (latest_seq, human) = match turn::decide(state, &turn.owner)? {
        Decision::Refused(raw) => return Ok(raw),
        Decision::Duplicate => {
            let found: Vec<MessageRow> = sqlx::query_as(sql::FIND_DUPLICATE)
                .bind(&session_id)
                .bind(&turn.client_message_id)
                .fetch_all(&mut *conn)
                .await?;
            return Ok(RawTurn::Duplicate { found });
        }
        Decision::Write { latest_seq, human } => (latest_seq, human),
    };
    // Only a turn with an answer spends anything.
    if let Some(r) = turn.budget.as_ref().filter(|_| !human) {
        if let Some(spent) = crate::usage::postgres::reserve(conn, r).await? {
            return Ok(RawTurn::QuotaExceeded(spent));
        }
    }
    let written = turn::new_messages(turn, latest_seq, !human, cipher)?;
    let sql =
        if human { sql::postgres::ADVANCE_AND_INSERT_USER } else { sql::postgres::ADVANCE_AND_INSERT_BOTH };
    let purge = turn::purge_bound(turn.max_messages, latest_seq, written.len());
    bind_turn_writes!(sqlx::query(sql), latest_seq, &session_id, turn, &written)
        .bind(purge)
        .execute(&mut *conn)
        .await?;
    Ok(turn::written(written, human)?)
}

/// Saves a streaming answer's text so far and renews its lease.
async fn checkpoint(store: &PgStore, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
    let c = checkpoint;
    let content = encrypt_content(&store.cipher, &c.tenant_id, c.session_id, c.seq, &c.content)?;
    let shared = Arc::new((checkpoint.clone(), content));
    store
        .write_one(move |conn: &mut PgConnection| {
            let shared = shared.clone();
            Box::pin(async move {
                let (c, content) = &*shared;
                let done = crate::turn::bind_checkpoint!(sqlx::query(sql::CHECKPOINT), c, content)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
}

/// Ends a streaming answer; with a usage record, settles the turn's budget
/// and records its usage in the same transaction.
async fn finish_message(store: &PgStore, finish: &Finish) -> Result<bool, StoreError> {
    let f = finish;
    let content = encrypt_content(&store.cipher, &f.tenant_id, f.session_id, f.seq, &f.content)?;
    let shared = Arc::new((finish.clone(), content, to_json(&finish.meta)?));
    store
        .write(move |conn: &mut PgConnection| {
            let shared = shared.clone();
            Box::pin(async move {
                let (f, content, meta) = &*shared;
                let done =
                    crate::turn::bind_finish!(sqlx::query(sql::postgres::FINISH_AND_TOUCH), f, content, meta)
                        .execute(&mut *conn)
                        .await?;
                let finished = done.rows_affected() > 0;
                crate::usage::postgres::record(conn, f, finished).await?;
                Ok(finished)
            })
        })
        .await
}

/// Locks the session row first, then checks its messages in a statement of
/// its own, which sees what a turn that held the lock before committed.
async fn turn_state(
    conn: &mut PgConnection,
    session_id: &str,
    tenant_id: &str,
    client_message_id: Option<&str>,
) -> Result<Option<TurnStateRow>, sqlx::Error> {
    let session: Option<TurnSessionRow> = sqlx::query_as(sql::postgres::LOCK_SESSION)
        .bind(session_id)
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(session) = session else {
        return Ok(None);
    };
    let check: TurnCheckRow = sqlx::query_as(sql::postgres::TURN_CHECK)
        .bind(session_id)
        .bind(client_message_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some(TurnStateRow { session, check }))
}

#[async_trait::async_trait]
impl Schema for PgStore {
    fn migrator(&self) -> &'static Migrator {
        &MIGRATOR
    }

    fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    async fn run_migrations(&self) -> Result<(), StoreOpenError> {
        // sqlx holds an advisory lock meanwhile, so nodes starting together
        // migrate once.
        MIGRATOR.run(&self.reader).await.map_err(|e| StoreOpenError::Migrate(e.to_string()))
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>, StoreOpenError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.reader)
            .await
            .map_err(open_err)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(sql::APPLIED_MIGRATIONS).fetch_all(&self.reader).await.map_err(open_err)
    }

    async fn canaries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreOpenError> {
        sqlx::query_as(sql::LIST_CANARIES).fetch_all(&self.reader).await.map_err(open_err)
    }

    async fn add_canary(&self, kid: &str, canary: &[u8], now_ms: i64) -> Result<(), StoreOpenError> {
        sqlx::query(sql::INSERT_CANARY)
            .bind(kid)
            .bind(canary)
            .bind(now_ms)
            .execute(&self.reader)
            .await
            .map_err(open_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
    }
}

fn open_err(e: sqlx::Error) -> StoreOpenError {
    StoreOpenError::Database(e.to_string())
}
