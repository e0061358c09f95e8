//! `finish_message` on SQLite: the answer, the session's activity, the
//! turn's usage and the settling of its budget reservation in one round trip
//! to the writer's connection (alone, that one statement text also begins
//! and commits the transaction; see `writer::Bracket`). Every statement is
//! a hand-off to sqlx's thread for the connection, and this write comes once
//! per turn.

use super::writer::Bracket;
use super::SqliteStore;
use crate::crypto::Aad;
use crate::rows::{crypto_err, to_json, CONTENT};
use crate::sql::sqlite as dialect;
use crate::turn::bind_finish;
use sqlx::SqliteConnection;
use std::sync::Arc;
use switchboard_core::store::{Finish, StoreError};

pub async fn finish_message(store: &SqliteStore, finish: &Finish) -> Result<bool, StoreError> {
    let at =
        Aad { tenant_id: &finish.tenant_id, session_id: finish.session_id, seq: finish.seq, column: CONTENT };
    let content = store.cipher.encrypt_str(&at, &finish.content).map_err(crypto_err)?;
    let shared = Arc::new((finish.clone(), content, to_json(&finish.meta)?));
    let done = store
        .writer
        .write_bracketed(move |conn: &mut SqliteConnection, bracket: &mut Bracket| {
            let shared = shared.clone();
            Box::pin(async move {
                let (f, content, meta) = &*shared;
                let sql = bracket.only(dialect::FINISH_TURN, dialect::BEGIN_FINISH_TURN_COMMIT);
                let u = f.usage.as_ref();
                let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let finished: Vec<i64> = bind_finish!(sqlx::query_scalar(sql), f, content, meta)
                    .bind(u.map(|u| u.subject.as_str()))
                    .bind(switchboard_core::usage::day_of(&f.now))
                    .bind(u.map(|u| u.provider.as_str()))
                    .bind(u.map(|u| u.model.as_str()))
                    .bind(u.map(|u| i64::from(u.usage.prompt_tokens)))
                    .bind(u.map(|u| i64::from(u.usage.completion_tokens)))
                    .bind(u.map(|u| i64::from(u.usage.estimated)))
                    .bind(u.map(|u| u.cost_micro_usd))
                    .bind(u.and_then(|u| u.first_token_ms).map(ms))
                    .bind(u.map(|u| ms(u.total_ms)))
                    .bind(u.and_then(|u| u.reservation).map(|id| id.to_string()))
                    // `fetch_all`: a text is cut at the first row otherwise.
                    .fetch_all(&mut *conn)
                    .await?;
                Ok(finished.first() == Some(&1))
            })
        })
        .await;
    store.known.finished(finish, *done.as_ref().unwrap_or(&false));
    done
}
