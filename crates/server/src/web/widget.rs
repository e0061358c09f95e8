//! `/widget.js` from its parts (`web/widget/*.js`, joined in file-name order
//! in one function scope, and `web/widget/widget.css` as the string `CSS`).
//! The parts are plain scripts, not modules: one embed tag must be enough, so
//! the output is one classic script. The only minifying is safe by
//! construction: lines are trimmed and comment-only and blank lines dropped
//! (line breaks stay, so automatic semicolons never change).

/// The most `/widget.js` may weigh gzipped (SPEC §14: 15 KB).
#[cfg(test)]
pub const BUDGET_GZIP_BYTES: usize = 15_000;

/// The script served at `/widget.js`.
pub fn assemble(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, Vec<u8>)> = parts.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let css = sorted
        .iter()
        .filter(|(name, _)| name.ends_with(".css"))
        .map(|(_, bytes)| minify_css(&String::from_utf8_lossy(bytes)))
        .collect::<String>();
    let mut out = String::from("(function(){\"use strict\";\nvar CSS=");
    out.push_str(&serde_json::Value::String(css).to_string());
    out.push_str(";\n");
    for (_, bytes) in sorted.iter().filter(|(name, _)| name.ends_with(".js")) {
        out.push_str(&minify_js(&String::from_utf8_lossy(bytes)));
    }
    out.push_str("})();\n");
    out.into_bytes()
}

/// Trimmed lines, without comment-only and blank ones.
fn minify_js(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// CSS without comments, with runs of whitespace made one space.
fn minify_css(source: &str) -> String {
    let mut text = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start + 2..].split_once("*/").map_or("", |(_, after)| after);
    }
    text.push_str(rest);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_join_in_name_order_inside_one_scope_with_the_css() {
        let parts = vec![
            ("widget/20-b.js".to_owned(), b"  // why\n  var b = a + 1;\n\n".to_vec()),
            ("widget/widget.css".to_owned(), b"/* theme */\n:host {\n  color: red;\n}\n".to_vec()),
            ("widget/10-a.js".to_owned(), b"var a = \"// not a comment\";\n".to_vec()),
        ];
        let out = String::from_utf8(assemble(&parts)).unwrap_or_default();
        assert_eq!(
            out,
            "(function(){\"use strict\";\nvar CSS=\":host { color: red; }\";\nvar a = \"// not a comment\";\nvar b = a + 1;\n})();\n"
        );
    }
}
