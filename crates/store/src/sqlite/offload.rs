//! Big batches of direct writes run on a thread of their own. The writer's
//! task runs a batch in place on whichever Tokio worker it is on, which
//! stalls every task queued on that worker for as long: nothing at low load,
//! where a batch is one write of a few tens of microseconds, but at high load
//! a batch of many turns' writes held up their first tokens. So a batch of
//! [`BIG_BATCH`] writes or more goes to this thread, with the connection,
//! while the writer's task waits for it without holding its worker (and
//! writes that come meanwhile queue for the next batch). A small batch
//! stays in place: handing it over would cost two thread wake-ups, more
//! than it saves (docs/benchmarks.md, 2026-12-07: a writer always on a
//! thread of its own added 0.1–0.2 ms to a turn at concurrency 1).
//!
//! The connection is used here only while the writer's task holds sqlx's
//! handle of it and waits for the batch (see `writer::in_place`), so it is
//! never used from two threads at once.

use super::batch::{run_direct, DirectJob};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Writes in a batch from which it runs on the thread.
pub const BIG_BATCH: usize = 4;

type Jobs = Vec<Box<dyn DirectJob>>;
type Work = (rusqlite::Connection, Jobs, oneshot::Sender<rusqlite::Connection>);

/// The thread, while the writer lives: it ends when this is dropped.
pub struct Offload {
    /// `None` if the thread could not start: every batch runs in place.
    work: Option<mpsc::Sender<Work>>,
}

impl Offload {
    /// Starts the thread; if it cannot, every batch runs in place.
    pub fn start() -> Self {
        let (work, queue) = mpsc::channel::<Work>();
        let spawned = std::thread::Builder::new().name("sqlite-batches".into()).spawn(move || {
            while let Ok((db, mut jobs, done)) = queue.recv() {
                run_direct(&db, &mut jobs);
                let _ = done.send(db);
            }
        });
        if let Err(e) = &spawned {
            tracing::warn!(error = %e, "no thread for big write batches; they run in place");
        }
        Self { work: spawned.ok().map(|_| work) }
    }

    /// Runs `jobs` (each answered as `run_direct` does) on `db`, on the
    /// thread if the batch is big, and gives the connection back; `None`
    /// only if the thread ended without giving it back, which `run_direct`'s
    /// guard against a panicking write leaves to an abort (the writer then
    /// makes a new connection).
    pub async fn run(&self, db: rusqlite::Connection, jobs: &mut Jobs) -> Option<rusqlite::Connection> {
        let Some(work) = self.work.as_ref().filter(|_| jobs.len() >= BIG_BATCH) else {
            run_direct(&db, jobs);
            return Some(db);
        };
        let (done, ran) = oneshot::channel();
        match work.send((db, std::mem::take(jobs), done)) {
            Ok(()) => ran.await.ok(),
            // The thread is gone: in place, then.
            Err(mpsc::SendError((db, mut jobs, _))) => {
                run_direct(&db, &mut jobs);
                Some(db)
            }
        }
    }
}
