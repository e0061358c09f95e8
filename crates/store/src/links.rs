//! Guest-to-user links (SPEC §3): recording that a visitor became a user and
//! moving the visitor's sessions to the user in one transaction, and reading
//! the links back so every node refuses the visitor's tokens. The SQL is the
//! same on both backends; `impl_links!` expands it for each, as `impl_store!`
//! does for the rest.

/// `ON CONFLICT DO NOTHING`: the second link of a visitor changes nothing.
pub const INSERT_LINK: &str = "INSERT INTO visitor_links (tenant_id, visitor, user_subject, linked_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, visitor) DO NOTHING";
pub const MOVE_SESSIONS: &str = "UPDATE sessions SET owner = $1 WHERE tenant_id = $2 AND owner = $3";
pub const LINKS_SINCE: &str = "SELECT tenant_id, visitor, user_subject, linked_at FROM visitor_links \
     WHERE linked_at >= $1 ORDER BY linked_at, tenant_id, visitor";

/// `impl_links!(Type, conn = Connection)`: inherent `link_visitor_in_db` and
/// `linked_visitors_in_db`, which the `Store` impl calls. The backend provides
/// `write` (a re-runnable unit of work in a transaction) and a `reader` pool.
macro_rules! impl_links {
    ($store:ty, conn = $conn:ty) => {
        impl $store {
            async fn link_visitor_in_db(
                &self,
                tenant_id: &str,
                visitor: &str,
                user: &str,
                now: switchboard_core::time::Timestamp,
            ) -> Result<switchboard_core::store::LinkOutcome, switchboard_core::store::StoreError> {
                use switchboard_core::store::LinkOutcome;
                let link = std::sync::Arc::new((
                    tenant_id.to_owned(),
                    visitor.to_owned(),
                    user.to_owned(),
                    $crate::rows::millis(&now),
                ));
                self.write(move |conn: &mut $conn| {
                    let link = link.clone();
                    Box::pin(async move {
                        let (tenant_id, visitor, user, at) = &*link;
                        let recorded = sqlx::query($crate::links::INSERT_LINK)
                            .bind(tenant_id)
                            .bind(visitor)
                            .bind(user)
                            .bind(*at)
                            .execute(&mut *conn)
                            .await?;
                        if recorded.rows_affected() == 0 {
                            return Ok(LinkOutcome::AlreadyLinked);
                        }
                        let moved = sqlx::query($crate::links::MOVE_SESSIONS)
                            .bind(user)
                            .bind(tenant_id)
                            .bind(visitor)
                            .execute(&mut *conn)
                            .await?;
                        Ok(LinkOutcome::Linked { sessions: moved.rows_affected() })
                    })
                })
                .await
            }

            async fn linked_visitors_in_db(
                &self,
                since: switchboard_core::time::Timestamp,
            ) -> Result<Vec<switchboard_core::store::VisitorLink>, switchboard_core::store::StoreError> {
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as($crate::links::LINKS_SINCE)
                    .bind($crate::rows::millis(&since))
                    .fetch_all(&self.reader)
                    .await
                    .map_err($crate::rows::db_err)?;
                rows.into_iter()
                    .map(|(tenant_id, visitor, user, at)| {
                        Ok(switchboard_core::store::VisitorLink {
                            tenant_id,
                            visitor,
                            user,
                            linked_at: $crate::rows::time_of("linked_at", at)?,
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use impl_links;
