//! Usage events, per-day sums and budget reservations (SPEC §13), the same
//! SQL on both backends. A reservation is decided inside the transaction
//! that starts its turn, after the session's checks, one at a time per tenant
//! (PostgreSQL locks the tenant's row of the day; SQLite's one writer already
//! runs writes one at a time), so concurrent turns on any node see each
//! other's reservations and cannot overshoot a budget together.

/// Settled usage plus live reservations of a tenant's day, one quantity
/// (`$settled` of the day's row, the sum of `$reserved`), given the
/// parameters that hold the tenant, the day and now (0 without a row yet).
macro_rules! day_total {
    ($settled:literal, $reserved:literal, $tenant:literal, $day:literal, $now:literal) => {
        concat!(
            "CAST(COALESCE((SELECT ",
            $settled,
            " FROM usage_daily \
               WHERE tenant_id = ",
            $tenant,
            " AND day = ",
            $day,
            "), 0) \
             + (SELECT COALESCE(SUM(",
            $reserved,
            "), 0) FROM budget_reservations \
               WHERE tenant_id = ",
            $tenant,
            " AND day = ",
            $day,
            " AND expires_at > ",
            $now,
            ") AS BIGINT)"
        )
    };
}
pub(crate) use day_total;

/// A tenant's tokens of the day.
macro_rules! tenant_tokens {
    ($tenant:literal, $day:literal, $now:literal) => {
        $crate::usage::day_total!("prompt_tokens + completion_tokens", "tokens", $tenant, $day, $now)
    };
}
pub(crate) use tenant_tokens;

/// A tenant's cost of the day, in micro-dollars.
macro_rules! tenant_cost {
    ($tenant:literal, $day:literal, $now:literal) => {
        $crate::usage::day_total!("cost_micro_usd", "cost_micro_usd", $tenant, $day, $now)
    };
}
pub(crate) use tenant_cost;

/// The same in tokens, for one subject.
macro_rules! subject_tokens {
    ($tenant:literal, $day:literal, $subject:literal, $now:literal) => {
        concat!(
            "CAST(COALESCE((SELECT tokens FROM usage_subject_daily \
               WHERE tenant_id = ",
            $tenant,
            " AND subject = ",
            $subject,
            " AND day = ",
            $day,
            "), 0) \
             + (SELECT COALESCE(SUM(tokens), 0) FROM budget_reservations \
               WHERE tenant_id = ",
            $tenant,
            " AND day = ",
            $day,
            " AND subject = ",
            $subject,
            " AND expires_at > ",
            $now,
            ") AS BIGINT)"
        )
    };
}
pub(crate) use subject_tokens;

/// The three counts as the columns `tenant_tokens`, `tenant_cost_micro_usd`
/// and `subject_tokens` (`rows::CountedRow`).
macro_rules! counted {
    ($tenant:literal, $day:literal, $subject:literal, $now:literal) => {
        concat!(
            $crate::usage::tenant_tokens!($tenant, $day, $now),
            " AS tenant_tokens, ",
            $crate::usage::tenant_cost!($tenant, $day, $now),
            " AS tenant_cost_micro_usd, ",
            $crate::usage::subject_tokens!($tenant, $day, $subject, $now),
            " AS subject_tokens"
        )
    };
}
pub(crate) use counted;

/// A budget reservation: `$1` id, `$2` tenant, `$3` subject, `$4` day,
/// `$5` tokens, `$6` cost, `$7` expiry (`turn::bind_reservation!`).
pub const INSERT_RESERVATION: &str = "INSERT INTO budget_reservations \
     (id, tenant_id, subject, day, tokens, cost_micro_usd, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// A turn's reservation settled: `$1` id, `$2` tenant.
const DELETE_RESERVATION: &str = "DELETE FROM budget_reservations WHERE id = $1 AND tenant_id = $2";
/// Once per answer: a second finish of the same message writes nothing.
const INSERT_EVENT: &str = "INSERT INTO usage_events (session_id, seq, tenant_id, subject, day, provider, \
     model, prompt_tokens, completion_tokens, estimated, cost_micro_usd, first_token_ms, total_ms, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (session_id, seq) DO NOTHING";
const ADD_DAILY: &str = "INSERT INTO usage_daily \
     (tenant_id, day, turns, prompt_tokens, completion_tokens, cost_micro_usd) VALUES ($1, $2, 1, $3, $4, $5) \
     ON CONFLICT (tenant_id, day) DO UPDATE SET turns = usage_daily.turns + 1, \
     prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, \
     cost_micro_usd = usage_daily.cost_micro_usd + excluded.cost_micro_usd";
const ADD_SUBJECT: &str = "INSERT INTO usage_subject_daily (tenant_id, subject, day, tokens) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, subject, day) \
     DO UPDATE SET tokens = usage_subject_daily.tokens + excluded.tokens";

/// Settles a finished turn's usage, the same on both backends: deletes its
/// budget reservation and, when the answer was finished by this write
/// (`$recorded`), writes its usage event and adds it to the day's sums.
/// `$run!(SQL, values…)` runs one statement: a macro of each backend, as
/// sqlx's and rusqlite's queries share no type.
macro_rules! record_usage {
    ($run:ident, $f:expr, $recorded:expr) => {{
        let f: &switchboard_core::store::Finish = $f;
        if let Some(u) = &f.usage {
            if let Some(id) = u.reservation {
                $run!(DELETE_RESERVATION, id.to_string(), &f.tenant_id);
            }
            if $recorded {
                let day = switchboard_core::usage::day_of(&f.now);
                let (prompt, completion) =
                    (i64::from(u.usage.prompt_tokens), i64::from(u.usage.completion_tokens));
                let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                $run!(
                    INSERT_EVENT,
                    f.session_id.to_string(),
                    f.seq,
                    &f.tenant_id,
                    &u.subject,
                    day,
                    &u.provider,
                    &u.model,
                    prompt,
                    completion,
                    i64::from(u.usage.estimated),
                    u.cost_micro_usd,
                    u.first_token_ms.map(ms),
                    ms(u.total_ms),
                    $crate::rows::millis(&f.now)
                );
                $run!(ADD_DAILY, &f.tenant_id, day, prompt, completion, u.cost_micro_usd);
                $run!(ADD_SUBJECT, &f.tenant_id, &u.subject, day, prompt + completion);
            }
        }
    }};
}

/// SQLite's writer runs statements in place (`sqlite/direct.rs`).
pub mod sqlite {
    use super::{ADD_DAILY, ADD_SUBJECT, DELETE_RESERVATION, INSERT_EVENT};
    use crate::sqlite::Numbered;
    use crate::write::WriteError;
    use switchboard_core::store::Finish;

    /// Inside a finish's transaction: see `record_usage!`.
    pub fn record(db: &rusqlite::Connection, f: &Finish, recorded: bool) -> Result<(), WriteError> {
        macro_rules! run {
            ($sql:expr, $($value:expr),+) => {
                Numbered::new()$(.bind($value))+.execute(db, $sql)?
            };
        }
        record_usage!(run, f, recorded);
        Ok(())
    }
}

/// PostgreSQL decides a tenant's reservations one at a time by locking its
/// row of the day, which must exist first; SQLite's one writer already runs
/// writes one at a time.
pub mod postgres {
    use super::{ADD_DAILY, ADD_SUBJECT, DELETE_RESERVATION, INSERT_EVENT, INSERT_RESERVATION};
    use crate::rows::{millis, CountedRow};
    use sqlx::PgConnection;
    use switchboard_core::store::Finish;
    use switchboard_core::usage::{Reserve, Spent};

    const OPEN_DAY: &str =
        "INSERT INTO usage_daily (tenant_id, day) VALUES ($1, $2) ON CONFLICT (tenant_id, day) DO NOTHING";
    const LOCK_DAY: &str = "SELECT 1 FROM usage_daily WHERE tenant_id = $1 AND day = $2 FOR UPDATE";
    const COUNTED: &str = concat!("SELECT ", counted!("$1", "$2", "$3", "$4"));
    const PURGE: &str = "DELETE FROM budget_reservations WHERE tenant_id = $1 AND day < $2 - 1";

    /// Inside a finish's transaction: see `record_usage!`.
    pub async fn record(conn: &mut PgConnection, f: &Finish, recorded: bool) -> Result<(), sqlx::Error> {
        macro_rules! run {
            ($sql:expr, $($value:expr),+) => {
                sqlx::query($sql)$(.bind($value))+.execute(&mut *conn).await?
            };
        }
        record_usage!(run, f, recorded);
        Ok(())
    }

    /// Inside the transaction that starts a turn: takes `r` if it fits, else
    /// names the budget it does not fit in (and takes nothing).
    pub async fn reserve(conn: &mut PgConnection, r: &Reserve) -> Result<Option<Spent>, sqlx::Error> {
        sqlx::query(OPEN_DAY).bind(&r.tenant_id).bind(r.day).execute(&mut *conn).await?;
        sqlx::query(LOCK_DAY).bind(&r.tenant_id).bind(r.day).execute(&mut *conn).await?;
        let counted: CountedRow = sqlx::query_as(COUNTED)
            .bind(&r.tenant_id)
            .bind(r.day)
            .bind(&r.subject)
            .bind(millis(&r.now))
            .fetch_one(&mut *conn)
            .await?;
        if let Some(spent) = r.refused_by(&counted.into()) {
            return Ok(Some(spent));
        }
        sqlx::query(PURGE).bind(&r.tenant_id).bind(r.day).execute(&mut *conn).await?;
        sqlx::query(INSERT_RESERVATION)
            .bind(r.id.to_string())
            .bind(&r.tenant_id)
            .bind(&r.subject)
            .bind(r.day)
            .bind(r.tokens)
            .bind(r.cost_micro_usd)
            .bind(millis(&r.expires_at))
            .execute(&mut *conn)
            .await?;
        Ok(None)
    }
}

pub const DAILY: &str =
    "SELECT day, turns, prompt_tokens, completion_tokens, cost_micro_usd FROM usage_daily \
     WHERE tenant_id = $1 AND day >= $2 AND day <= $3 AND turns > 0 ORDER BY day";

/// `impl_usage!(Type)`: inherent methods the `Store` impl calls.
macro_rules! impl_usage {
    ($store:ty) => {
        impl $store {
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
