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
    Bool(bool),
}

/// The list query for `q` and its arguments. Only the filters given appear
/// in the SQL (a `($n IS NULL OR …)` form would keep planners from using the
/// indexes), so each combination is its own statement.
pub fn list_sql(q: &AdminSessionQuery) -> (String, Vec<Arg>) {
    let column = match q.sort {
        SessionSort::CreatedAt => "created_at",
        SessionSort::LastActivityAt => "last_activity_at",
        SessionSort::MessageCount => "message_count",
    };
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
        add(&mut sql, " AND status = ?", Arg::Text(status.as_str().to_owned()));
    }
    if let Some(assisted) = q.admin_assisted {
        add(&mut sql, " AND admin_assisted = ?", Arg::Bool(assisted));
    }
    if let Some(from) = q.created_from {
        add(&mut sql, " AND created_at >= ?", Arg::Int(from.timestamp_millis()));
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
                        Arg::Bool(v) => select.bind(v),
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
                        updated_at: switchboard_core::time::from_millis(at),
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
                "WHERE tenant_id = $1 AND status = $2 AND admin_assisted = $3 \
                 AND (message_count, id) > ($4, $5) ORDER BY message_count ASC, id ASC LIMIT $6"
            ),
            "{sql}"
        );
        assert_eq!(args.len(), 6);
        assert_eq!(args[4], Arg::Text(uuid::Uuid::nil().to_string()));
    }
}
