//! The admin API's reads and writes (SPEC §12): the tenant-wide session list
//! (filters, three sort keys, keyset paging with ties broken by id), closing
//! a session, and runtime settings every node shares. The SQL is the same on
//! both backends; `impl_admin!` expands it for each, as `impl_links!` does.

use crate::rows::session_columns;
use switchboard_core::store::admin::{AdminSessionQuery, SessionSort};

/// `closed`, and no agent holds it any more.
pub const CLOSE_SESSION: &str = concat!(
    "UPDATE sessions SET status = 'closed', takeover = NULL WHERE id = $1 AND tenant_id = $2 RETURNING ",
    session_columns!()
);
pub const GET_SETTING: &str = "SELECT name, value, updated_at FROM runtime_settings WHERE name = $1";
pub const PUT_SETTING: &str = "INSERT INTO runtime_settings (name, value, updated_at) VALUES ($1, $2, $3) \
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

/// `impl_admin!(Type, conn = Connection)`: inherent `admin_list_sessions_in_db`,
/// `close_session_in_db`, `runtime_setting_in_db` and
/// `put_runtime_setting_in_db`, which the `Store` impl calls.
macro_rules! impl_admin {
    ($store:ty, conn = $conn:ty) => {
        impl $store {
            async fn admin_list_sessions_in_db(
                &self,
                query: &switchboard_core::store::admin::AdminSessionQuery,
            ) -> Result<Vec<switchboard_core::model::Session>, switchboard_core::store::StoreError> {
                use $crate::admin::Arg;
                let (text, args) = $crate::admin::list_sql(query);
                let mut select = sqlx::query_as::<_, $crate::rows::SessionRow>(&text);
                for arg in args {
                    select = match arg {
                        Arg::Text(v) => select.bind(v),
                        Arg::Int(v) => select.bind(v),
                    };
                }
                let rows = select.fetch_all(&self.reader).await.map_err($crate::rows::db_err)?;
                rows.into_iter().map($crate::rows::SessionRow::decode).collect()
            }

            async fn close_session_in_db(
                &self,
                tenant_id: &str,
                id: uuid::Uuid,
            ) -> Result<Option<switchboard_core::model::Session>, switchboard_core::store::StoreError> {
                let key = std::sync::Arc::new((id.to_string(), tenant_id.to_owned()));
                let row = self
                    .write_one(move |conn: &mut $conn| {
                        let key = key.clone();
                        Box::pin(async move {
                            let (id, tenant_id) = &*key;
                            let row: Option<$crate::rows::SessionRow> =
                                sqlx::query_as($crate::admin::CLOSE_SESSION)
                                    .bind(id)
                                    .bind(tenant_id)
                                    .fetch_optional(&mut *conn)
                                    .await?;
                            Ok(row)
                        })
                    })
                    .await?;
                row.map($crate::rows::SessionRow::decode).transpose()
            }

            async fn runtime_setting_in_db(
                &self,
                key: &str,
            ) -> Result<
                Option<switchboard_core::store::admin::RuntimeSetting>,
                switchboard_core::store::StoreError,
            > {
                let row: Option<(String, String, i64)> = sqlx::query_as($crate::admin::GET_SETTING)
                    .bind(key)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err($crate::rows::db_err)?;
                row.map(|(key, value, at)| {
                    Ok(switchboard_core::store::admin::RuntimeSetting {
                        key,
                        value: serde_json::from_str(&value).map_err(|e| {
                            switchboard_core::store::StoreError::Corrupt(format!("runtime setting: {e}"))
                        })?,
                        updated_at: $crate::rows::time_of("updated_at", at)?,
                    })
                })
                .transpose()
            }

            async fn put_runtime_setting_in_db(
                &self,
                setting: &switchboard_core::store::admin::RuntimeSetting,
            ) -> Result<(), switchboard_core::store::StoreError> {
                let row = std::sync::Arc::new((
                    setting.key.clone(),
                    $crate::rows::to_json(&setting.value)?,
                    $crate::rows::millis(&setting.updated_at),
                ));
                self.write_one(move |conn: &mut $conn| {
                    let row = row.clone();
                    Box::pin(async move {
                        let (key, value, at) = &*row;
                        sqlx::query($crate::admin::PUT_SETTING)
                            .bind(key)
                            .bind(value)
                            .bind(*at)
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
            }
        }
    };
}
pub(crate) use impl_admin;

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
