//! An answer's writes on SQLite after its turn started, each one direct
//! write (`direct.rs`): a checkpoint about every second while it streams,
//! and its end, once per turn, with the session's activity, the turn's usage
//! and the settling of its budget reservation.

use super::{direct, Sqlite};
use crate::rows::{encrypt_content, encrypt_tools, to_json};
use crate::store::SqlStore;
use crate::turn::{checkpoint_params, finish_params, CHECKPOINT, FINISH, TOUCH_SESSION};
use std::sync::Arc;
use switchboard_core::store::{Checkpoint, Finish, StoreError};

/// Saves a streaming answer's text so far and renews its lease.
pub async fn checkpoint(
    store: &SqlStore,
    sqlite: &Sqlite,
    checkpoint: &Checkpoint,
) -> Result<bool, StoreError> {
    let c = checkpoint;
    let content = encrypt_content(&store.cipher, &c.tenant_id, c.session_id, c.seq, &c.content)?;
    let tools = encrypt_tools(&store.cipher, &c.tenant_id, c.session_id, c.seq, &c.tools)?;
    let shared = Arc::new((checkpoint.clone(), content, tools));
    sqlite
        .writer
        .write_direct(move |db| {
            let (c, content, tools) = &*shared;
            Ok(direct::execute(db, CHECKPOINT, &checkpoint_params(c, content, tools))? > 0)
        })
        .await
}

pub async fn finish_message(store: &SqlStore, sqlite: &Sqlite, finish: &Finish) -> Result<bool, StoreError> {
    let f = finish;
    let content = encrypt_content(&store.cipher, &f.tenant_id, f.session_id, f.seq, &f.content)?;
    let tools = encrypt_tools(&store.cipher, &f.tenant_id, f.session_id, f.seq, &f.tools)?;
    let (event, reserved) = crate::outbox::seal_leased(store, finish.event.as_ref())?;
    let shared = Arc::new((finish.clone(), content, to_json(&finish.meta)?, tools, event));
    let done = sqlite
        .writer
        .write_direct(move |db| {
            let (f, content, meta, tools, event) = &*shared;
            let params = finish_params(f, content, meta, tools);
            // Only an answer still streaming is finished, and only then is the
            // session touched, the usage counted and the event written.
            let finished = direct::execute(db, FINISH, &params)? > 0;
            let mut leased = false;
            if finished {
                direct::execute(db, TOUCH_SESSION, &params)?;
                if let Some(event) = event {
                    leased = super::outbox::write_event(db, event)?;
                }
            }
            for (sql, params) in crate::usage::settle(f, finished) {
                direct::execute(db, sql, &params)?;
            }
            Ok((finished, leased))
        })
        .await
        .map(|(finished, leased)| {
            crate::outbox::handed(reserved, finish.event.as_ref(), leased);
            finished
        });
    sqlite.known.finished(finish, *done.as_ref().unwrap_or(&false));
    done
}
