//! Embeds the web assets (`web/` at the workspace root: widget parts, demo
//! page, agent console) into the binary: writes a table of `include_bytes!`
//! for every file, so the server needs nothing on disk at run time. No
//! JavaScript tooling is involved; `web/tests` (the browser tests) is left out.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("../../web");
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    for part in ["widget", "demo", "admin"] {
        collect(&web.join(part), &web, &mut files);
    }
    files.sort();
    let mut out = String::from("/// Every embedded file of `web/`: its path under `web/`, its bytes.\npub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        out.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("web_assets.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
        std::process::exit(1);
    }
}

/// Files under `dir`, depth first, skipping hidden ones.
fn collect(dir: &Path, root: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, root, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let name = rel.to_string_lossy().replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path.clone());
            println!("cargo:rerun-if-changed={}", abs.display());
            files.push((name, abs));
        }
    }
}
