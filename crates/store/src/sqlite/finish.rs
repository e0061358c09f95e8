//! An answer's writes on SQLite after its turn started, each one direct
//! write (`direct.rs`): a checkpoint about every second while it streams,
//! and its end, once per turn, with the session's activity, the turn's usage
//! and the settling of its budget reservation.

use super::direct::Numbered;
use super::SqliteStore;
use crate::rows::{encrypt_content, to_json};
use crate::sql::{self, sqlite as dialect};
use crate::turn::{bind_checkpoint, bind_finish};
use std::sync::Arc;
use switchboard_core::store::{Checkpoint, Finish, StoreError};

/// Saves a streaming answer's text so far and renews its lease.
pub async fn checkpoint(store: &SqliteStore, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
    let c = checkpoint;
    let content = encrypt_content(&store.cipher, &c.tenant_id, c.session_id, c.seq, &c.content)?;
    let shared = Arc::new((checkpoint.clone(), content));
    store
        .writer
        .write_direct(move |db| {
            let (c, content) = &*shared;
            Ok(bind_checkpoint!(Numbered::new(), c, content).execute(db, sql::CHECKPOINT)? > 0)
        })
        .await
}

pub async fn finish_message(store: &SqliteStore, finish: &Finish) -> Result<bool, StoreError> {
    let f = finish;
    let content = encrypt_content(&store.cipher, &f.tenant_id, f.session_id, f.seq, &f.content)?;
    let shared = Arc::new((finish.clone(), content, to_json(&finish.meta)?));
    let done = store
        .writer
        .write_direct(move |db| {
            let (f, content, meta) = &*shared;
            let binds = bind_finish!(Numbered::new(), f, content, meta);
            // Only an answer still streaming is finished, and only then is the
            // session touched and the usage counted.
            let finished = binds.execute(db, dialect::FINISH_MESSAGE)? > 0;
            if finished {
                binds.execute(db, dialect::TOUCH_SESSION)?;
            }
            crate::usage::sqlite::record(db, f, finished)?;
            Ok(finished)
        })
        .await;
    store.known.finished(finish, *done.as_ref().unwrap_or(&false));
    done
}
