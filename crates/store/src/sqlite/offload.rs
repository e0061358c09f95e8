//! Big batches of direct writes run on a thread of their own, which then
//! keeps the writer's queue while writes keep coming. The writer's task
//! runs a batch in place on whichever Tokio worker it is on, which stalls
//! every task queued on that worker for as long: nothing at low load, where
//! a batch is one write of a few tens of microseconds, but at high load a
//! batch of many turns' writes held up their first tokens. So a batch of
//! [`BIG_BATCH`] writes or more goes to this thread, with the connection
//! and the queue. A small batch stays in place: handing it over would cost
//! two thread wake-ups, more than it saves (docs/benchmarks.md, 2026-12-07:
//! a writer always on a thread of its own added 0.1–0.2 ms to a turn at
//! concurrency 1).
//!
//! Once here, the thread takes the next batch off the queue itself as soon
//! as one commits, for as long as only direct writes are queued. Going back
//! to the writer's task after each batch cost more than the batch's own
//! time in waiting: the task must be woken and then wait its turn among
//! the runtime's busy tasks before it could hand over the next batch
//! (docs/benchmarks.md, 2026-12-07 14:45). The queue goes back to the task
//! when it is empty, or holds a write through sqlx or the close.
//!
//! The connection is used here only while the writer's task holds sqlx's
//! handle of it and waits for the thread (see `writer::in_place`), so it is
//! never used from two threads at once.

use super::batch::{control, fail_all, run_direct, Batch, Command};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc as std_mpsc, Arc};
use tokio::sync::{mpsc, oneshot, Notify};

/// Writes in a batch from which it runs on the thread.
pub const BIG_BATCH: usize = 4;

/// The connection and the queue, lent to the thread and given back.
pub type Lent = (rusqlite::Connection, mpsc::Receiver<Command>);

struct Work {
    lent: Lent,
    batch: Batch,
    done: oneshot::Sender<(Lent, Batch)>,
}

/// The thread, while the writer lives: it ends when this is dropped.
pub struct Offload {
    /// `None` if the thread could not start: every batch runs in place.
    work: Option<std_mpsc::Sender<Work>>,
}

impl Offload {
    /// Starts the thread; if it cannot, every batch runs in place. `wrote`
    /// is told of each batch the thread takes off the queue itself.
    pub fn start(wrote: Arc<Notify>) -> Self {
        let (work, queue) = std_mpsc::channel::<Work>();
        let spawned =
            std::thread::Builder::new().name("sqlite-batches".into()).spawn(move || serve(&queue, &wrote));
        if let Err(e) = &spawned {
            tracing::warn!(error = %e, "no thread for big write batches; they run in place");
        }
        Self { work: spawned.ok().map(|_| work) }
    }

    /// Runs `batch.direct` (each answered as `run_direct` does) on the
    /// lent connection: in place if the batch is small, else on the thread,
    /// which goes on with the direct writes queued after it. Gives back the
    /// connection and the queue, with `batch` holding what the thread took
    /// off the queue but could not run (a write through sqlx, the close).
    /// `None` only if the thread ended without giving them back, which its
    /// guard against a panicking write leaves to an abort.
    pub async fn run(&self, lent: Lent, batch: &mut Batch) -> Option<Lent> {
        let Some(work) = self.work.as_ref().filter(|_| batch.direct.len() >= BIG_BATCH) else {
            run_direct(&lent.0, &mut batch.direct);
            return Some(lent);
        };
        let (done, ran) = oneshot::channel();
        match work.send(Work { lent, batch: std::mem::take(batch), done }) {
            Ok(()) => {
                let (lent, left) = ran.await.ok()?;
                *batch = left;
                Some(lent)
            }
            // The thread is gone: in place, then.
            Err(std_mpsc::SendError(Work { lent, batch: mut sent, .. })) => {
                run_direct(&lent.0, &mut sent.direct);
                *batch = sent;
                Some(lent)
            }
        }
    }
}

fn serve(queue: &std_mpsc::Receiver<Work>, wrote: &Notify) {
    while let Ok(Work { lent, mut batch, done }) = queue.recv() {
        let (db, mut commands) = lent;
        if catch_unwind(AssertUnwindSafe(|| drain(&db, &mut batch, &mut commands, wrote))).is_err() {
            // A write panicked: its caller hears that the writer stopped;
            // the writes of its transaction fail and are rolled back.
            fail_all(&mut batch.direct, "a write in the same transaction failed unexpectedly");
            let _ = control(&db, "ROLLBACK");
        }
        let _ = done.send(((db, commands), batch));
    }
}

/// Runs the batch's direct writes, then each batch of direct writes queued
/// meanwhile, until the queue is empty or holds something else.
fn drain(
    db: &rusqlite::Connection,
    batch: &mut Batch,
    commands: &mut mpsc::Receiver<Command>,
    wrote: &Notify,
) {
    loop {
        run_direct(db, &mut batch.direct);
        if batch.stops() || !batch.sqlx.is_empty() {
            return;
        }
        batch.take_queued(commands);
        if batch.direct.is_empty() {
            return;
        }
        wrote.notify_one();
    }
}
