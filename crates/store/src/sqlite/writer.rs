//! The SQLite writer: one task owning the one connection that writes, so
//! writes queue in the process instead of fighting over SQLite's file lock.
//! Writes that queue up while a transaction runs are committed together in
//! the next one (group commit): a WAL commit costs about the same for one
//! write as for fifty. Each caller hears back only after its write committed.
//! If a batch fails, it is rolled back and replayed one write at a time, so
//! one bad write never fails the others.
//!
//! Every statement is a round trip to sqlx's thread for the connection, which
//! costs far more than the statement itself, so a write on the hot path can
//! bracket itself ([`Bracket`]): run alone, its first statement opens the
//! transaction and its last commits it, instead of separate `BEGIN` and
//! `COMMIT` round trips.

use crate::rows::db_err;
use crate::write::{BoxFuture, WriteError, ATTEMPTS};
use sqlx::{Connection as _, SqliteConnection};
use switchboard_core::store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Most writes in one transaction; bounds how long the first one waits.
const MAX_BATCH: usize = 128;
/// Writes waiting beyond this make callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

/// A handle to the writer task; cheap to share.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Command>,
}

/// How a self-bracketing write stands with its transaction. Inside a batch
/// the writer owns the transaction and the statements run as they are; alone,
/// the first statement the write runs must be the `alone` text of
/// [`Bracket::opening`] (it begins the transaction) and, on the write's
/// normal path, its last the `alone` text of [`Bracket::closing`] (it
/// commits). A write that returns without the closing statement is committed
/// by the writer; one that fails is rolled back by it.
#[derive(Debug)]
pub struct Bracket {
    alone: bool,
    opened: bool,
    committed: bool,
}

impl Bracket {
    fn new(alone: bool) -> Self {
        Self { alone, opened: false, committed: false }
    }

    /// The text of the write's first statement: `alone` starts with
    /// `BEGIN IMMEDIATE; `.
    pub fn opening(&mut self, inside: &'static str, alone: &'static str) -> &'static str {
        if self.alone {
            self.opened = true;
            alone
        } else {
            inside
        }
    }

    /// The text of the write's last statement: `alone` ends with `; COMMIT`.
    pub fn closing(&mut self, inside: &'static str, alone: &'static str) -> &'static str {
        if self.alone {
            self.committed = true;
            alone
        } else {
            inside
        }
    }

    /// The text of a write that is one statement text: `alone` starts with
    /// `BEGIN IMMEDIATE; ` and ends with `; COMMIT`.
    pub fn only(&mut self, inside: &'static str, alone: &'static str) -> &'static str {
        self.opening(inside, alone);
        self.closing(inside, alone)
    }

    /// Whether the writer still has to commit after the write returned.
    fn open(&self) -> bool {
        self.opened && !self.committed
    }
}

enum Command {
    Write(Box<dyn Job>),
    /// Finish what is queued, close the connection, then acknowledge.
    Close(oneshot::Sender<()>),
}

impl Writer {
    pub fn spawn(conn: SqliteConnection) -> Self {
        let (queue, commands) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, commands));
        Self { queue }
    }

    /// Runs `work` in a write transaction and returns its output once that
    /// transaction committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, WriteError>> + Send + 'static,
    {
        self.enqueue(false, bracketless(work)).await
    }

    /// Like [`Writer::write`], for work that opens and commits its own
    /// transaction when it runs alone (see [`Bracket`]).
    pub async fn write_bracketed<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection, &'c mut Bracket) -> BoxFuture<'c, Result<T, WriteError>>
            + Send
            + 'static,
    {
        self.enqueue(true, work).await
    }

    async fn enqueue<T, F>(&self, brackets_itself: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut SqliteConnection, &'c mut Bracket) -> BoxFuture<'c, Result<T, WriteError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work, brackets_itself, output: None, reply });
        self.queue.send(Command::Write(job)).await.map_err(|_| stopped())?;
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

/// Pins down the higher-ranked signature of a closure that ignores the bracket.
fn bracketless<T, F>(
    mut work: F,
) -> impl for<'c> FnMut(&'c mut SqliteConnection, &'c mut Bracket) -> BoxFuture<'c, Result<T, WriteError>>
where
    F: for<'c> FnMut(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, WriteError>>,
{
    move |conn, _| work(conn)
}

fn stopped() -> StoreError {
    StoreError::Database("the database writer has stopped".into())
}

/// A queued write, type-erased so one queue carries writes of every output.
trait Job: Send {
    /// Whether, alone, the work opens and commits its own transaction.
    fn brackets_itself(&self) -> bool;
    /// Runs the work; keeps its output for `deliver`.
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
        bracket: &'c mut Bracket,
    ) -> BoxFuture<'c, Result<(), WriteError>>;
    /// After the commit: hands the kept output to the caller.
    fn deliver(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

struct Pending<T, F> {
    work: F,
    brackets_itself: bool,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: for<'c> FnMut(&'c mut SqliteConnection, &'c mut Bracket) -> BoxFuture<'c, Result<T, WriteError>>
        + Send
        + 'static,
{
    fn brackets_itself(&self) -> bool {
        self.brackets_itself
    }

    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
        bracket: &'c mut Bracket,
    ) -> BoxFuture<'c, Result<(), WriteError>> {
        Box::pin(async move {
            let output = (self.work)(conn, bracket).await?;
            self.output = Some(output);
            Ok(())
        })
    }

    fn deliver(self: Box<Self>) {
        let result = self.output.ok_or_else(|| StoreError::Database("write delivered before it ran".into()));
        // The caller may have gone away; the write stands either way.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

async fn run(mut conn: SqliteConnection, mut commands: mpsc::Receiver<Command>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = commands.recv().await {
        let mut closing = None;
        match first {
            Command::Write(job) => batch.push(job),
            Command::Close(ack) => closing = Some(ack),
        }
        while closing.is_none() && batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(Command::Write(job)) => batch.push(job),
                Ok(Command::Close(ack)) => closing = Some(ack),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch).await;
        if let Some(ack) = closing {
            commands.close();
            while let Ok(command) = commands.try_recv() {
                match command {
                    Command::Write(job) => job.fail(stopped()),
                    Command::Close(other) => {
                        let _ = other.send(());
                    }
                }
            }
            let _ = conn.close().await;
            let _ = ack.send(());
            return;
        }
    }
    let _ = conn.close().await;
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
        if job.run(conn, &mut Bracket::new(false)).await.is_err() {
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
        let mut bracket = Bracket::new(job.brackets_itself());
        if !bracket.alone {
            if let Err(e) = begin(conn).await {
                return job.fail(db_err(e));
            }
            bracket.opened = true;
        }
        match job.run(conn, &mut bracket).await {
            Ok(()) if !bracket.open() => return job.deliver(),
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

/// Errors are ignored: after some failures SQLite has already rolled back,
/// and a self-bracketing write may have failed before it began.
async fn rollback(conn: &mut SqliteConnection) {
    let _ = sqlx::query("ROLLBACK").execute(conn).await;
}
