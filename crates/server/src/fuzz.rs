//! Entry points for the fuzz targets (`crates/fuzz`): each runs one of the
//! server's parsers on raw input, exactly as a request or a frame reaches it,
//! and tells what it made of it in plain types, so the parsers' modules stay
//! private to the crate. Nothing here serves requests or touches state.

use crate::http::json::JsonProblem;
use crate::http::ApiError;
use crate::realtime::ws::frames::{self, ClientFrame};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// What a refusal names: the fields of its problems, else its error code.
fn named(e: &ApiError) -> Vec<String> {
    let details = e.details.as_ref().and_then(|d| d.as_array());
    let fields: Vec<String> =
        details.into_iter().flatten().filter_map(|p| p["field"].as_str().map(str::to_owned)).collect();
    if fields.is_empty() {
        vec![e.code.as_str().to_owned()]
    } else {
        fields
    }
}

/// What the strict JSON reader of bodies and frames made of `text`: the
/// value; the path of a key given twice (`Err(Some(path))`); or `Err(None)`
/// for text that is not JSON.
pub fn json(text: &[u8]) -> Result<Value, Option<String>> {
    crate::http::json::parse(text).map_err(|problem| match problem {
        JsonProblem::Duplicate { path } => Some(path),
        JsonProblem::Syntax { .. } => None,
    })
}

/// A JSON body one of the API's handlers validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `POST /v1/chat`.
    Chat,
    /// `POST /v1/sessions`.
    SessionCreate,
    /// `POST /v1/tickets`.
    Ticket,
    /// `POST /v1/identity/link`.
    Link,
    /// `POST /v1/admin/sessions/{id}/messages`.
    Takeover,
    /// `PUT /v1/admin/kill-switch` and a tenant's.
    KillSwitch,
    /// `POST /v1/admin/live/tickets`.
    LiveView,
    /// `POST /v1/admin/tenants`: one `[[tenants]]` entry as JSON, validated
    /// like the configuration file's (not the check that the node can serve
    /// it, which loads key files and builds clients).
    TenantSettings,
}

impl Body {
    pub const ALL: [Body; 8] = [
        Body::Chat,
        Body::SessionCreate,
        Body::Ticket,
        Body::Link,
        Body::Takeover,
        Body::KillSwitch,
        Body::LiveView,
        Body::TenantSettings,
    ];
}

/// Reads `bytes` as the body `kind`, the way its handler does: what it
/// accepted, as JSON, or the fields its refusal names.
pub fn body(kind: Body, bytes: &[u8]) -> Result<Value, Vec<String>> {
    let map = crate::http::extract::json_object(bytes).map_err(|e| named(&e))?;
    accepted(kind, map).map_err(|e| named(&e))
}

fn accepted(kind: Body, map: Map<String, Value>) -> Result<Value, ApiError> {
    use crate::{admin, handlers};
    Ok(match kind {
        Body::Chat => {
            let b = handlers::chat_body::parse(map)?;
            json!({"session_id": b.session_id, "message": b.message, "stream": b.stream,
                   "client_message_id": b.client_message_id, "context": b.context})
        }
        Body::SessionCreate => json!({ "metadata": handlers::sessions::create_body(map)? }),
        Body::Ticket => json!({ "session_id": handlers::tickets::parse(map)? }),
        Body::Link => json!({ "visitor_token": handlers::link::parse(map)? }),
        Body::Takeover => json!({ "content": admin::takeover::parse_message(map)? }),
        Body::KillSwitch => {
            let (enabled, reason) = admin::kill_switch::switch_body(map)?;
            json!({"enabled": enabled, "reason": reason})
        }
        Body::LiveView => json!({ "session_id": admin::live::parse(map)? }),
        Body::TenantSettings => {
            let raw: crate::config::RawTenant = serde_json::from_value(Value::Object(map))
                .map_err(|_| ApiError::invalid_field("body", "is not a tenant entry"))?;
            let tenant = crate::config::validate_tenant(raw)
                .map_err(|e| crate::admin::tenant_body::invalid_message(&e.0))?;
            json!({"id": tenant.id, "allowed_origins": tenant.allowed_origins})
        }
    })
}

/// Reads `bytes` as the body of `PUT /v1/memory/{key}` for this `key`.
pub fn memory_put(key: &str, bytes: &[u8]) -> Result<String, Vec<String>> {
    let map = crate::http::extract::json_object(bytes).map_err(|e| named(&e))?;
    crate::handlers::memory::put_body(key, map).map_err(|e| named(&e))
}

/// Reads one WebSocket text frame as the server does: the first of a socket
/// must be a `hello`, any later one a client frame. What it accepted comes
/// back as JSON, with the resume cursor (`last_event_id`) already read.
pub fn ws_frame(text: &str, first: bool) -> Result<Value, Vec<String>> {
    let (kind, map) = frames::object(text).map_err(|e| named(&e))?;
    if first {
        if kind != "hello" {
            return Err(vec!["type".to_owned()]);
        }
        let hello = frames::hello(map).map_err(|e| named(&e))?;
        let cursor = frame_cursor(hello.last_event_id.as_ref())?;
        return Ok(json!({"type": "hello", "token": hello.token, "session_id": hello.session_id,
                         "last_event_id": cursor, "tenant_id": hello.context_tenant}));
    }
    Ok(match frames::client(&kind, map).map_err(|e| named(&e))? {
        ClientFrame::Message { session_id, content, client_message_id, context } => {
            json!({"type": "message", "session_id": session_id, "content": content,
                   "client_message_id": client_message_id, "context": context})
        }
        ClientFrame::Typing { session_id, active } => {
            json!({"type": "typing", "session_id": session_id, "active": active})
        }
        ClientFrame::Subscribe { session_id, last_event_id } => {
            let cursor = frame_cursor(last_event_id.as_ref())?;
            json!({"type": "subscribe", "session_id": session_id, "last_event_id": cursor})
        }
        ClientFrame::Ping { ts } => json!({"type": "ping", "ts": ts}),
        ClientFrame::Hello => json!({"type": "hello"}),
    })
}

/// The resume cursor of a WebSocket frame's `last_event_id`.
pub fn frame_cursor(value: Option<&Value>) -> Result<Option<i64>, Vec<String>> {
    crate::realtime::cursor::from_json(value).map_err(|e| named(&e))
}

/// The resume cursor of an SSE request: its `Last-Event-ID` header (if any)
/// and its query string. `Err` for a header value HTTP would not carry.
pub fn sse_cursor(header: Option<&[u8]>, query: Option<&str>) -> Result<Option<i64>, Vec<String>> {
    let mut headers = axum::http::HeaderMap::new();
    if let Some(raw) = header {
        let value = axum::http::HeaderValue::from_bytes(raw).map_err(|_| vec!["header".to_owned()])?;
        headers.insert("last-event-id", value);
    }
    crate::realtime::cursor::from_request(&headers, query).map_err(|e| named(&e))
}

/// The page cursor of `GET /v1/sessions`, read: the last activity (in
/// milliseconds) and id of the session the page continues after.
pub fn session_cursor(cursor: &str) -> Result<(i64, Uuid), Vec<String>> {
    let c = crate::handlers::sessions::decode_session_cursor(cursor).map_err(|e| named(&e))?;
    Ok((c.last_activity_at.timestamp_millis(), c.id))
}

/// The page cursor of `GET /v1/sessions` after a session with this last
/// activity and id (`None` for a time no session can have).
pub fn render_session_cursor(millis: i64, id: Uuid) -> Option<String> {
    let at = switchboard_core::time::from_millis(millis).ok()?;
    Some(crate::handlers::sessions::session_cursor(at, id))
}

/// The query string of `GET /v1/admin/sessions` for `tenant`: the key of
/// the session its cursor continues after (`None` without a cursor).
pub fn admin_sessions_query(tenant: &str, query: &str) -> Result<Option<(i64, Uuid)>, Vec<String>> {
    let q = crate::admin::query::parse(tenant, Some(query)).map_err(|e| named(&e))?;
    Ok(q.after.map(|k| (k.key, k.id)))
}

/// The cursor `GET /v1/admin/sessions` with this query hands out for the
/// page after the session with this key (`Err` for a query it refuses).
pub fn render_admin_cursor(tenant: &str, query: &str, key: i64, id: Uuid) -> Result<String, Vec<String>> {
    let q = crate::admin::query::parse(tenant, Some(query)).map_err(|e| named(&e))?;
    let key = switchboard_core::store::admin::SessionKey { key, id };
    Ok(crate::admin::query::encode_cursor(&q, key))
}

pub use jwt::{jwt, JwtOutcome, JWT_TENANT, RUNTIME_KEYS, USER_SECRET};

mod jwt {
    //! Tokens read with fixed keys, so a seed may carry validly signed ones.

    use crate::identity::keys::UserKey;
    use crate::tokens::{Signer, TokenType};

    /// The tenant the user tokens are verified for.
    pub const JWT_TENANT: &str = "acme";
    /// The HS256 secret of that tenant's user tokens.
    pub const USER_SECRET: &str = "fuzz-user-secret-fuzz-user-secret";
    /// The runtime's signing keyring (`kid:base64(32 bytes)`).
    pub const RUNTIME_KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    /// What each reader made of a token.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct JwtOutcome {
        /// The tenant the token claims, read without verifying it.
        pub claimed_tenant: Option<String>,
        /// The runtime token (visitor, ticket, admin ticket) it verified as:
        /// its type, tenant and subject.
        pub runtime: Option<(String, String, String)>,
        /// The user of `JWT_TENANT` it verified as: `sub` and whether an agent.
        pub user: Option<(String, bool)>,
        /// It verified for `JWT_TENANT` but names another tenant.
        pub user_other_tenant: bool,
    }

    /// Reads `token` as each kind of bearer token the server accepts.
    pub fn jwt(token: &str) -> JwtOutcome {
        let claimed_tenant = crate::tokens::claimed_tenant(token);
        let runtime = switchboard_store::Keyring::parse(RUNTIME_KEYS).ok().and_then(|keys| {
            let signer = Signer::new(keys);
            [TokenType::Visitor, TokenType::Ticket, TokenType::AdminTicket].into_iter().find_map(|typ| {
                let claims = signer.verify(token, typ).ok()?;
                Some((format!("{typ:?}"), claims.tid, claims.sub))
            })
        });
        let key = UserKey {
            algorithm: jsonwebtoken::Algorithm::HS256,
            key: jsonwebtoken::DecodingKey::from_secret(USER_SECRET.as_bytes()),
        };
        let now = chrono::Utc::now().timestamp();
        let twelve_hours = std::time::Duration::from_secs(12 * 3600);
        let verified = crate::identity::user::verify(&key, token, JWT_TENANT, now, twelve_hours);
        let user_other_tenant = verified == Err(crate::identity::user::UserTokenError::OtherTenant);
        let user = verified.ok().map(|u| (u.sub, u.admin));
        JwtOutcome { claimed_tenant, runtime, user, user_other_tenant }
    }
}
