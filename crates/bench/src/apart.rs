//! Servers of a benchmark (fake upstream, webhook) on a thread of their own,
//! with a single-threaded runtime: a real upstream or tenant backend is
//! another process, ready to answer while the load generator reads, so the
//! fakes do not wait for the load generator's thread (and the direct path
//! pays the same hand-over between threads that the server's requests pay).

use crate::error::{Context, Result};
use std::future::Future;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The thread; it stops (and with it every task started on it) when dropped.
pub struct Apart {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Apart {
    /// Runs `start` on a new thread and returns what it made; tasks it
    /// spawned keep running on that thread until this is dropped.
    pub fn start<T, F, Fut>(name: &str, start: F) -> Result<(Self, T)>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
    {
        let (made_tx, made_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = made_tx.send(Err(format!("cannot start a runtime: {e}").into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let made = start().await;
                    let ok = made.is_ok();
                    let _ = made_tx.send(made);
                    if ok {
                        let _ = stopped.await;
                    }
                });
            })
            .context("starting a thread")?;
        let made = made_rx.recv().context("the thread ended before its servers started")??;
        Ok((Self { stop: Some(stop), thread: Some(thread) }, made))
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_from_its_own_thread_until_dropped() {
        let (apart, addr) = Apart::start("test", || async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let name = std::thread::current().name().unwrap_or_default().to_owned();
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut socket, name.as_bytes()).await;
                }
            });
            Ok(addr)
        })
        .unwrap();
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut name = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut name).await.unwrap();
        assert_eq!(name, "test");
        drop(apart);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener outlived its thread");
    }

    #[test]
    fn a_failed_start_is_an_error() {
        let failed = Apart::start("test", || async { Err::<(), _>("no port".into()) });
        assert!(failed.err().unwrap().to_string().contains("no port"));
    }
}
