//! Cursors: the resume cursor (`Last-Event-ID`, `?last_event_id=`, a
//! frame's `last_event_id`), the page cursor of `GET /v1/sessions` and that
//! of `GET /v1/admin/sessions`. A cursor that parses renders again to one
//! that parses to the same value; the resume cursor reads the same from a
//! header, a query and a frame. The first byte picks which.

use serde_json::Value;
use switchboard_server::fuzz as server;

pub fn cursor(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 3 {
        0 => resume(rest),
        1 => session_page(rest),
        _ => admin_page(rest),
    }
}

fn resume(raw: &[u8]) {
    let from_header = server::sse_cursor(Some(raw), None);
    if let Ok(Some(n)) = from_header {
        assert!(n >= 0, "a negative cursor {n}");
        assert!(raw.iter().all(u8::is_ascii_digit), "a cursor from {raw:?}");
        assert_eq!(server::sse_cursor(Some(n.to_string().as_bytes()), None), Ok(Some(n)));
        assert_eq!(server::frame_cursor(Some(&Value::from(n))), Ok(Some(n)), "as a JSON number");
    }
    let Ok(text) = std::str::from_utf8(raw) else { return };
    let from_frame = server::frame_cursor(Some(&Value::String(text.to_owned())));
    if from_header.is_ok() {
        assert_eq!(from_frame.is_ok(), from_header.is_ok(), "frame and header disagree on {text:?}");
        assert_eq!(from_frame.ok(), from_header.ok(), "frame and header disagree on {text:?}");
    }
    // As a query, the text is the whole query string.
    if let Ok(Some(n)) = server::sse_cursor(None, Some(text)) {
        let again = format!("last_event_id={n}");
        assert_eq!(server::sse_cursor(None, Some(&again)), Ok(Some(n)), "from {text:?}");
    }
}

fn session_page(raw: &[u8]) {
    let Ok(text) = std::str::from_utf8(raw) else { return };
    let Ok((millis, id)) = server::session_cursor(text) else { return };
    let again = server::render_session_cursor(millis, id);
    let Some(again) = again else { panic!("{text:?} read as a time no session has") };
    assert_eq!(server::session_cursor(&again), Ok((millis, id)), "{text:?} rendered as {again:?}");
}

fn admin_page(raw: &[u8]) {
    const TENANT: &str = "acme";
    let Ok(query) = std::str::from_utf8(raw) else { return };
    let Ok(Some((key, id))) = server::admin_sessions_query(TENANT, query) else { return };
    // The same query without its cursor, then with the cursor it renders.
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "cursor") {
        rest.append_pair(&k, &v);
    }
    let rest = rest.finish();
    let cursor = server::render_admin_cursor(TENANT, &rest, key, id);
    let Ok(cursor) = cursor else { panic!("{rest:?} refused once its cursor was taken out") };
    let again = format!("{rest}{}cursor={cursor}", if rest.is_empty() { "" } else { "&" });
    assert_eq!(server::admin_sessions_query(TENANT, &again), Ok(Some((key, id))), "{query:?} -> {again:?}");
}
