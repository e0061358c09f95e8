//! What the writer (`writer.rs`) takes off its queue and how a batch of
//! direct writes runs: the queued commands, a batch of them, and the
//! transactions of direct writes (all in one, or, when that fails, each
//! alone), wherever they run: on the writer's task or its batch thread
//! (`offload.rs`).

use super::direct::write_err;
use crate::write::{BoxFuture, WriteError, ATTEMPTS};
use sqlx::SqliteConnection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use switchboard_core::store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Most writes in one transaction; bounds how long the first one waits.
const MAX_BATCH: usize = 128;

pub(super) enum Command {
    Write(Box<dyn Job>),
    Direct(Box<dyn DirectJob>),
    /// Finish what is queued, close the connection, then acknowledge.
    Close(oneshot::Sender<()>),
}

/// A queued write through sqlx, type-erased so one queue carries writes of
/// every output.
pub(super) trait Job: Send {
    /// Runs the work; keeps its output for `deliver`.
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Result<(), WriteError>>;
    /// After the commit: hands the kept output to the caller.
    fn deliver(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

/// A queued direct write.
pub(super) trait DirectJob: Send {
    fn run(&mut self, db: &rusqlite::Connection) -> Result<(), WriteError>;
    fn deliver(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

/// Writes taken off the queue together.
#[derive(Default)]
pub(super) struct Batch {
    pub sqlx: Vec<Box<dyn Job>>,
    pub direct: Vec<Box<dyn DirectJob>>,
    pub closing: Option<oneshot::Sender<()>>,
    /// Every handle to the writer is gone.
    pub ended: bool,
}

impl Batch {
    fn add(&mut self, command: Command) {
        match command {
            Command::Write(job) => self.sqlx.push(job),
            Command::Direct(job) => self.direct.push(job),
            Command::Close(ack) => self.closing = Some(ack),
        }
    }

    fn len(&self) -> usize {
        self.sqlx.len() + self.direct.len()
    }

    pub fn stops(&self) -> bool {
        self.closing.is_some() || self.ended
    }

    /// Waits for a command, then takes whatever else is queued.
    pub async fn fill(&mut self, commands: &mut mpsc::Receiver<Command>) {
        match commands.recv().await {
            Some(command) => self.add(command),
            None => self.ended = true,
        }
        while !self.stops() && self.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => self.add(command),
                Err(_) => break,
            }
        }
    }
}

pub(super) fn fail_all(jobs: &mut Vec<Box<dyn DirectJob>>, why: &str) {
    for job in jobs.drain(..) {
        job.fail(StoreError::Database(why.to_owned()));
    }
}

/// Runs a transaction control statement, prepared once per connection:
/// `execute_batch` would parse it again for every write.
pub(super) fn control(db: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    db.prepare_cached(sql)?.execute([]).map(drop)
}

/// Direct writes: all in one transaction, or, when that fails, each alone.
/// A write that panics fails its batch's writes not yet committed, and
/// leaves no transaction open, wherever the batch runs (the writer's task
/// or its batch thread): the writer goes on.
pub(super) fn run_direct(db: &rusqlite::Connection, jobs: &mut Vec<Box<dyn DirectJob>>) {
    if catch_unwind(AssertUnwindSafe(|| commit_direct(db, jobs))).is_err() {
        // The panicking write's caller hears that the writer stopped.
        fail_all(jobs, "a write in the same transaction failed unexpectedly");
        let _ = control(db, "ROLLBACK");
    }
}

fn commit_direct(db: &rusqlite::Connection, jobs: &mut Vec<Box<dyn DirectJob>>) {
    if jobs.len() > 1 && direct_in_one(db, jobs).is_ok() {
        for job in jobs.drain(..) {
            job.deliver();
        }
        return;
    }
    for job in jobs.drain(..) {
        direct_alone(db, job);
    }
}

fn direct_in_one(db: &rusqlite::Connection, jobs: &mut [Box<dyn DirectJob>]) -> Result<(), ()> {
    control(db, "BEGIN IMMEDIATE").map_err(drop)?;
    let ran = jobs.iter_mut().try_for_each(|job| job.run(db).map_err(drop));
    if ran.is_err() || control(db, "COMMIT").is_err() {
        let _ = control(db, "ROLLBACK");
        return Err(());
    }
    Ok(())
}

/// One direct write in its own transaction, tried again when a unique index
/// refused it.
fn direct_alone(db: &rusqlite::Connection, mut job: Box<dyn DirectJob>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(e) = control(db, "BEGIN IMMEDIATE") {
            return job.fail(write_err(e).into_store());
        }
        let ran = job.run(db).and_then(|()| control(db, "COMMIT").map_err(write_err));
        match ran {
            Ok(()) => return job.deliver(),
            Err(WriteError::Conflict(_)) if attempt < ATTEMPTS => {
                let _ = control(db, "ROLLBACK");
            }
            Err(e) => {
                let _ = control(db, "ROLLBACK");
                return job.fail(e.into_store());
            }
        }
    }
}
