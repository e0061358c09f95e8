//! Usage events, per-day sums and budget reservations (SPEC §13), the same
//! SQL on both backends. A reservation is decided inside a transaction that
//! first takes the tenant's row of the day (PostgreSQL locks it; SQLite's one
//! writer already runs writes one at a time), so concurrent turns on any node
//! see each other's reservations and cannot overshoot a budget together.

/// Makes sure the tenant's row of the day exists, so it can be locked.
pub const OPEN_DAY: &str =
    "INSERT INTO usage_daily (tenant_id, day) VALUES ($1, $2) ON CONFLICT (tenant_id, day) DO NOTHING";

/// Settled usage plus live reservations: tenant tokens, tenant cost, subject
/// tokens. `$1` tenant, `$2` day, `$3` subject, `$4` now.
pub const COUNTED: &str = "SELECT \
     CAST((SELECT prompt_tokens + completion_tokens FROM usage_daily WHERE tenant_id = $1 AND day = $2) \
        + (SELECT COALESCE(SUM(tokens), 0) FROM budget_reservations \
           WHERE tenant_id = $1 AND day = $2 AND expires_at > $4) AS BIGINT), \
     CAST((SELECT cost_micro_usd FROM usage_daily WHERE tenant_id = $1 AND day = $2) \
        + (SELECT COALESCE(SUM(cost_micro_usd), 0) FROM budget_reservations \
           WHERE tenant_id = $1 AND day = $2 AND expires_at > $4) AS BIGINT), \
     CAST(COALESCE((SELECT tokens FROM usage_subject_daily WHERE tenant_id = $1 AND subject = $3 AND day = $2), 0) \
        + (SELECT COALESCE(SUM(tokens), 0) FROM budget_reservations \
           WHERE tenant_id = $1 AND day = $2 AND subject = $3 AND expires_at > $4) AS BIGINT)";

pub const INSERT_RESERVATION: &str = "INSERT INTO budget_reservations \
     (id, tenant_id, subject, day, tokens, cost_micro_usd, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const DELETE_RESERVATION: &str = "DELETE FROM budget_reservations WHERE id = $1 AND tenant_id = $2";
/// Reservations long expired are of no use to anyone.
pub const PURGE_RESERVATIONS: &str = "DELETE FROM budget_reservations WHERE tenant_id = $1 AND day < $2";

/// Once per answer: a second finish of the same message writes nothing.
pub const INSERT_EVENT: &str = "INSERT INTO usage_events (session_id, seq, tenant_id, subject, day, provider, \
     model, prompt_tokens, completion_tokens, estimated, cost_micro_usd, first_token_ms, total_ms, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (session_id, seq) DO NOTHING";
pub const ADD_DAILY: &str = "INSERT INTO usage_daily \
     (tenant_id, day, turns, prompt_tokens, completion_tokens, cost_micro_usd) VALUES ($1, $2, 1, $3, $4, $5) \
     ON CONFLICT (tenant_id, day) DO UPDATE SET turns = usage_daily.turns + 1, \
     prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, \
     cost_micro_usd = usage_daily.cost_micro_usd + excluded.cost_micro_usd";
pub const ADD_SUBJECT: &str = "INSERT INTO usage_subject_daily (tenant_id, subject, day, tokens) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, subject, day) \
     DO UPDATE SET tokens = usage_subject_daily.tokens + excluded.tokens";

pub const DAILY: &str =
    "SELECT day, turns, prompt_tokens, completion_tokens, cost_micro_usd FROM usage_daily \
     WHERE tenant_id = $1 AND day >= $2 AND day <= $3 AND turns > 0 ORDER BY day";

/// `record_usage!(conn, finish, recorded)`: inside a finish's transaction,
/// settles the turn's reservation and, when the answer was finished by this
/// write (`recorded`), writes its usage event and adds it to the day's sums.
macro_rules! record_usage {
    ($conn:expr, $finish:expr, $recorded:expr) => {{
        let f = $finish;
        if let Some(u) = &f.usage {
            if let Some(id) = u.reservation {
                sqlx::query($crate::usage::DELETE_RESERVATION)
                    .bind(id.to_string())
                    .bind(&f.tenant_id)
                    .execute(&mut *$conn)
                    .await?;
            }
            if $recorded {
                let day = switchboard_core::usage::day_of(&f.now);
                let (prompt, completion) =
                    (i64::from(u.usage.prompt_tokens), i64::from(u.usage.completion_tokens));
                let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                sqlx::query($crate::usage::INSERT_EVENT)
                    .bind(f.session_id.to_string())
                    .bind(f.seq)
                    .bind(&f.tenant_id)
                    .bind(&u.subject)
                    .bind(day)
                    .bind(&u.provider)
                    .bind(&u.model)
                    .bind(prompt)
                    .bind(completion)
                    .bind(i64::from(u.usage.estimated))
                    .bind(u.cost_micro_usd)
                    .bind(u.first_token_ms.map(ms))
                    .bind(ms(u.total_ms))
                    .bind($crate::rows::millis(&f.now))
                    .execute(&mut *$conn)
                    .await?;
                sqlx::query($crate::usage::ADD_DAILY)
                    .bind(&f.tenant_id)
                    .bind(day)
                    .bind(prompt)
                    .bind(completion)
                    .bind(u.cost_micro_usd)
                    .execute(&mut *$conn)
                    .await?;
                sqlx::query($crate::usage::ADD_SUBJECT)
                    .bind(&f.tenant_id)
                    .bind(&u.subject)
                    .bind(day)
                    .bind(prompt + completion)
                    .execute(&mut *$conn)
                    .await?;
            }
        }
    }};
}
pub(crate) use record_usage;

/// `impl_usage!(Type, conn = Connection, lock_day = SQL)`: inherent methods
/// the `Store` impl calls. `lock_day` takes the tenant's row of the day
/// (`FOR UPDATE` on PostgreSQL).
macro_rules! impl_usage {
    ($store:ty, conn = $conn:ty, lock_day = $lock_day:expr) => {
        impl $store {
            async fn reserve_budget_in_db(
                &self,
                r: &switchboard_core::usage::Reserve,
            ) -> Result<Result<(), switchboard_core::usage::Spent>, switchboard_core::store::StoreError> {
                let r = std::sync::Arc::new(r.clone());
                self.write(move |conn: &mut $conn| {
                    let r = r.clone();
                    Box::pin(async move {
                        let now = $crate::rows::millis(&r.now);
                        sqlx::query($crate::usage::OPEN_DAY)
                            .bind(&r.tenant_id)
                            .bind(r.day)
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query($lock_day).bind(&r.tenant_id).bind(r.day).execute(&mut *conn).await?;
                        let (tenant_tokens, tenant_cost_micro_usd, subject_tokens): (i64, i64, i64) =
                            sqlx::query_as($crate::usage::COUNTED)
                                .bind(&r.tenant_id)
                                .bind(r.day)
                                .bind(&r.subject)
                                .bind(now)
                                .fetch_one(&mut *conn)
                                .await?;
                        let counted = switchboard_core::usage::Counted {
                            tenant_tokens,
                            tenant_cost_micro_usd,
                            subject_tokens,
                        };
                        if let Some(spent) = r.refused_by(&counted) {
                            return Ok(Err(spent));
                        }
                        sqlx::query($crate::usage::PURGE_RESERVATIONS)
                            .bind(&r.tenant_id)
                            .bind(r.day - 1)
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query($crate::usage::INSERT_RESERVATION)
                            .bind(r.id.to_string())
                            .bind(&r.tenant_id)
                            .bind(&r.subject)
                            .bind(r.day)
                            .bind(r.tokens)
                            .bind(r.cost_micro_usd)
                            .bind($crate::rows::millis(&r.expires_at))
                            .execute(&mut *conn)
                            .await?;
                        Ok(Ok(()))
                    })
                })
                .await
            }

            async fn release_budget_in_db(
                &self,
                tenant_id: &str,
                id: uuid::Uuid,
            ) -> Result<(), switchboard_core::store::StoreError> {
                let key = std::sync::Arc::new((tenant_id.to_owned(), id.to_string()));
                self.write_one(move |conn: &mut $conn| {
                    let key = key.clone();
                    Box::pin(async move {
                        sqlx::query($crate::usage::DELETE_RESERVATION)
                            .bind(&key.1)
                            .bind(&key.0)
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
            }

            async fn daily_usage_in_db(
                &self,
                tenant_id: &str,
                from: i64,
                to: i64,
            ) -> Result<Vec<switchboard_core::usage::DailyUsage>, switchboard_core::store::StoreError> {
                let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as($crate::usage::DAILY)
                    .bind(tenant_id)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.reader)
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(day, turns, prompt_tokens, completion_tokens, cost_micro_usd)| {
                        switchboard_core::usage::DailyUsage {
                            day,
                            turns,
                            prompt_tokens,
                            completion_tokens,
                            cost_micro_usd,
                        }
                    })
                    .collect())
            }
        }
    };
}
pub(crate) use impl_usage;
