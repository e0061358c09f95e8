//! Moves the WAL's pages into the database file in the background. SQLite
//! would otherwise run that checkpoint inside whichever commit pushed the WAL
//! past its threshold: on the one writer, stalling every write queued behind
//! it for the time it takes to copy (and, at `synchronous = NORMAL`, sync)
//! about a thousand pages. A `PASSIVE` checkpoint on a connection of its own
//! runs beside the writer and never blocks it; the writer keeps a far higher
//! threshold of its own as a safety net should this task fall behind.
//!
//! It runs [`EVERY`] after a write (the writer tells it), so an idle
//! database costs nothing and a busy one is checkpointed in small steps:
//! the bigger a checkpoint, the longer the stall it puts on turns around
//! it (docs/benchmarks.md, 2026-12-07: every 200 ms, first-token p99 at
//! c=50 was 1.7–3.3× the relay's; 50 ms after a write, 1.65–2.1×).

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// How long after a write the WAL is checkpointed. At the busiest here
/// that is a few thousand pages of WAL a checkpoint.
const EVERY: Duration = Duration::from_millis(50);

/// Pages of WAL at which the writer checkpoints by itself (about 40 MB),
/// only reached if this task stops keeping up.
pub const WRITER_THRESHOLD: &str = "10000";

pub struct Checkpointer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Checkpointer {
    /// `wrote`: told by the writer of each transaction that writes.
    pub async fn spawn(options: &SqliteConnectOptions, wrote: Arc<Notify>) -> Result<Self, sqlx::Error> {
        let mut conn = options.connect().await?;
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = wrote.notified() => {}
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the writer checkpoints by itself");
                }
            }
            // Whatever the last writes left in the WAL goes into the file.
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await;
            let _ = conn.close().await;
        });
        Ok(Self { stop, task })
    }

    /// Runs a last checkpoint and closes the connection.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
