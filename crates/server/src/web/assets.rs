//! The web assets the binary serves (SPEC §14): the files of `web/` embedded
//! at build time, with `/widget.js` assembled from the widget's parts, each
//! compressed and given an ETag once, at start. Setting `SWITCHBOARD_WEB_DIR`
//! reads `web/` from disk on every request instead: for developing the pages
//! without rebuilding, never for production.

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The variable that switches to reading `web/` from disk.
pub const DEV_DIR_ENV: &str = "SWITCHBOARD_WEB_DIR";

/// One servable file.
pub struct Asset {
    pub body: Bytes,
    /// The body gzipped, when that is smaller.
    pub gzip: Option<Bytes>,
    /// A strong validator: a hash of the uncompressed body.
    pub etag: String,
    pub content_type: &'static str,
}

/// Every file by its public path (`/widget.js`, `/demo/shop.css`, …).
pub struct Assets {
    files: HashMap<String, Arc<Asset>>,
    dev_dir: Option<PathBuf>,
}

impl Assets {
    /// The embedded files, or the development directory when the variable is set.
    pub fn load() -> Self {
        let dev_dir = std::env::var_os(DEV_DIR_ENV).map(PathBuf::from);
        if let Some(dir) = &dev_dir {
            tracing::warn!(dir = %dir.display(), "serving web assets from disk ({DEV_DIR_ENV}): for development only");
            return Self { files: HashMap::new(), dev_dir };
        }
        let sources = embedded::FILES.iter().map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()));
        Self { files: build(sources.collect()), dev_dir: None }
    }

    /// The file served at `path`, if any.
    pub fn get(&self, path: &str) -> Option<Arc<Asset>> {
        match &self.dev_dir {
            None => self.files.get(path).cloned(),
            Some(dir) => build(read_dir(dir)).remove(path),
        }
    }
}

/// Public paths from `web/` paths: `widget/*` become `/widget.js`, `X/index.html`
/// is served at `/X`, anything else at its own path.
fn build(sources: Vec<(String, Vec<u8>)>) -> HashMap<String, Arc<Asset>> {
    let mut files = HashMap::new();
    let mut widget = Vec::new();
    for (name, bytes) in sources {
        if name.starts_with("widget/") {
            widget.push((name, bytes));
            continue;
        }
        let public = match name.strip_suffix("/index.html") {
            Some(dir) => format!("/{dir}"),
            None => format!("/{name}"),
        };
        files.insert(public, Arc::new(asset(&name, Bytes::from(bytes))));
    }
    let script = super::widget::assemble(&widget);
    files.insert("/widget.js".to_owned(), Arc::new(asset("widget.js", Bytes::from(script))));
    files
}

fn asset(name: &str, body: Bytes) -> Asset {
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..12]));
    let gzip = gzip(&body).filter(|g| g.len() < body.len()).map(Bytes::from);
    Asset { body, gzip, etag, content_type: content_type(name) }
}

pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `web/`'s servable files read from disk (development only).
fn read_dir(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["widget", "demo", "admin"].iter().map(|p| root.join(p)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let (Ok(rel), Ok(bytes)) = (path.strip_prefix(root), std::fs::read(&path)) {
                out.push((rel.to_string_lossy().replace('\\', "/"), bytes));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_pages_are_served_at_their_folder_and_parts_become_the_widget() {
        let files = build(vec![
            ("admin/index.html".into(), b"<!doctype html>".to_vec()),
            ("admin/app.js".into(), b"export {}".to_vec()),
            ("widget/widget.css".into(), b"a{}".to_vec()),
            ("widget/10-a.js".into(), b"var a = 1;".to_vec()),
        ]);
        let mut paths: Vec<_> = files.keys().cloned().collect();
        paths.sort();
        assert_eq!(paths, ["/admin", "/admin/app.js", "/widget.js"]);
        assert_eq!(files["/admin"].content_type, "text/html; charset=utf-8");
        assert_eq!(files["/admin/app.js"].content_type, "text/javascript; charset=utf-8");
    }

    #[test]
    fn etags_follow_the_content() {
        let a = asset("a.css", Bytes::from_static(b"body{color:red}"));
        let b = asset("a.css", Bytes::from_static(b"body{color:blue}"));
        assert_ne!(a.etag, b.etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
    }

    #[test]
    fn the_embedded_widget_fits_its_budget() {
        let assets = Assets {
            files: build(embedded::FILES.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())).collect()),
            dev_dir: None,
        };
        let widget = assets.get("/widget.js").unwrap_or_else(|| unreachable!("always assembled"));
        let gzipped = gzip(&widget.body).map_or(usize::MAX, |g| g.len());
        assert!(gzipped <= super::super::widget::BUDGET_GZIP_BYTES, "widget.js is {gzipped} bytes gzipped");
    }
}
