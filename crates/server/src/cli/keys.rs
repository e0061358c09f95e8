//! `switchboard keys generate` prints a new content key for the operator to
//! put first in `SWITCHBOARD_ENCRYPTION_KEYS` (it writes nothing: where keys
//! live is the operator's choice); `switchboard keys rotate` re-encrypts what
//! is stored under the configured first key, safely while servers run. The
//! rotation itself is the store's (`switchboard_store::rotate_keys`); this
//! file only loads keys, prints progress and says what is left to do.

use crate::config::Config;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard_store::{Durability, Keyring, Progress, RotationReport, StoreOptions};

/// The key file `serve` generates into the data directory when the
/// environment gives no keys (see `app::open_store`).
const KEY_FILE: &str = "encryption.keys";
/// Progress lines at most this often (and whenever a column is done).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new content key `kid:base64(32 bytes)` to put first in SWITCHBOARD_ENCRYPTION_KEYS; writes nothing.
    Generate,
    /// Re-encrypt every stored value under the first configured key (safe while servers run).
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The configuration file `serve` uses (database and keys).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rows re-read and rewritten per transaction.
    #[arg(long, default_value_t = switchboard_store::DEFAULT_BATCH,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

pub async fn run(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Generate => {
            let kid = new_kid(Utc::now(), &uuid::Uuid::new_v4().simple().to_string());
            println!("{}", Keyring::generate(&kid).to_spec());
            eprintln!("{}", guidance(&kid));
            Ok(())
        }
        KeysCommand::Rotate(args) => rotate(args).await,
    }
}

/// `k` + the UTC date + six random hex digits: sorts by age, never collides
/// in practice, and is a valid key id (letters, digits and `-`).
fn new_kid(now: DateTime<Utc>, random_hex: &str) -> String {
    let suffix: String = random_hex.chars().take(6).collect();
    format!("k{}-{suffix}", now.format("%Y%m%d"))
}

fn guidance(kid: &str) -> String {
    format!(
        "switchboard: new content key {kid} printed on stdout (nothing was written). To rotate to it:\n  \
         1. put it first in SWITCHBOARD_ENCRYPTION_KEYS (or the variable `encryption_keys_env` names) on \
         every node, keeping the current keys after it: SWITCHBOARD_ENCRYPTION_KEYS=\"{kid}:…,<current \
         keys>\"; with no variable set, prepend it (and a comma) in data_dir/{KEY_FILE}\n  \
         2. restart every node: new content is written under {kid}\n  \
         3. run `switchboard keys rotate` with the same keys to re-encrypt what is stored\n  \
         4. when it reports that none remain under other keys, remove the old keys and restart\n\
         Keep the key secret and backed up: losing it loses the content. See docs/operations.md#key-rotation."
    )
}

async fn rotate(args: RotateArgs) -> Result<(), String> {
    let config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let keyring = configured_keys(&config)?;
    let others: Vec<&str> = keyring.kids().skip(1).collect();
    eprintln!(
        "switchboard: re-encrypting stored values under key {}{}",
        keyring.current_kid(),
        if others.is_empty() { String::new() } else { format!(" (reading {})", others.join(", ")) }
    );
    let durability = if config.full_durability { Durability::Full } else { Durability::Normal };
    let options = StoreOptions { keyring, durability };
    let mut printer = ProgressPrinter::default();
    let report =
        switchboard_store::rotate_keys(&config.database_url, &options, args.batch, |p| printer.page(p))
            .await
            .map_err(|e| e.to_string())?;
    printer.flush();
    println!("{}", summary(&report));
    for example in &report.unreadable_examples {
        eprintln!("switchboard: unreadable: {example}");
    }
    let unlisted = report.unreadable.saturating_sub(report.unreadable_examples.len() as u64);
    if unlisted > 0 {
        eprintln!("switchboard: … and {unlisted} more unreadable values");
    }
    if report.remaining > 0 {
        return Err(format!(
            "{} stored values are still not under key {}: {}",
            report.remaining,
            report.active_kid,
            if report.unreadable > 0 {
                "some are under keys not given here (add every old key after the new one) or damaged"
            } else {
                "a node may still be writing with an old key first; restart every node with the new key \
                 first, then run `switchboard keys rotate` again"
            }
        ));
    }
    Ok(())
}

/// The keys `serve` would use, without generating any: a rotation with a
/// freshly generated key would find nothing it can read.
fn configured_keys(config: &Config) -> Result<Keyring, String> {
    let var = &config.encryption_keys_env;
    if let Some(spec) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        return Keyring::parse(&spec).map_err(|e| format!("{var}: {e}"));
    }
    let path = config.data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(spec) => Keyring::parse(&spec).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no content keys: set {var} to the keys the servers run with, the new key first \
             (`switchboard keys generate` makes one)"
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn summary(report: &RotationReport) -> String {
    let columns: Vec<String> =
        report.columns.iter().map(|c| format!("{} {}", c.column, c.rewritten)).collect();
    let left = match report.remaining {
        0 => "none remain under other keys".to_owned(),
        n => format!("{n} remain under other keys"),
    };
    format!(
        "switchboard: re-encrypted {} stored values under key {} (read {}: {}); {left}",
        report.rewritten(),
        report.active_kid,
        report.examined(),
        columns.join(", ")
    )
}

/// Prints a column's progress at most once a second, and its last state
/// when the rotation moves on to the next column or pass.
struct ProgressPrinter {
    last: Option<(String, u32, u64, u64)>,
    unprinted: bool,
    printed_at: Instant,
}

impl Default for ProgressPrinter {
    fn default() -> Self {
        Self { last: None, unprinted: false, printed_at: Instant::now() }
    }
}

impl ProgressPrinter {
    fn page(&mut self, p: &Progress<'_>) {
        let moved_on =
            self.last.as_ref().is_some_and(|(column, pass, ..)| column != p.column || *pass != p.pass);
        if moved_on {
            self.flush();
        }
        self.last = Some((p.column.to_owned(), p.pass, p.examined, p.rewritten));
        self.unprinted = true;
        if self.printed_at.elapsed() >= PROGRESS_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let (true, Some((column, pass, examined, rewritten))) = (self.unprinted, &self.last) {
            let pass = if *pass > 1 { format!(" (pass {pass})") } else { String::new() };
            eprintln!("switchboard: {column}{pass}: {examined} read, {rewritten} re-encrypted");
            self.unprinted = false;
            self.printed_at = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn generated_kids_are_dated_and_valid() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let kid = new_kid(now, "3fa9c2d1e0");
        assert_eq!(kid, "k20260301-3fa9c2");
        let entry = Keyring::generate(&kid).to_spec();
        assert_eq!(Keyring::parse(&entry).unwrap().current_kid(), kid);
    }

    #[test]
    fn the_summary_names_counts_and_what_remains() {
        let report = RotationReport {
            active_kid: "k2".into(),
            columns: vec![
                switchboard_store::ColumnReport {
                    column: "messages.content".into(),
                    examined: 10,
                    rewritten: 7,
                    changed_meanwhile: 0,
                },
                switchboard_store::ColumnReport {
                    column: "keycheck.canary".into(),
                    examined: 2,
                    rewritten: 1,
                    changed_meanwhile: 0,
                },
            ],
            ..RotationReport::default()
        };
        assert_eq!(
            summary(&report),
            "switchboard: re-encrypted 8 stored values under key k2 (read 12: messages.content 7, \
             keycheck.canary 1); none remain under other keys"
        );
    }
}
