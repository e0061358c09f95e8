//! The SQLite writer: one task owning the one connection that writes, so
//! writes queue in the process instead of fighting over SQLite's file lock.
//! Writes that queue up while a transaction runs are committed together in
//! the next one (group commit): a WAL commit costs about the same for one
//! write as for fifty. Each caller hears back only after its write committed.
//! If a batch fails, it is rolled back and replayed one write at a time, so
//! one bad write never fails the others.
//!
//! Two kinds of write share that connection. A write through sqlx sends each
//! statement to sqlx's thread for the connection and waits to be woken with
//! the result: two thread switches a statement, which cost far more than the
//! statements of a chat turn themselves. So the writes on a turn's path are
//! *direct* (`direct.rs`): while only those come, the writer holds sqlx's
//! handle of the connection ([`sqlx::SqliteConnection::lock_handle`]) and
//! runs their statements in place with rusqlite. An sqlx write hands the
//! connection back to sqlx's thread until it has run. A big batch of direct
//! writes runs on a thread of its own (`offload.rs`), so that it does not
//! stall the other tasks of the worker the writer is on. What the queue
//! carries and how a batch of direct writes commits is `batch.rs`.

use super::batch::{fail_all, Batch, Command, DirectJob, Job};
use super::offload::Offload;
use crate::rows::db_err;
use crate::write::{BoxFuture, WriteError, ATTEMPTS};
use sqlx::{Connection as _, SqliteConnection};
use std::sync::Arc;
use switchboard_core::store::StoreError;
use tokio::sync::{mpsc, oneshot, Notify};

/// Writes waiting beyond this make callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;
/// Prepared statements the direct writes keep.
const STATEMENTS: usize = 64;

/// A handle to the writer task; cheap to share.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Command>,
}

impl Writer {
    /// `wrote` is told of each transaction that writes something (the
    /// checkpointer waits for it).
    pub fn spawn(conn: SqliteConnection, wrote: Arc<Notify>) -> Self {
        let (queue, commands) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, commands, wrote));
        Self { queue }
    }

    /// Runs `work` in a write transaction and returns its output once that
    /// transaction committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work, output: None, reply });
        self.send(Command::Write(job), answer).await
    }

    /// Like [`Writer::write`], for work that runs its statements in place on
    /// the connection (`direct.rs`). It runs on the writer's task, so it
    /// must do nothing but its statements (and cheap work around them).
    pub async fn write_direct<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T, WriteError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work, output: None, reply });
        self.send(Command::Direct(job), answer).await
    }

    async fn send<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.queue.send(command).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commits what is queued and closes the connection.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Command::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Database("the database writer has stopped".into())
}

struct Pending<T, F> {
    work: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Pending<T, F> {
    fn deliver(self) {
        let result = self.output.ok_or_else(|| StoreError::Database("write delivered before it ran".into()));
        // The caller may have gone away; the write stands either way.
        let _ = self.reply.send(result);
    }

    fn fail(self, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
{
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Result<(), WriteError>> {
        Box::pin(async move {
            self.output = Some((self.work)(conn).await?);
            Ok(())
        })
    }

    fn deliver(self: Box<Self>) {
        Pending::deliver(*self)
    }

    fn fail(self: Box<Self>, error: StoreError) {
        Pending::fail(*self, error)
    }
}

impl<T, F> DirectJob for Pending<T, F>
where
    T: Send + 'static,
    F: FnMut(&rusqlite::Connection) -> Result<T, WriteError> + Send + 'static,
{
    fn run(&mut self, db: &rusqlite::Connection) -> Result<(), WriteError> {
        self.output = Some((self.work)(db)?);
        Ok(())
    }

    fn deliver(self: Box<Self>) {
        Pending::deliver(*self)
    }

    fn fail(self: Box<Self>, error: StoreError) {
        Pending::fail(*self, error)
    }
}

async fn run(mut conn: SqliteConnection, mut commands: mpsc::Receiver<Command>, wrote: Arc<Notify>) {
    let mut batch = Batch::default();
    // Made once and kept: its cache of prepared statements lasts as long as
    // the connection. Used only while the writer holds the handle.
    let mut direct: Option<rusqlite::Connection> = None;
    let offload = Offload::start();
    loop {
        match conn.lock_handle().await {
            Ok(mut locked) => {
                if direct.is_none() {
                    direct = in_place(&mut locked)
                        .inspect_err(|e| tracing::error!(error = %e, "the writer's connection cannot be used in place"))
                        .ok();
                }
                // Holds the handle while only direct writes come.
                loop {
                    if !batch.direct.is_empty() {
                        wrote.notify_one();
                    }
                    match direct.take() {
                        Some(db) => {
                            // The batch thread gone mid-batch: a new connection.
                            direct = offload
                                .run(db, &mut batch.direct)
                                .await
                                .or_else(|| in_place(&mut locked).ok());
                        }
                        None => {
                            fail_all(&mut batch.direct, "the writer's connection could not be used in place")
                        }
                    }
                    if batch.stops() || !batch.sqlx.is_empty() {
                        break;
                    }
                    batch.fill(&mut commands).await;
                }
            }
            // sqlx's thread for the connection is gone: every write fails.
            Err(e) => {
                if batch.sqlx.is_empty() && !batch.stops() {
                    batch.fill(&mut commands).await;
                }
                fail_all(&mut batch.direct, &e.to_string());
            }
        }
        if !batch.sqlx.is_empty() {
            wrote.notify_one();
        }
        run_batch(&mut conn, &mut batch.sqlx).await;
        if batch.stops() {
            // Its statements are finalized before the connection closes.
            drop(direct);
            commands.close();
            while let Ok(command) = commands.try_recv() {
                match command {
                    Command::Write(job) => job.fail(stopped()),
                    Command::Direct(job) => job.fail(stopped()),
                    Command::Close(other) => {
                        let _ = other.send(());
                    }
                }
            }
            let _ = conn.close().await;
            if let Some(ack) = batch.closing.take() {
                let _ = ack.send(());
            }
            return;
        }
    }
}

/// A rusqlite connection on sqlx's handle of the writer's connection.
#[allow(unsafe_code)]
fn in_place(locked: &mut sqlx::sqlite::LockedSqliteHandle<'_>) -> rusqlite::Result<rusqlite::Connection> {
    // SAFETY: the handle stays open as long as the sqlx connection, which the
    // writer closes only after dropping this one (rusqlite never closes a
    // handle it did not open). The writer uses it only while it holds the
    // handle, and the connection is serialized (`open`), so SQLite's own
    // mutex would keep even a stray use from both sides safe.
    let db = unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr()) }?;
    // Room for every statement of the direct writes (rusqlite keeps 16).
    db.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(db)
}

async fn run_batch(conn: &mut SqliteConnection, batch: &mut Vec<Box<dyn Job>>) {
    if batch.len() > 1 && all_in_one(conn, batch).await.is_ok() {
        for job in batch.drain(..) {
            job.deliver();
        }
        return;
    }
    for job in batch.drain(..) {
        run_alone(conn, job).await;
    }
}

/// Every job in one transaction; any failure rolls all of them back.
async fn all_in_one(conn: &mut SqliteConnection, batch: &mut [Box<dyn Job>]) -> Result<(), ()> {
    begin(conn).await.map_err(|_| ())?;
    for job in batch.iter_mut() {
        if job.run(conn).await.is_err() {
            rollback(conn).await;
            return Err(());
        }
    }
    if commit(conn).await.is_err() {
        rollback(conn).await;
        return Err(());
    }
    Ok(())
}

/// One job in its own transaction, tried again when a unique index refused it.
async fn run_alone(conn: &mut SqliteConnection, mut job: Box<dyn Job>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(e) = begin(conn).await {
            return job.fail(db_err(e));
        }
        match job.run(conn).await {
            Ok(()) => {
                return match commit(conn).await {
                    Ok(()) => job.deliver(),
                    Err(e) => {
                        rollback(conn).await;
                        job.fail(db_err(e))
                    }
                };
            }
            Err(WriteError::Conflict(_)) if attempt < ATTEMPTS => rollback(conn).await,
            Err(e) => {
                rollback(conn).await;
                return job.fail(e.into_store());
            }
        }
    }
}

/// `IMMEDIATE` takes the write lock up front: a deferred transaction that read
/// first would fail at once (no busy wait) if another process, such as the
/// CLI, wrote in between.
async fn begin(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("BEGIN IMMEDIATE").execute(conn).await.map(drop)
}

async fn commit(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("COMMIT").execute(conn).await.map(drop)
}

/// Errors are ignored: after some failures SQLite has already rolled back.
async fn rollback(conn: &mut SqliteConnection) {
    let _ = sqlx::query("ROLLBACK").execute(conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::direct::write_err;
    use sqlx::ConnectOptions as _;

    async fn writer() -> Writer {
        writer_telling(Arc::default()).await
    }

    async fn writer_telling(wrote: Arc<Notify>) -> Writer {
        let options = sqlx::sqlite::SqliteConnectOptions::new().in_memory(true).serialized(true);
        let mut conn = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, via TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .unwrap();
        Writer::spawn(conn, wrote)
    }

    fn via_sqlx(w: &Writer, id: i64) -> impl std::future::Future<Output = Result<(), StoreError>> + '_ {
        w.write(move |conn: &mut SqliteConnection| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t VALUES ($1, 'sqlx')").bind(id).execute(conn).await?;
                Ok(())
            })
        })
    }

    fn direct(w: &Writer, id: i64) -> impl std::future::Future<Output = Result<(), StoreError>> + '_ {
        w.write_direct(move |db| {
            db.execute("INSERT INTO t VALUES (?1, 'direct')", [id]).map_err(write_err)?;
            Ok(())
        })
    }

    async fn count(w: &Writer, via: &'static str) -> i64 {
        w.write_direct(move |db| {
            db.query_row("SELECT count(*) FROM t WHERE via = ?1", [via], |r| r.get(0)).map_err(write_err)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_and_sqlx_writes_interleave_and_all_commit() {
        let w = writer().await;
        let writes: Vec<_> = (0..200)
            .map(|id| {
                let w = w.clone();
                tokio::spawn(async move {
                    if id % 3 == 0 {
                        via_sqlx(&w, id).await
                    } else {
                        direct(&w, id).await
                    }
                })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(count(&w, "sqlx").await, 67);
        assert_eq!(count(&w, "direct").await, 133);
        w.close().await;
        assert!(direct(&w, 1000).await.is_err(), "a closed writer refuses writes");
    }

    #[tokio::test]
    async fn the_checkpointer_is_told_of_each_kind_of_write_and_of_nothing_else() {
        let wrote = Arc::new(Notify::new());
        let w = writer_telling(wrote.clone()).await;
        let told = || tokio::time::timeout(std::time::Duration::from_millis(200), wrote.notified());
        assert!(told().await.is_err(), "nothing written yet");
        direct(&w, 1).await.unwrap();
        assert!(told().await.is_ok(), "a direct write");
        via_sqlx(&w, 2).await.unwrap();
        assert!(told().await.is_ok(), "a write through sqlx");
        assert!(told().await.is_err(), "told once a write");
    }

    #[tokio::test]
    async fn a_failing_direct_write_fails_alone_in_its_batch() {
        let w = writer().await;
        direct(&w, 1).await.unwrap();
        // Queued together, so they share a batch: the duplicate key fails,
        // the others commit.
        let (a, dup, b) = tokio::join!(direct(&w, 2), direct(&w, 1), direct(&w, 3));
        a.unwrap();
        b.unwrap();
        assert!(dup.is_err());
        assert_eq!(count(&w, "direct").await, 3);
        // A refused write leaves no transaction open: sqlx writes still work.
        via_sqlx(&w, 4).await.unwrap();
        assert_eq!(count(&w, "sqlx").await, 1);
    }

    /// A direct write that answers with the name of the thread it ran on.
    fn direct_where(
        w: &Writer,
        id: i64,
    ) -> impl std::future::Future<Output = Result<String, StoreError>> + '_ {
        w.write_direct(move |db| {
            db.execute("INSERT INTO t VALUES (?1, 'direct')", [id]).map_err(write_err)?;
            Ok(std::thread::current().name().unwrap_or_default().to_owned())
        })
    }

    #[tokio::test]
    async fn a_big_batch_runs_off_the_runtime_and_a_failing_write_still_fails_alone() {
        let w = writer().await;
        direct(&w, 1).await.unwrap();
        // Five queued together: one batch, big enough for the batch thread.
        let (a, b, dup, c, d) = tokio::join!(
            direct_where(&w, 2),
            direct_where(&w, 3),
            direct_where(&w, 1),
            direct_where(&w, 4),
            direct_where(&w, 5)
        );
        assert!(dup.is_err(), "the duplicate key fails");
        for ran_on in [a, b, c, d] {
            assert_eq!(ran_on.unwrap(), "sqlite-batches");
        }
        // A write alone stays in place, on the runtime's thread.
        assert_ne!(direct_where(&w, 6).await.unwrap(), "sqlite-batches");
        assert_eq!(count(&w, "direct").await, 6);
        via_sqlx(&w, 7).await.unwrap();
        assert_eq!(count(&w, "sqlx").await, 1);
    }

    fn panics(w: &Writer) -> impl std::future::Future<Output = Result<(), StoreError>> + '_ {
        w.write_direct(|db| -> Result<(), WriteError> {
            db.execute("INSERT INTO t VALUES (100, 'direct')", []).map_err(write_err)?;
            panic!("a bug in a write");
        })
    }

    #[tokio::test]
    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on() {
        let w = writer().await;
        // On the batch thread, in a batch of four.
        let (a, b, bad, c) = tokio::join!(direct(&w, 1), direct(&w, 2), panics(&w), direct(&w, 3));
        for result in [a, b, bad, c] {
            assert!(result.is_err(), "the batch's transaction is rolled back and each caller told");
        }
        // Alone, on the writer's task.
        assert!(panics(&w).await.is_err());
        assert_eq!(count(&w, "direct").await, 0, "nothing of either was written");
        let (a, b, c, d) = tokio::join!(direct(&w, 1), direct(&w, 2), direct(&w, 3), direct(&w, 4));
        for result in [a, b, c, d] {
            result.unwrap();
        }
        direct(&w, 5).await.unwrap();
        via_sqlx(&w, 6).await.unwrap();
        assert_eq!(count(&w, "direct").await, 5);
    }
}
