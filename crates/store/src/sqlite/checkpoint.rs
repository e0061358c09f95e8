//! Moves the WAL's pages into the database file in the background. SQLite
//! would otherwise run that checkpoint inside whichever commit pushed the WAL
//! past its threshold: on the one writer, stalling every write queued behind
//! it for the time it takes to copy (and, at `synchronous = NORMAL`, sync)
//! about a thousand pages. A `PASSIVE` checkpoint on a connection of its own
//! runs beside the writer and never blocks it; the writer keeps a far higher
//! threshold of its own as a safety net should this task fall behind.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the WAL is checkpointed. At the busiest here a few megabytes
/// of WAL build up in that time; an idle database costs a no-op statement.
const EVERY: Duration = Duration::from_millis(200);

/// Pages of WAL at which the writer checkpoints by itself (about 40 MB),
/// only reached if this task stops keeping up.
pub const WRITER_THRESHOLD: &str = "10000";

pub struct Checkpointer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Checkpointer {
    pub async fn spawn(options: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let mut conn = options.connect().await?;
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                            tracing::warn!(error = %e, "WAL checkpoint failed; the writer checkpoints by itself");
                        }
                    }
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
