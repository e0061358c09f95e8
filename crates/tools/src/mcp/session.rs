//! A server's one MCP session, shared by its listing and its calls: opened
//! on first need by one caller while the others wait for it, kept while it
//! works, and dropped after a failure that says it is broken, so the next
//! use opens a new one. A dropped session is closed by rmcp in the
//! background.

use super::client::Connection;
use super::McpError;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Default)]
pub(super) struct Session {
    current: Mutex<Option<Arc<Connection>>>,
    /// Held while a session is being opened, so one handshake serves all.
    opening: tokio::sync::Mutex<()>,
}

impl Session {
    /// The open session, or a new one from `open`.
    pub async fn get<F>(&self, open: impl FnOnce() -> F) -> Result<Arc<Connection>, McpError>
    where
        F: Future<Output = Result<Connection, McpError>>,
    {
        if let Some(open) = self.alive() {
            return Ok(open);
        }
        let _opening = self.opening.lock().await;
        // Whoever held the lock before may have opened one meanwhile.
        if let Some(open) = self.alive() {
            return Ok(open);
        }
        let connection = Arc::new(open().await?);
        *self.slot() = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Whether a session is open (it may still turn out to be broken).
    pub fn is_open(&self) -> bool {
        self.alive().is_some()
    }

    /// Drops `connection` if it is still the current session and `error`
    /// says it is broken.
    pub fn failed(&self, connection: &Arc<Connection>, error: &McpError) {
        if !error.breaks_session() {
            return;
        }
        let mut current = self.slot();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, connection)) {
            *current = None;
        }
    }

    fn alive(&self) -> Option<Arc<Connection>> {
        let mut current = self.slot();
        if current.as_ref().is_some_and(|c| c.is_closed()) {
            *current = None;
        }
        current.clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Connection>>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
