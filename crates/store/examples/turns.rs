//! Measures the store's share of a streamed turn (begin_turn, a checkpoint
//! every few turns, finish_message) at a given concurrency, against SQLite in
//! a temporary directory or the database URL given. Not a test: it asserts
//! nothing; it prints turns per second and how long `begin_turn` took.
//! `cargo run --release -p switchboard-store --example turns -- [secs] [concurrency] [url]`;
//! `TURNS_MAX_MESSAGES=n` sets the sessions' cap (default 1000, which these
//! ten-turn sessions never reach; 10 makes every later turn delete two).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::model::{MessageStatus, TurnMeta};
use switchboard_core::store::{BeginTurn, BeginTurnOutcome, Checkpoint, Finish, NewSession, Store};
use switchboard_store::{connect, migrate, Durability, Keyring, StoreOptions};
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).map_or(5, |s| s.parse().unwrap());
    let concurrency: usize = args.get(2).map_or(50, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url =
        args.get(3).cloned().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let options = StoreOptions { keyring: Keyring::generate("k1"), durability: Durability::Normal };
    migrate(&url, &options).await.unwrap();
    let store = connect(&url, options).await.unwrap();

    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = "bench".to_owned();
            let owner = format!("visitor:{}", Uuid::new_v4());
            let mut turns = 0u64;
            while Instant::now() < deadline {
                // A new conversation every 10 turns keeps histories realistic.
                let session = new_session(&store, &tenant, &owner).await;
                for _ in 0..10 {
                    run_turn(&store, &tenant, &owner, session, turns, worker).await;
                    turns += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let total = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut begins = BEGINS.lock().unwrap().clone();
    begins.sort_unstable();
    let at = |p: usize| begins[(begins.len() - 1) * p / 100].as_secs_f64() * 1e6;
    println!("begin_turn p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs", at(50), at(90), at(99));
    println!(
        "{total} turns in {elapsed:.2}s = {:.0} turns/s (concurrency {concurrency})",
        total as f64 / elapsed
    );
}

async fn new_session(store: &Arc<dyn Store>, tenant: &str, owner: &str) -> Uuid {
    let new = NewSession {
        event: None,
        id: Uuid::new_v4(),
        tenant_id: tenant.into(),
        owner: owner.into(),
        metadata: None,
        now: chrono::Utc::now(),
    };
    store.create_session(&new).await.unwrap().id
}

async fn run_turn(
    store: &Arc<dyn Store>,
    tenant: &str,
    owner: &str,
    session_id: Uuid,
    n: u64,
    worker: usize,
) {
    let now = chrono::Utc::now();
    let turn = BeginTurn {
        context: None,
        tenant_id: tenant.into(),
        session_id,
        owner: owner.into(),
        turn_id: Uuid::new_v4(),
        content: "What is the price of the blue running shoes in size 42?".into(),
        client_message_id: Some(format!("{worker}-{n}")),
        user_token_count: 14,
        node_id: "bench".into(),
        lease_until: now + chrono::Duration::seconds(10),
        now,
        history_limit: 20,
        max_messages: max_messages(),
        retained_since: now - chrono::Duration::days(30),
        budget: None,
    };
    let started = Instant::now();
    let begun = store.begin_turn(&turn).await.unwrap();
    BEGINS.lock().unwrap().push(started.elapsed());
    let BeginTurnOutcome::Started { assistant, .. } = begun else {
        panic!("turn did not start");
    };
    let answer = "The blue running shoes cost 89.90 EUR and size 42 is in stock. ".repeat(4);
    if n.is_multiple_of(4) {
        let checkpoint = Checkpoint {
            tools: Vec::new(),
            tenant_id: tenant.into(),
            session_id,
            seq: assistant.seq,
            content: answer[..answer.len() / 2].to_owned(),
            node_id: "bench".into(),
            lease_until: now + chrono::Duration::seconds(10),
        };
        assert!(store.checkpoint(&checkpoint).await.unwrap());
    }
    let finish = Finish {
        event: None,
        tools: Vec::new(),
        tenant_id: tenant.into(),
        session_id,
        seq: assistant.seq,
        content: answer,
        status: MessageStatus::Complete,
        token_count: 60,
        meta: TurnMeta::default(),
        now: chrono::Utc::now(),
        usage: None,
    };
    assert!(store.finish_message(&finish).await.unwrap());
}

/// How long each `begin_turn` took: it is what a turn waits for before its
/// provider call.
static BEGINS: std::sync::Mutex<Vec<Duration>> = std::sync::Mutex::new(Vec::new());

fn max_messages() -> u32 {
    std::env::var("TURNS_MAX_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}
