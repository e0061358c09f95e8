//! Replays every seed of every fuzz target (`fuzz/corpus/<target>/`)
//! through the same function libFuzzer calls, so the normal test suite keeps
//! what fuzzing found without fuzzing. A target without seeds fails: a
//! renamed target or directory must not silently test nothing.
// Helpers outside `#[test]` fns: clippy.toml's allow-*-in-tests does not
// reach them in integration tests.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use switchboard_fuzz::TARGETS;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir().join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    files
}

#[test]
fn every_seed_of_every_target_passes() {
    for (name, target) in TARGETS {
        for seed in seeds(name) {
            let data = std::fs::read(&seed).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: the seed {} fails", seed.display());
        }
    }
}

#[test]
fn every_corpus_directory_is_a_target_and_has_its_entry() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&name.as_str()), "fuzz/corpus/{name} belongs to no target");
    }
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for name in names {
        let entry = targets.join(format!("{name}.rs"));
        assert!(entry.is_file(), "{} is missing", entry.display());
    }
}
