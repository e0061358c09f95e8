//! The representative scenarios again on PostgreSQL (a fresh database per
//! test): a streamed turn and restart, idempotent retries, crash recovery.

mod common;

use common::postgres::TestDatabase;
use common::scenarios;

#[tokio::test]
async fn pg_streamed_turn_survives_restart() {
    let Some(db) = TestDatabase::create("pg_streamed_turn_survives_restart").await else { return };
    scenarios::streamed_turn_survives_restart(Some(&db.url)).await;
    assert!(db.table_count().await > 0, "the server did not use the PostgreSQL database");
    db.drop_database().await;
}

#[tokio::test]
async fn pg_sequential_retries_are_idempotent() {
    let Some(db) = TestDatabase::create("pg_sequential_retries_are_idempotent").await else { return };
    scenarios::sequential_retries_are_idempotent(Some(&db.url)).await;
    assert!(db.table_count().await > 0, "the server did not use the PostgreSQL database");
    db.drop_database().await;
}

#[tokio::test]
async fn pg_concurrent_retries_share_one_turn() {
    let Some(db) = TestDatabase::create("pg_concurrent_retries_share_one_turn").await else { return };
    scenarios::concurrent_retries_share_one_turn(Some(&db.url)).await;
    assert!(db.table_count().await > 0, "the server did not use the PostgreSQL database");
    db.drop_database().await;
}

#[tokio::test]
async fn pg_crash_mid_stream_leaves_an_interrupted_partial() {
    let Some(db) = TestDatabase::create("pg_crash_mid_stream").await else { return };
    scenarios::crash_mid_stream_leaves_interrupted_partial(Some(&db.url)).await;
    assert!(db.table_count().await > 0, "the server did not use the PostgreSQL database");
    db.drop_database().await;
}
