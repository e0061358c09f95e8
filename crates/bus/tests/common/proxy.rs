//! A TCP relay on 127.0.0.1 between a node and its Redis or NATS, which a
//! test can take down (cutting every connection and refusing new ones) and
//! bring back, to see the bus ride out an outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    /// The address to connect to instead of the service's.
    pub address: String,
    up: Arc<AtomicBool>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0);
        let accept = tokio::spawn(accept_loop(listener, target, up.clone(), cut.clone()));
        Self { address, up, cut, accept }
    }

    /// Cuts every connection and refuses new ones until `restore`.
    pub fn take_down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.take_down();
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, up: Arc<AtomicBool>, cut: watch::Sender<u64>) {
    while let Ok((client, _)) = listener.accept().await {
        if !up.load(Ordering::SeqCst) {
            continue; // dropped: the node sees its connection refused at once
        }
        let mut cut = cut.subscribe();
        let target = target.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&target).await else { return };
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
