//! The test server's configuration, rendered to the TOML of SPEC §17 (plus the
//! `shutdown_grace_secs` key the binary accepts).

use super::fake_openai::FakeOpenAi;

/// Timeouts in seconds (fractions allowed).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: f64,
    pub first_token: f64,
    pub idle: f64,
    pub total: f64,
}

impl Default for Timeouts {
    /// Short but comfortable for a loaded 2-core machine.
    fn default() -> Self {
        Self { connect: 2.0, first_token: 5.0, idle: 5.0, total: 20.0 }
    }
}

#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub id: String,
    pub kind: &'static str,
    pub base_url: Option<String>,
    pub model: String,
    pub on_disconnect: Option<&'static str>,
    pub history_messages: Option<u32>,
    pub system_prompt: Option<String>,
    pub timeouts: Option<Timeouts>,
    /// Raw tenant-level lines (`key = value`), written before its tables.
    pub lines: Vec<String>,
    /// `(scope, limit, window_secs)` for `rate_limits`; generous by default,
    /// because a whole test talks from one address to one tenant.
    pub rate_limits: Vec<(&'static str, u32, u64)>,
    /// Raw tables written after the provider's (`[tenants.provider.retry]`,
    /// `[[tenants.fallbacks]]`…).
    pub tables: Vec<String>,
    /// Environment variables the server needs for this tenant (secrets its
    /// `*_env` keys name); every config the tenant joins passes them on.
    pub env: Vec<(String, String)>,
}

impl TenantSpec {
    /// A tenant answered by the built-in demo provider.
    pub fn demo(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            kind: "demo",
            base_url: None,
            model: "demo".to_owned(),
            on_disconnect: None,
            history_messages: None,
            system_prompt: None,
            timeouts: None,
            lines: default_lines(),
            rate_limits: generous_rate_limits(),
            tables: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A tenant answered by the fake OpenAI upstream.
    pub fn openai(id: &str, fake: &FakeOpenAi) -> Self {
        Self::upstream(id, "openai", &fake.base_url(), "gpt-fake")
    }

    /// A tenant answered by a provider of `kind` at `base_url`.
    pub fn upstream(id: &str, kind: &'static str, base_url: &str, model: &str) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            base_url: Some(base_url.to_owned()),
            model: model.to_owned(),
            on_disconnect: None,
            history_messages: None,
            system_prompt: None,
            timeouts: Some(Timeouts::default()),
            lines: default_lines(),
            rate_limits: generous_rate_limits(),
            tables: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Adds a raw table after the provider's, e.g. `[tenants.provider.retry]\nattempts = 1`.
    pub fn table(mut self, table: &str) -> Self {
        self.tables.push(table.to_owned());
        self
    }

    /// Adds a fallback answered by `fake` as model `model`.
    pub fn fallback(self, fake: &FakeOpenAi, model: &str) -> Self {
        self.table(&format!(
            "[[tenants.fallbacks]]\nkind = \"openai\"\nmodel = {}\nbase_url = {}\napi_key_env = \"SWITCHBOARD_TEST_FAKE_API_KEY\"",
            q(model),
            q(&fake.base_url())
        ))
    }

    /// Adds a raw tenant-level line, e.g. `allowed_origins = ["https://a.example"]`.
    pub fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_owned());
        self
    }

    /// Gives the server an environment variable along with this tenant.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Requests without an Origin are refused, as for a browser-only tenant.
    pub fn browser_only(mut self) -> Self {
        self.lines.retain(|l| !l.starts_with("allow_no_origin"));
        self
    }

    /// Sets one scope's limit (`"ip"`, `"user"` or `"tenant"`), keeping the
    /// generous test values of the others.
    pub fn rate_limit(mut self, scope: &'static str, limit: u32, window_secs: u64) -> Self {
        self.rate_limits.retain(|(s, _, _)| *s != scope);
        self.rate_limits.push((scope, limit, window_secs));
        self
    }

    /// No `rate_limits` in the file: the server's defaults apply.
    pub fn default_rate_limits(mut self) -> Self {
        self.rate_limits.clear();
        self
    }

    pub fn on_disconnect(mut self, v: &'static str) -> Self {
        self.on_disconnect = Some(v);
        self
    }

    pub fn history_messages(mut self, n: u32) -> Self {
        self.history_messages = Some(n);
        self
    }

    pub fn system_prompt(mut self, p: &str) -> Self {
        self.system_prompt = Some(p.to_owned());
        self
    }

    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = Some(t);
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str(&format!("\n[[tenants]]\nid = {}\nname = {}\n", q(&self.id), q(&self.id)));
        if let Some(v) = self.on_disconnect {
            out.push_str(&format!("on_disconnect = {}\n", q(v)));
        }
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        if !self.rate_limits.is_empty() {
            let scopes: Vec<String> = self
                .rate_limits
                .iter()
                .map(|(scope, limit, secs)| format!("{scope} = {{ limit = {limit}, window_secs = {secs} }}"))
                .collect();
            out.push_str(&format!("rate_limits = {{ {} }}\n", scopes.join(", ")));
        }
        out.push_str(&format!("[tenants.provider]\nkind = {}\nmodel = {}\n", q(self.kind), q(&self.model)));
        if let Some(url) = &self.base_url {
            out.push_str(&format!(
                "base_url = {}\napi_key_env = \"SWITCHBOARD_TEST_FAKE_API_KEY\"\n",
                q(url)
            ));
        }
        if let Some(n) = self.history_messages {
            out.push_str(&format!("history_messages = {n}\n"));
        }
        if let Some(p) = &self.system_prompt {
            out.push_str(&format!("system_prompt = {}\n", q(p)));
        }
        if let Some(t) = self.timeouts {
            out.push_str(&format!(
                "[tenants.provider.timeouts]\nconnect = {:?}\nfirst_token = {:?}\nidle = {:?}\ntotal = {:?}\n",
                t.connect, t.first_token, t.idle, t.total
            ));
        }
        for table in &self.tables {
            out.push_str(table);
            out.push('\n');
        }
    }
}

/// Test clients talk to the server directly (no browser, one IP): they send
/// no Origin unless a test is about origins.
fn default_lines() -> Vec<String> {
    vec!["allow_no_origin = true".to_owned()]
}

/// Far above what any test sends, so only tests about limits meet them.
fn generous_rate_limits() -> Vec<(&'static str, u32, u64)> {
    vec![("ip", 100_000, 60), ("user", 100_000, 60), ("tenant", 100_000, 60)]
}

/// The whole file, minus `listen` and `data_dir`, which the app fills in.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    pub tenants: Vec<TenantSpec>,
    pub database_url: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub shutdown_grace_secs: Option<f64>,
    /// Raw top-level lines, for tests of the config loader itself.
    pub extra_top_level: Vec<String>,
    /// Environment variables of the server process (secrets that `*_env`
    /// keys name), on top of a clean environment.
    pub env: Vec<(String, String)>,
}

impl AppConfig {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tenant(mut self, t: TenantSpec) -> Self {
        self.env.extend(t.env.iter().cloned());
        self.tenants.push(t);
        self
    }

    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    pub fn max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = Some(n);
        self
    }

    pub fn shutdown_grace_secs(mut self, n: f64) -> Self {
        self.shutdown_grace_secs = Some(n);
        self
    }

    pub fn raw(mut self, line: &str) -> Self {
        self.extra_top_level.push(line.to_owned());
        self
    }

    /// Sets an environment variable for the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn render(&self, data_dir: &str) -> String {
        let mut out = format!("listen = \"127.0.0.1:0\"\ndata_dir = {}\n", q(data_dir));
        if let Some(url) = &self.database_url {
            out.push_str(&format!("database_url = {}\n", q(url)));
        }
        if let Some(n) = self.max_body_bytes {
            out.push_str(&format!("max_body_bytes = {n}\n"));
        }
        let grace = self.shutdown_grace_secs.unwrap_or(5.0);
        // An integer when whole, so a loader that wants integer seconds accepts it.
        if grace.fract() == 0.0 {
            out.push_str(&format!("shutdown_grace_secs = {}\n", grace as u64));
        } else {
            out.push_str(&format!("shutdown_grace_secs = {grace:?}\n"));
        }
        // The origin the clients of these tests speak as (see `TestApp::start`):
        // without it, `public_url` would follow the port the server gets. A
        // line that mentions `public_url` (a comment, say) leaves it out. It
        // comes before the extra lines, which may open tables.
        if !self.extra_top_level.iter().any(|l| l.contains("public_url")) {
            out.push_str("public_url = \"http://127.0.0.1:8080\"\n");
        }
        for line in &self.extra_top_level {
            out.push_str(line);
            out.push('\n');
        }
        for t in &self.tenants {
            t.render(&mut out);
        }
        out
    }
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            '\n' => vec!['\\', 'n'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
