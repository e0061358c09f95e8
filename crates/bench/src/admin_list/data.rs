//! The random sessions of the benchmark (owners, statuses, times, message
//! counts, in creation order, from a fixed seed) and the list queries timed
//! against them.

use super::*;

/// A small deterministic generator (xorshift64*): the same seed, the same data.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random (version 4) UUID as text, like the server's session ids.
    pub(super) fn uuid(&mut self) -> String {
        let (hi, lo) = (self.next(), self.next());
        let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

/// One generated session.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) id: String,
    pub(super) tenant: &'static str,
    pub(super) owner: String,
    pub(super) status: &'static str,
    pub(super) created: i64,
    pub(super) activity: i64,
    pub(super) count: i64,
    pub(super) assisted: bool,
}

/// What the data looks like and which queries are timed on it.
pub(super) struct Plan {
    pub(super) seed: u64,
    /// Sessions of the measured tenant, and of all tenants.
    pub(super) sessions: u64,
    pub(super) total: u64,
    /// Creation times run from `start` to `end` (the run's start).
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) queries: Vec<Query>,
}

/// One timed list request; `deep` also times the page after `--depth` pages.
pub(super) struct Query {
    pub(super) label: String,
    pub(super) query: String,
    pub(super) deep: bool,
    /// Which of the tenant's sessions it selects (to report how many do).
    pub(super) keep: Box<dyn Fn(&Row) -> bool + Send + Sync>,
}

impl Plan {
    pub(super) fn new(args: &AdminListArgs) -> Self {
        let end = chrono::Utc::now().timestamp_millis();
        let start = end - DAYS * DAY_MS;
        let sessions = u64::from(args.sessions);
        let total = sessions * u64::from(100 + args.others_percent) / 100;
        Self { seed: args.seed, sessions, total, start, end, queries: queries(start) }
    }

    /// Rows in creation order, as a table grows (rowids follow creation,
    /// which decides how a time-ordered scan reads the table). Other
    /// tenants' rows are spread evenly among the measured tenant's.
    pub(super) fn rows(&self) -> impl Iterator<Item = Row> + '_ {
        let mut rng = Rng::new(self.seed);
        let others = self.total - self.sessions;
        let span = (self.end - self.start) as f64;
        (0..self.total).map(move |i| {
            let other = (i + 1) * others / self.total > i * others / self.total;
            let tenant = if other { OTHER_TENANTS[(i % 3) as usize] } else { TENANT };
            let created = self.start + ((i as f64 + rng.unit()) * span / self.total as f64) as i64;
            row(&mut rng, tenant, created, self.end)
        })
    }
}

/// A session of `tenant` created at `created`, as a chat runtime's table holds
/// them: mostly visitors', a quarter users' (a few users with many sessions,
/// most with a few), mostly active, a tenth closed by an agent, very few
/// taken over right now (`human` lasts while an agent talks: 1 in 2,000),
/// about 2 % ever assisted by an agent, most activity within hours of the
/// creation, and message counts skewed (a fifth never got a message).
pub(super) fn row(rng: &mut Rng, tenant: &'static str, created: i64, now: i64) -> Row {
    let id = rng.uuid();
    let owner = if rng.unit() < USER_SHARE {
        // The square skews towards small ids: u0 owns about 2 % of users' sessions.
        format!("user:u{}", (rng.unit().powi(2) * USER_IDS) as u32)
    } else {
        format!("visitor:{}", rng.uuid())
    };
    let s = rng.unit();
    let status = if s < 0.0005 {
        "human"
    } else if s < 0.1 {
        "closed"
    } else {
        "active"
    };
    let assisted = status == "human" || rng.unit() < 0.02;
    let activity = (created + (rng.unit().powi(4) * 7.0 * DAY_MS as f64) as i64).min(now);
    let count = if rng.unit() < 0.2 { 0 } else { (1.0 - 8.0 * (1.0 - rng.unit()).ln()).min(1000.0) as i64 };
    Row { id, tenant, owner, status, created, activity, count, assisted }
}

/// RFC 3339 in UTC with milliseconds, as the API writes times.
pub(super) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The timed queries. Times are relative to `start`, so the filters select
/// the same share of the data on every run; labels name the days so (day 0
/// is the oldest creation time) and keep the table narrow.
pub(super) fn queries(start: i64) -> Vec<Query> {
    type Keep = Box<dyn Fn(&Row) -> bool + Send + Sync>;
    let mut out = Vec::new();
    let mut add = |label: &str, query: String, deep: bool, keep: Keep| {
        out.push(Query { label: label.to_owned(), query, deep, keep });
    };
    for sort in ["created_at", "last_activity_at", "message_count"] {
        for order in ["desc", "asc"] {
            let query = format!("sort={sort}&order={order}");
            add(&query, query.clone(), true, Box::new(|_| true));
        }
    }
    add("limit=200", "limit=200".into(), true, Box::new(|_| true));
    let user = |name: &'static str| -> Keep { Box::new(move |r: &Row| r.owner == name) };
    add("user_id=u0 (the user with most sessions)", "user_id=u0".into(), true, user("user:u0"));
    add("user_id=u1000 (a typical user)", "user_id=u1000".into(), false, user("user:u1000"));
    add("user_id=nobody (no sessions)", "user_id=nobody".into(), false, user("user:nobody"));
    add(
        "user_id=u1000&sort=message_count",
        "user_id=u1000&sort=message_count".into(),
        false,
        user("user:u1000"),
    );
    let status = |s: &'static str| -> Keep { Box::new(move |r: &Row| r.status == s) };
    add("status=human", "status=human".into(), false, status("human"));
    add(
        "status=human&sort=last_activity_at",
        "status=human&sort=last_activity_at".into(),
        false,
        status("human"),
    );
    add("status=closed", "status=closed".into(), true, status("closed"));
    add("admin_assisted=true", "admin_assisted=true".into(), true, Box::new(|r| r.assisted));
    add(
        "admin_assisted=true&sort=last_activity_at",
        "admin_assisted=true&sort=last_activity_at".into(),
        false,
        Box::new(|r| r.assisted),
    );
    let (from, to) = (start + 45 * DAY_MS, start + 46 * DAY_MS - 1);
    let day = format!("created_from={}&created_to={}", rfc3339(from), rfc3339(to));
    let in_day = move |r: &Row| (from..=to).contains(&r.created);
    add("created_from, created_to: day 45 (one day)", day.clone(), true, Box::new(in_day));
    add(
        "created_from, created_to: day 45, sort=last_activity_at",
        format!("{day}&sort=last_activity_at"),
        false,
        Box::new(in_day),
    );
    let month = start + 60 * DAY_MS;
    add(
        "created_from: day 60 (the last 30 days), sort=last_activity_at",
        format!("created_from={}&sort=last_activity_at", rfc3339(month)),
        false,
        Box::new(move |r| r.created >= month),
    );
    add(
        "created_from: day 60, sort=message_count",
        format!("created_from={}&sort=message_count", rfc3339(month)),
        false,
        Box::new(move |r| r.created >= month),
    );
    add(
        "user_id=u0&status=active&created_from: day 60",
        format!("user_id=u0&status=active&created_from={}", rfc3339(month)),
        false,
        Box::new(move |r| r.owner == "user:u0" && r.status == "active" && r.created >= month),
    );
    add(
        "status=closed&admin_assisted=true&sort=message_count",
        "status=closed&admin_assisted=true&sort=message_count".into(),
        false,
        Box::new(|r| r.status == "closed" && r.assisted),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_text() {
        let mut rng = Rng::new(7);
        let id = rng.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
        assert_ne!(id, rng.uuid());
    }

    #[test]
    fn rows_are_in_creation_order_with_the_asked_counts() {
        let args = AdminListArgs {
            server: ServerArgs { server_bin: "x".into(), keep_data: false },
            sessions: 10_000,
            others_percent: 10,
            repeats: 1,
            depth: 1,
            database_url: None,
            seed: 3,
        };
        let plan = Plan::new(&args);
        let rows: Vec<Row> = plan.rows().collect();
        assert_eq!(rows.len(), 11_000);
        assert_eq!(rows.iter().filter(|r| r.tenant == TENANT).count(), 10_000);
        assert!(rows.windows(2).all(|w| w[0].created <= w[1].created));
        assert!(rows.iter().all(|r| r.activity >= r.created && r.activity <= plan.end));
        let assisted = rows.iter().filter(|r| r.assisted).count();
        assert!((100..400).contains(&assisted), "{assisted}");
        let users = rows.iter().filter(|r| r.owner.starts_with("user:")).count();
        assert!((2000..3500).contains(&users), "{users}");
    }

    #[test]
    fn insert_statements_number_their_parameters() {
        let sql = insert_sql(2, |i| format!("${i}"));
        assert!(sql.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ));
    }
}
