//! The admin API's reads and writes (SPEC §12): the tenant-wide session list
//! (filters, three sort keys, keyset paging with ties broken by id), closing
//! a session, and runtime settings every node shares.

use crate::db::{Conn, Param};
use crate::rows::{session_columns, time_of, to_json, SessionRow};
use crate::store::SqlStore;
use std::sync::Arc;
use switchboard_core::model::Session;
use switchboard_core::outbound::NewEvent;
use switchboard_core::store::admin::{AdminSessionQuery, RuntimeSetting, SessionSort};
use switchboard_core::store::StoreError;
use uuid::Uuid;

/// `closed`, and no agent holds it any more: `$1` id, `$2` tenant. Only an
/// open session changes (so only one close of it writes its event; on
/// PostgreSQL a second close waits for the first's row lock, then finds it
/// closed).
const CLOSE_SESSION: &str = concat!(
    "UPDATE sessions SET status = 'closed', takeover = NULL \
     WHERE id = $1 AND tenant_id = $2 AND status <> 'closed' RETURNING ",
    session_columns!()
);
const GET_SETTING: &str = "SELECT name, value, updated_at FROM runtime_settings WHERE name = $1";
const PUT_SETTING: &str = "INSERT INTO runtime_settings (name, value, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

/// A value bound to the list query, in the order of its `$n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// The list query for `q` and its arguments. Only the filters given appear
/// in the SQL (a `($n IS NULL OR …)` form would keep planners from using the
/// indexes), so each combination is its own statement.
///
/// SQLite keeps no statistics here, so it picks an index by the shape of the
/// query alone, and an index that yields the asked order beats one that
/// narrows more. PostgreSQL walks a sort index too when it misjudges how
/// many rows a filter keeps: a status bound as a parameter (planned for any
/// value), or a creation window, whose sessions sit together far down the
/// activity index (it takes the two columns for independent). Such walks
/// took up to seconds at a million sessions ("Admin session list at a
/// million sessions" in docs/benchmarks.md). Hence:
/// - `status` and `admin_assisted` are literals (they come from closed sets),
///   so the partial indexes of the narrow values, `human` and `true`, one per
///   sort key, serve them;
/// - a sort key that no index should order is written `+key` (the same
///   value, but no index matches it), so the filter's index is read and what
///   it selects sorted: an owner's sessions by message count (the owner's
///   indexes are by creation and by activity), and a creation window
///   (`created_to` given) by another key, whose sessions all sit in one range
///   of the creation index while the sort key's index scatters them;
/// - `created_from` alone with the `last_activity_at` sort also bounds
///   `last_activity_at`, which is never before `created_at` (the store only
///   moves it forward), so the activity index is read from that instant on.
pub fn list_sql(q: &AdminSessionQuery) -> (String, Vec<Arg>) {
    let column = match q.sort {
        SessionSort::CreatedAt => "created_at",
        SessionSort::LastActivityAt => "last_activity_at",
        SessionSort::MessageCount => "message_count",
    };
    let unordered = match q.sort {
        SessionSort::CreatedAt => false,
        SessionSort::LastActivityAt => q.created_to.is_some(),
        SessionSort::MessageCount => q.created_to.is_some() || q.owner.is_some(),
    };
    let column = if unordered { format!("+{column}") } else { column.to_owned() };
    let mut args = vec![Arg::Text(q.tenant_id.clone())];
    let mut sql = format!("SELECT {} FROM sessions WHERE tenant_id = $1", session_columns!());
    let mut add = |sql: &mut String, condition: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&condition.replace('?', &format!("${}", args.len())));
    };
    if let Some(owner) = &q.owner {
        add(&mut sql, " AND owner = ?", Arg::Text(owner.clone()));
    }
    if let Some(status) = q.status {
        sql.push_str(&format!(" AND status = '{}'", status.as_str()));
    }
    if let Some(assisted) = q.admin_assisted {
        sql.push_str(if assisted { " AND admin_assisted = TRUE" } else { " AND admin_assisted = FALSE" });
    }
    if let Some(from) = q.created_from {
        add(&mut sql, " AND created_at >= ?", Arg::Int(from.timestamp_millis()));
        if q.created_to.is_none() && q.sort == SessionSort::LastActivityAt {
            add(&mut sql, " AND last_activity_at >= ?", Arg::Int(from.timestamp_millis()));
        }
    }
    if let Some(to) = q.created_to {
        add(&mut sql, " AND created_at <= ?", Arg::Int(to.timestamp_millis()));
    }
    let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
    if let Some(after) = q.after {
        add(&mut sql, &format!(" AND ({column}, id) {cmp} (?"), Arg::Int(after.key));
        add(&mut sql, ", ?)", Arg::Text(after.id.to_string()));
    }
    add(&mut sql, &format!(" ORDER BY {column} {dir}, id {dir} LIMIT ?"), Arg::Int(i64::from(q.limit)));
    (sql, args)
}

impl From<Arg> for Param<'static> {
    fn from(arg: Arg) -> Self {
        match arg {
            Arg::Text(v) => v.into(),
            Arg::Int(v) => v.into(),
        }
    }
}

pub async fn list_sessions(store: &SqlStore, query: &AdminSessionQuery) -> Result<Vec<Session>, StoreError> {
    let (sql, args) = list_sql(query);
    let params: Vec<Param<'_>> = args.into_iter().map(Param::from).collect();
    let rows: Vec<SessionRow> = store.reader.all(&sql, &params).await?;
    rows.into_iter().map(SessionRow::decode).collect()
}

/// Closes the session; `event` (`session.closed`) is written with it only
/// when the session was open until now.
pub async fn close_session(
    store: &SqlStore,
    tenant_id: &str,
    id: Uuid,
    event: Option<&NewEvent>,
) -> Result<Option<Session>, StoreError> {
    let event = crate::outbox::seal_opt(store, event)?;
    let key = Arc::new((id.to_string(), tenant_id.to_owned(), event));
    let row = store
        .write(move |mut conn: Conn<'_>| {
            let key = key.clone();
            Box::pin(async move {
                let (id, tenant_id, event) = &*key;
                let params = [id.into(), tenant_id.into()];
                if let Some(row) = conn.optional::<SessionRow>(CLOSE_SESSION, &params).await? {
                    if let Some(event) = event {
                        let (sql, params) = crate::outbox::insert(event);
                        conn.execute(sql, &params).await?;
                    }
                    return Ok(Some(row));
                }
                // Closed before (or not there): as it is.
                let row = conn.optional::<SessionRow>(crate::sessions::GET, &params).await?;
                Ok(row)
            })
        })
        .await?;
    row.map(SessionRow::decode).transpose()
}

pub async fn runtime_setting(store: &SqlStore, key: &str) -> Result<Option<RuntimeSetting>, StoreError> {
    let row: Option<(String, String, i64)> = store.reader.optional(GET_SETTING, &[key.into()]).await?;
    row.map(|(key, value, at)| {
        Ok(RuntimeSetting {
            key,
            value: serde_json::from_str(&value)
                .map_err(|e| StoreError::Corrupt(format!("runtime setting: {e}")))?,
            updated_at: time_of("updated_at", at)?,
        })
    })
    .transpose()
}

pub async fn put_runtime_setting(store: &SqlStore, setting: &RuntimeSetting) -> Result<(), StoreError> {
    let row = Arc::new((setting.key.clone(), to_json(&setting.value)?, setting.updated_at));
    store
        .write_one(move |mut conn: Conn<'_>| {
            let row = row.clone();
            Box::pin(async move {
                let (key, value, at) = &*row;
                conn.execute(PUT_SETTING, &[key.into(), value.into(), at.into()]).await?;
                Ok(())
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::store::admin::SessionKey;
    use switchboard_core::SessionStatus;

    fn query() -> AdminSessionQuery {
        AdminSessionQuery::new("acme")
    }

    #[test]
    fn only_given_filters_appear_and_parameters_are_numbered_in_order() {
        let (sql, args) = list_sql(&query());
        assert!(sql.ends_with("WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"), "{sql}");
        assert_eq!(args, [Arg::Text("acme".into()), Arg::Int(50)]);

        let q = AdminSessionQuery {
            status: Some(SessionStatus::Human),
            admin_assisted: Some(true),
            sort: SessionSort::MessageCount,
            descending: false,
            after: Some(SessionKey { key: 7, id: uuid::Uuid::nil() }),
            ..query()
        };
        let (sql, args) = list_sql(&q);
        assert!(
            sql.ends_with(
                "WHERE tenant_id = $1 AND status = 'human' AND admin_assisted = TRUE \
                 AND (message_count, id) > ($2, $3) ORDER BY message_count ASC, id ASC LIMIT $4"
            ),
            "{sql}"
        );
        assert_eq!(args.len(), 4);
        assert_eq!(args[2], Arg::Text(uuid::Uuid::nil().to_string()));
    }

    #[test]
    fn shapes_that_steer_a_planner_without_statistics() {
        let from = switchboard_core::time::from_millis(1000).unwrap();
        // An owner's sessions by message count: no index may offer that order.
        let q = AdminSessionQuery {
            owner: Some("user:u1".into()),
            sort: SessionSort::MessageCount,
            after: Some(SessionKey { key: 3, id: uuid::Uuid::nil() }),
            ..query()
        };
        let (sql, _) = list_sql(&q);
        assert!(
            sql.ends_with(
                "AND owner = $2 AND (+message_count, id) < ($3, $4) ORDER BY +message_count DESC, id DESC LIMIT $5"
            ),
            "{sql}"
        );
        // Created since, by activity: the activity index is bounded too.
        let q = AdminSessionQuery {
            created_from: Some(from),
            sort: SessionSort::LastActivityAt,
            admin_assisted: Some(false),
            ..query()
        };
        let (sql, args) = list_sql(&q);
        assert!(
            sql.ends_with(
                "AND admin_assisted = FALSE AND created_at >= $2 AND last_activity_at >= $3 \
                 ORDER BY last_activity_at DESC, id DESC LIMIT $4"
            ),
            "{sql}"
        );
        assert_eq!(args[1..3], [Arg::Int(1000), Arg::Int(1000)]);
        // Without it for another sort; a creation window is read and sorted.
        let q = AdminSessionQuery { sort: SessionSort::CreatedAt, ..q };
        assert!(!list_sql(&q).0.contains("last_activity_at >="));
        let q = AdminSessionQuery { created_to: Some(from), sort: SessionSort::LastActivityAt, ..q };
        let (sql, _) = list_sql(&q);
        assert!(
            sql.ends_with("AND created_at <= $3 ORDER BY +last_activity_at DESC, id DESC LIMIT $4"),
            "{sql}"
        );
        assert!(!sql.contains("last_activity_at >="));
    }
}
