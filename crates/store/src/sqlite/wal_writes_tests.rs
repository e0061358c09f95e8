//! The WAL-gathering VFS against the bundled SQLite: what it writes, when,
//! and what another connection and a crashed process's files hold.

use super::{gather_a_header, gathered_of, register, VFS};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// A directory for a test's database, and the database's path in it.
fn scratch() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    (dir, path)
}

fn open(path: &Path) -> Connection {
    open_uri(&format!("file:{}", path.display()))
}

fn open_uri(uri: &str) -> Connection {
    register().unwrap();
    let db = Connection::open_with_flags_and_vfs(uri, OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI, VFS)
        .unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS t_body ON t (body);",
    )
    .unwrap();
    db
}

fn count(db: &Connection) -> i64 {
    db.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
}

fn insert(db: &Connection, rows: usize, size: usize) {
    let tx = db.unchecked_transaction().unwrap();
    for _ in 0..rows {
        tx.execute("INSERT INTO t (body) VALUES (hex(randomblob(?1)))", [size / 2]).unwrap();
    }
    tx.commit().unwrap();
}

/// Nothing waits in memory after a commit, whatever its shape, and a
/// connection of the default VFS reads every row at once.
#[test]
fn every_kind_of_commit_leaves_nothing_gathered() {
    let (_dir, path) = scratch();
    let db = open(&path);
    let reader = Connection::open(&path).unwrap();
    let mut expected = 0;
    let mut check = |db: &Connection, added: i64, what: &str| {
        expected += added;
        assert_eq!(gathered_of(db).map(|(bytes, _)| bytes), Some(0), "{what}: bytes left gathered");
        assert_eq!(count(&reader), expected, "{what}: the other connection's count");
    };
    insert(&db, 1, 10);
    check(&db, 1, "one row");
    insert(&db, 2000, 200);
    check(&db, 2000, "many pages");
    // A cache of a few pages spills mid-transaction, and pages written
    // again after their spill are overwritten in the WAL, whose checksums
    // SQLite then rewrites at the commit.
    db.execute_batch("PRAGMA cache_size = 2").unwrap();
    let tx = db.unchecked_transaction().unwrap();
    tx.execute("INSERT INTO t (body) SELECT body || 'x' FROM t", []).unwrap();
    tx.execute("UPDATE t SET body = body || 'y' WHERE id % 3 = 0", []).unwrap();
    tx.commit().unwrap();
    check(&db, 2001, "spilled and overwritten pages");
    db.execute_batch("PRAGMA cache_size = -2000; PRAGMA synchronous = FULL").unwrap();
    insert(&db, 50, 500);
    check(&db, 50, "synchronous = FULL");
    // The WAL starts over after a full checkpoint: its header is written again.
    db.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    insert(&db, 30, 300);
    check(&db, 30, "a restarted WAL");
    let tx = db.unchecked_transaction().unwrap();
    tx.execute("INSERT INTO t (body) VALUES ('rolled back')", []).unwrap();
    drop(tx);
    check(&db, 0, "a rollback");
}

/// Frames a transaction spilled from its cache and then rolled back are
/// written before the WAL's write lock is released, not later over what
/// another connection committed there meanwhile. (SQLite reads spilled
/// pages back often enough that a rollback with frames still gathered is
/// rare; the test gathers a frame's header itself.)
#[test]
fn frames_gathered_when_the_write_lock_is_released_are_written_then() {
    let (_dir, path) = scratch();
    let db = open(&path);
    insert(&db, 300, 300);
    let tx = db.unchecked_transaction().unwrap();
    tx.execute("INSERT INTO t (body) VALUES ('rolled back')", []).unwrap();
    gather_a_header(&tx);
    assert_eq!(gathered_of(&tx).map(|(bytes, _)| bytes), Some(24));
    drop(tx);
    assert_eq!(gathered_of(&db).map(|(bytes, _)| bytes), Some(0), "bytes left gathered after the rollback");
    let other = Connection::open(&path).unwrap();
    insert(&other, 300, 300);
    // This connection's next reads and writes leave the other's commit whole.
    assert_eq!(count(&db), 600);
    insert(&db, 5, 50);
    drop(db);
    let check: String = other.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!((check.as_str(), count(&other)), ("ok", 605));
}

/// With `synchronous = FULL` and no power-safe overwrite, SQLite pads each
/// commit to a sector with copies of its last frame, splitting a write where
/// the sector ends: none of it may wait in memory when the commit is published.
#[test]
fn padded_commits_leave_nothing_gathered() {
    let (_dir, path) = scratch();
    let db = open_uri(&format!("file:{}?psow=0", path.display()));
    db.execute_batch("PRAGMA synchronous = FULL").unwrap();
    let reader = Connection::open(&path).unwrap();
    for n in 1..=600 {
        insert(&db, 1, 40);
        assert_eq!(gathered_of(&db).map(|(bytes, _)| bytes), Some(0), "commit {n}: bytes left gathered");
        assert_eq!(count(&reader), n, "commit {n}: the other connection's count");
    }
}

/// A commit is one write to the file, where SQLite makes two a frame; a
/// commit too big for one write is a write for every 31 frames.
#[test]
fn a_commit_is_one_write_for_up_to_31_frames() {
    let (dir, path) = scratch();
    let db = open(&path);
    insert(&db, 1, 10);
    let wal_frames =
        || (std::fs::metadata(dir.path().join("db.sqlite-wal")).unwrap().len() - 32) / (24 + 4096);
    for (rows, size) in [(1, 10), (10, 100), (100, 100), (30, 1000), (100, 1000)] {
        let (frames_before, (_, writes_before)) = (wal_frames(), gathered_of(&db).unwrap());
        insert(&db, rows, size);
        let (frames, (gathered, writes)) = (wal_frames() - frames_before, gathered_of(&db).unwrap());
        assert!(frames > 1, "{rows} rows of {size}: {frames} frames");
        assert_eq!(
            (gathered, writes - writes_before),
            (0, frames.div_ceil(31)),
            "{rows} rows of {size}: {frames} frames"
        );
    }
}

/// The files as a killed process leaves them (no checkpoint, no close)
/// hold every commit: SQLite's recovery on the copy finds each frame whole
/// with its checksum.
#[test]
fn a_killed_process_files_hold_every_commit() {
    let (dir, path) = scratch();
    let db = open(&path);
    insert(&db, 500, 300);
    db.execute_batch("PRAGMA cache_size = 2").unwrap();
    let tx = db.unchecked_transaction().unwrap();
    tx.execute("UPDATE t SET body = body || 'z'", []).unwrap();
    tx.execute("INSERT INTO t (body) SELECT body FROM t WHERE id % 2 = 0", []).unwrap();
    tx.commit().unwrap();
    insert(&db, 1, 10);
    let live = count(&db);
    let copy = tempfile::tempdir().unwrap();
    for suffix in ["", "-wal"] {
        let name = format!("db.sqlite{suffix}");
        std::fs::copy(dir.path().join(&name), copy.path().join(&name)).unwrap();
    }
    let recovered = Connection::open(copy.path().join("db.sqlite")).unwrap();
    let check: String = recovered.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    assert_eq!(count(&recovered), live);
    let z: i64 =
        recovered.query_row("SELECT count(*) FROM t WHERE body LIKE '%z'", [], |r| r.get(0)).unwrap();
    assert_eq!(z, live - 1);
}
