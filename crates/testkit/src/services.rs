//! The services some tests need: PostgreSQL, Redis and NATS, reached through
//! `SWITCHBOARD_TEST_POSTGRES_URL`, `_REDIS_URL` and `_NATS_URL`. Without its
//! service such a test is skipped, and says so where someone will see it:
//! test output is captured, so besides a `SKIPPED` line in its own output it
//! leaves a line in a file under `SWITCHBOARD_TEST_SKIPPED_DIR`, which
//! `scripts/test` sets and sums up after the run. With
//! `SWITCHBOARD_TEST_REQUIRE_SERVICES=1` a missing service fails the test.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const POSTGRES: &str = "SWITCHBOARD_TEST_POSTGRES_URL";
pub const REDIS: &str = "SWITCHBOARD_TEST_REDIS_URL";
pub const NATS: &str = "SWITCHBOARD_TEST_NATS_URL";

/// Where skipped tests leave their line (`<variable>\t<test>`), one file each.
pub const SKIPPED_DIR: &str = "SWITCHBOARD_TEST_SKIPPED_DIR";

/// The service URL in `var` ([`POSTGRES`], [`REDIS`] or [`NATS`]), or `None`
/// when it is unset or empty: the calling test is then noted as skipped and
/// should return.
///
/// # Panics
///
/// When the variable is missing and `SWITCHBOARD_TEST_REQUIRE_SERVICES=1`.
pub fn service_url(var: &str) -> Option<String> {
    if let Some(url) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Some(url);
    }
    skip(var, &format!("{var} is not set"));
    None
}

/// Notes the running test as skipped for want of `var` (`why` says what is
/// missing), or fails it when services are required.
pub(crate) fn skip(var: &str, why: &str) {
    let test = current_test();
    let required = std::env::var("SWITCHBOARD_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    assert!(!required, "{test}: {why}, but services are required (SWITCHBOARD_TEST_REQUIRE_SERVICES=1)");
    println!("SKIPPED {test}: {why}");
    if let Some(dir) = std::env::var_os(SKIPPED_DIR) {
        note_skipped(Path::new(&dir), var, &test);
    }
}

/// The running test as nextest names it (`crate::binary test::path`); under
/// `cargo test`, the package and the test thread's name.
fn current_test() -> String {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let binary = var("NEXTEST_BINARY_ID").or_else(|| var("CARGO_PKG_NAME")).unwrap_or_default();
    let name = var("NEXTEST_TEST_NAME")
        .or_else(|| std::thread::current().name().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("{binary} {name}")
}

/// Writes `<var>\t<test>` to a file of its own in `dir` (tests run in many
/// processes at once, so none shares a file). A failure to write is told on
/// stderr: the `SKIPPED` line is still in the test's output.
fn note_skipped(dir: &Path, var: &str, test: &str) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let file = dir.join(format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    if let Err(e) = std::fs::write(&file, format!("{var}\t{test}\n")) {
        eprintln!("cannot note the skip in {}: {e}", file.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_skip_leaves_its_own_line() {
        let dir = std::env::temp_dir().join(format!("sb-skipped-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        note_skipped(&dir, POSTGRES, "switchboard-store::conformance postgres::a");
        note_skipped(&dir, NATS, "switchboard-bus::conformance nats::b");
        let mut lines: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .collect();
        lines.sort();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            lines,
            [
                "SWITCHBOARD_TEST_NATS_URL\tswitchboard-bus::conformance nats::b\n",
                "SWITCHBOARD_TEST_POSTGRES_URL\tswitchboard-store::conformance postgres::a\n",
            ]
        );
    }

    #[test]
    fn the_test_is_named_by_binary_and_name() {
        let test = current_test();
        assert!(test.ends_with("services::tests::the_test_is_named_by_binary_and_name"), "{test}");
        assert!(test.starts_with("switchboard-testkit"), "{test}");
    }
}
