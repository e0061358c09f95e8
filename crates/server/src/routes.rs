//! The routing table, and nothing else. Routes of the API are registered
//! with their description (`routes!` reads each handler's `#[utoipa::path]`),
//! so a route cannot be served without being described; the few registered
//! with plain `.route` serve pages and assets, not JSON (see `tests/openapi.rs`).

use crate::edge;
use crate::handlers::{chat, health, link, me, memory, sessions, tickets};
use crate::http::{trace, ApiError};
use crate::limits;
use crate::openapi;
use crate::realtime::{subscribe, ws};
use crate::state::AppState;
use crate::telemetry;
use axum::Router;
use switchboard_core::ErrorCode;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(state: AppState) -> Router {
    let (tables, api) = tables();
    openapi::publish(&api);
    let end_user = tables
        .end_user
        // Set before the edge layer, so the edge also sees requests for methods
        // a route lacks (preflights are OPTIONS).
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::end_user))
        // X-RateLimit-* headers of the endpoints that call `limits::admit`.
        .layer(axum::middleware::from_fn(limits::layer));
    tables
        .service
        .merge(end_user)
        .merge(tables.web)
        .merge(crate::demo_shop::router())
        .merge(crate::admin::behind_edge(tables.admin, state.clone()))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound) })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(telemetry::track_http))
        .layer(axum::middleware::from_fn(trace::middleware))
        .with_state(state)
}

/// The description of every route [`router`] serves.
pub fn description() -> OpenApi {
    tables().1
}

/// The routes by the edge they sit behind, before any layer.
struct Tables {
    service: Router<AppState>,
    end_user: Router<AppState>,
    web: Router<AppState>,
    admin: Router<AppState>,
}

fn tables() -> (Tables, OpenApi) {
    let mut api = openapi::base();
    let mut split = |table: OpenApiRouter<AppState>| {
        let (router, described) = table.split_for_parts();
        api.merge(described);
        router
    };
    let service = split(
        OpenApiRouter::default()
            .routes(routes!(health::healthz))
            .routes(routes!(health::readyz))
            .routes(routes!(telemetry::render))
            .routes(routes!(openapi::serve)),
    );
    let end_user = split(end_user());
    let web = split(crate::web::router());
    let admin = split(crate::admin::router());
    (Tables { service, end_user, web, admin }, openapi::finish(api))
}

/// The end-user API (SPEC §4), behind the end-user edge.
fn end_user() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(sessions::create, sessions::list))
        .routes(routes!(sessions::get, sessions::delete))
        .routes(routes!(sessions::messages))
        .routes(routes!(subscribe::events))
        .routes(routes!(ws::ws))
        .routes(routes!(chat::chat))
        .routes(routes!(tickets::create))
        .routes(routes!(link::link))
        .routes(routes!(me::erase))
        .routes(routes!(me::export))
        .routes(routes!(memory::list, memory::forget_all))
        .routes(routes!(memory::get, memory::put, memory::forget))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed)
}
