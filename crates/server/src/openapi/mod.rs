//! `GET /openapi.json` (SPEC §4): the API's OpenAPI 3.1 description, built
//! from the handlers' own annotations and types as the routing table is
//! assembled (`utoipa-axum` registers a route and its description in one
//! step), then finished here with what applies to many operations at once:
//! the security schemes, the error envelope on every error status, and the
//! schemas of the streamed events. It is built once and served as bytes.

mod errors;
pub mod events;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::OnceLock;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Required};
use utoipa::{Modify, OpenApi as _};

/// The tags operations are grouped by.
pub mod tag {
    pub const SESSIONS: &str = "sessions";
    pub const CHAT: &str = "chat";
    pub const IDENTITY: &str = "identity";
    pub const MEMORY: &str = "memory";
    pub const ME: &str = "me";
    pub const ADMIN: &str = "admin";
    pub const SERVICE: &str = "service";
}

/// The security schemes' names, as operations' `security(...)` name them.
pub mod scheme {
    /// A tenant's user JWT (HS256 with the tenant's secret, or RS256/ES256).
    pub const USER: &str = "user_jwt";
    /// The runtime-signed visitor token of `POST /v1/sessions`.
    pub const VISITOR: &str = "visitor_token";
    /// A short-lived ticket in `?ticket=` (SSE subscription, WebSocket).
    pub const TICKET: &str = "ticket";
    /// The operator token of the configuration.
    pub const OPERATOR: &str = "operator_token";
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Self-hosted multi-tenant AI chat runtime: sessions, streamed answers over \
                       SSE and WebSocket, memory, the visitor's own data, and the admin API. \
                       Every error is the envelope `{\"error\": {code, message, http_status, \
                       trace_id, details?}}`; every response carries `X-Trace-Id`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "sessions", description = "A subject's sessions, their history and their live events"),
        (name = "chat", description = "Sending a message and streaming the answer"),
        (name = "identity", description = "Tickets and linking a visitor to a user"),
        (name = "memory", description = "A user's remembered preferences"),
        (name = "me", description = "The caller's own data: export and erasure"),
        (name = "admin", description = "Agents and the operator"),
        (name = "service", description = "Health, readiness and this description")
    )
)]
struct Base;

/// The description's fixed part; the routing table adds the operations.
pub fn base() -> OpenApi {
    Base::openapi()
}

/// Finishes the description the routing table collected: the modifiers run
/// after every operation is in, so they reach all of them.
pub fn finish(mut api: OpenApi) -> OpenApi {
    let modifiers: [&dyn Modify; 5] =
        [&Security, &TenantHeader, &OptionalBodies, &errors::Envelopes, &events::Events];
    for modifier in modifiers {
        modifier.modify(&mut api);
    }
    bound_unsigned(api)
}

/// Unsigned fields (`u32`, `u64`…) are written with the formats `uint32`,
/// `uint64`… that JSON Schema validators do not know; each gets the bounds
/// of its type, so a generated value is one the server can read (utoipa's
/// default, `int32` for a `u32`, would understate the range by half).
fn bound_unsigned(api: OpenApi) -> OpenApi {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                let max = match map.get("format").and_then(|f| f.as_str()) {
                    Some("uint8") => Some(u64::from(u8::MAX)),
                    Some("uint16") => Some(u64::from(u16::MAX)),
                    Some("uint32") => Some(u64::from(u32::MAX)),
                    Some("uint64") => Some(u64::MAX),
                    _ => None,
                };
                if let Some(max) = max {
                    map.entry("minimum").or_insert(0.into());
                    map.entry("maximum").or_insert(max.into());
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut json) = serde_json::to_value(&api) else { return api };
    walk(&mut json);
    serde_json::from_value(json).unwrap_or(api)
}

static DOCUMENT: OnceLock<Bytes> = OnceLock::new();

/// Keeps the finished description for `GET /openapi.json` (the first router
/// built wins: every router of the process describes the same API).
pub fn publish(api: &OpenApi) {
    DOCUMENT.get_or_init(|| Bytes::from(api.to_json().unwrap_or_default()));
}

/// The description as JSON.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tag::SERVICE,
    responses((status = 200, description = "This OpenAPI 3.1 description", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    let body = DOCUMENT.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `X-Tenant-Id` on the end-user endpoints (SPEC §4): the tenant, unless
/// the token, the ticket or `?tenant=` names it.
struct TenantHeader;

impl Modify for TenantHeader {
    fn modify(&self, api: &mut OpenApi) {
        let header = ParameterBuilder::new()
            .name("X-Tenant-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("The tenant; else the token's or the ticket's. All that name one must agree."))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        for (path, item) in api.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") || path.starts_with("/v1/admin") || path == "/v1/widget/bootstrap" {
                continue;
            }
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                operation.parameters.get_or_insert_with(Vec::new).push(header.clone().into());
            }
        }
    }
}

/// A body a request may leave out is not a body that may be `null`:
/// `Option<Body>` in an annotation says the first, and utoipa writes the
/// second (`oneOf: [Body, null]`). The handlers refuse `null` (an object or
/// nothing), so the description keeps `Body` and `required: false`.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, api: &mut OpenApi) {
        for item in api.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            let bodies = operations.into_iter().flatten().filter_map(|o| match o.request_body.as_mut() {
                Some(RefOr::T(body)) => Some(body),
                _ => None,
            });
            for body in bodies {
                for content in body.content.values_mut() {
                    let RefOr::T(content) = content else { continue };
                    let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else { continue };
                    let not_null: Vec<_> = one_of.items.iter().filter(|s| !is_null(s)).cloned().collect();
                    if let [only] = not_null.as_slice() {
                        content.schema = Some(only.clone());
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(
            scheme::USER,
            bearer(
                "A user JWT signed by the tenant's backend (claims sub, exp, tid or aud; \
                 role admin for agents on /v1/admin).",
            ),
        );
        components.add_security_scheme(
            scheme::VISITOR,
            bearer("The runtime-signed visitor token returned by POST /v1/sessions."),
        );
        components.add_security_scheme(
            scheme::TICKET,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A ticket from POST /v1/tickets, bound to tenant, subject and session.",
            ))),
        );
        components.add_security_scheme(
            scheme::OPERATOR,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator token of the configuration (admin API only)."))
                    .build(),
            ),
        );
    }
}
