//! The web face of the binary (SPEC §14): the embeddable widget
//! (`/widget.js`), the demo shop (`/demo`), the agent console (`/admin`), and
//! the widget's bootstrap question (`GET /v1/widget/bootstrap`). Pages get a
//! strict Content-Security-Policy; nothing here reads or writes the store.

pub mod assets;
mod bootstrap;
mod serve;
mod widget;

use crate::state::AppState;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use assets::Assets;

/// Pages and assets (plain routes: not JSON, not in the API description),
/// and the described bootstrap endpoint.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .route("/", get(serve::root))
        .route("/widget.js", get(serve::widget))
        .route("/demo", get(serve::page))
        .route("/demo/{*file}", get(serve::file))
        .route("/admin", get(serve::page))
        .route("/admin/{*file}", get(serve::file))
        .routes(routes!(bootstrap::bootstrap))
}
