//! Answers for the embedded files: the right `Content-Type`, an `ETag`
//! (a matching `If-None-Match` gets 304), gzip when the client takes it, and
//! on pages the strict policy of SPEC §14 (no inline script or style, no
//! framing).

use super::assets::Asset;
use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use switchboard_core::ErrorCode;

/// The policy of every page the binary serves.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `/` shows the demo while the built-in demo tenant exists.
pub async fn root(State(state): State<AppState>) -> Response {
    if state.tenants.get("demo").is_some() {
        Redirect::to("/demo").into_response()
    } else {
        ApiError::new(ErrorCode::RouteNotFound).into_response()
    }
}

pub async fn widget(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = respond(&state, "/widget.js", &headers);
    let served = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let h = response.headers_mut();
    // Host pages embed it from another origin, also under
    // Cross-Origin-Embedder-Policy; a changed widget reaches them within minutes.
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    if served {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    }
    response
}

/// `/demo` and `/admin`: the folder's `index.html`.
pub async fn page(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    respond(&state, uri.path(), &headers)
}

/// Any other file of a page's folder.
pub async fn file(
    State(state): State<AppState>,
    uri: Uri,
    Path(_): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(&state, uri.path(), &headers)
}

fn respond(state: &AppState, path: &str, headers: &HeaderMap) -> Response {
    match state.web.get(path) {
        Some(asset) => answer(&asset, headers),
        None => ApiError::new(ErrorCode::RouteNotFound).into_response(),
    }
}

fn answer(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == asset.etag || tag.trim() == "*");
    let gzip = asset.gzip.as_ref().filter(|_| accepts_gzip(request));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        gzip.unwrap_or(&asset.body).clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip.is_some() && !fresh {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // Not fingerprinted: revalidate every time (cheap with the ETag).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if asset.content_type.starts_with("text/html") {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a weight above zero.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let zero = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("br")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("gzip;q=0.000")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
