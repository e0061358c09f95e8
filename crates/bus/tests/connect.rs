//! `connect` and `connect_limiter`: which backend a `bus_url` gives, and the
//! errors of bad or unreachable ones, which must never show a password.

use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_bus::{connect, connect_limiter, BusError};
use switchboard_core::events::{SessionEvent, Who};
use switchboard_core::ratelimit::Limit;
use switchboard_core::tenant::Window;
use switchboard_core::SystemClock;

#[tokio::test]
async fn an_empty_url_is_the_in_process_bus_and_limiter() {
    let bus = connect("", "n1").await.unwrap();
    let s = uuid::Uuid::new_v4();
    let mut rx = bus.subscribe(s);
    bus.publish(s, Arc::new(SessionEvent::Typing { who: Who::User, active: true }));
    assert_eq!(rx.recv().await.unwrap().kind(), "typing");
    let limiter = connect_limiter("", Arc::new(SystemClock)).await.unwrap();
    let limit = [Limit::tenant("acme", Window { limit: 1, window: Duration::from_secs(60) })];
    assert!(limiter.check(&limit).await.unwrap().is_admitted());
    assert!(!limiter.check(&limit).await.unwrap().is_admitted());
}

#[tokio::test]
async fn other_schemes_are_refused_by_name_without_the_password() {
    for url in ["amqp://guest:hunter2@127.0.0.1/", "redis//:hunter2@h", "redis://h?prefix=no.dots"] {
        let Err(BusError::InvalidUrl(why)) = connect(url, "n1").await else { panic!("{url} was accepted") };
        assert!(why.contains("redis://") && why.contains("nats://") && !why.contains("hunter2"), "{why}");
        assert!(connect_limiter(url, Arc::new(SystemClock)).await.is_err());
    }
}

/// Nothing listens on port 1: each backend gives up promptly, and says where
/// without saying the password.
#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_it_without_the_password() {
    for url in ["redis://:hunter2@127.0.0.1:1/0?prefix=p", "nats://u:hunter2@127.0.0.1:1?prefix=p"] {
        let started = Instant::now();
        let Err(BusError::Connect(why)) = connect(url, "n1").await else { panic!("{url} connected") };
        assert!(why.contains("127.0.0.1:1") && !why.contains("hunter2"), "{why}");
        let Err(BusError::Connect(why)) = connect_limiter(url, Arc::new(SystemClock)).await else {
            panic!("{url} connected a limiter")
        };
        assert!(!why.contains("hunter2"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(30), "{url} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_cluster_bus_needs_a_node_id() {
    for url in ["redis://127.0.0.1:1", "nats://127.0.0.1:1"] {
        assert!(matches!(connect(url, "").await, Err(BusError::MissingNodeId)), "{url}");
    }
}
