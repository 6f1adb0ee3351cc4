//! The HTTP API: discoverd 1.0's endpoints with ironic-inspector's error
//! envelope and status fields, one file per resource. This is the only
//! layer that knows HTTP: it maps the flows' typed errors to answers
//! ([`error`]); bodies are size-limited.

pub mod auth;
pub mod data;
pub mod error;
pub mod events;
pub mod health;
pub mod introspection;
pub mod metrics;
pub mod openapi;
pub mod ramdisk;
pub mod rules;
pub mod versions;

pub use error::ApiError;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde_json::Value;

use crate::app::App;
use auth::Authenticator;

/// Reads a body up to `limit` bytes: 413 above it, 400 when unreadable.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than the {limit}-byte limit (max_body_size)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            ApiError::bad_request(format!("Failed to read the request body: {e}"))
        }
    })
}

/// Parses JSON whatever the Content-Type (1.0 did), 400 on failure.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Invalid data: the request body is empty"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid data: not valid JSON: {e}")))
}

/// Path and query extractors' rejections as our JSON error, not axum's
/// plain text.
pub(crate) fn rejected(r: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(r.to_string())
}

async fn not_found() -> ApiError {
    ApiError::not_found("The requested URL was not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL",
    )
}

/// Operator endpoints, behind `auth_strategy`.
fn operator_routes(app: &App, auth: Arc<Authenticator>) -> Router<App> {
    let routes = Router::new()
        .route("/v1/introspection", get(introspection::list))
        .route(
            "/v1/introspection/{uuid}",
            post(introspection::start).get(introspection::status),
        )
        .route("/v1/introspection/{uuid}/abort", post(introspection::abort))
        .route("/v1/introspection/{uuid}/data", get(data::processed))
        .route(
            "/v1/introspection/{uuid}/data/unprocessed",
            get(data::unprocessed).post(data::reapply),
        )
        .route("/v1/discover", post(introspection::discover))
        .route("/v1/events", get(events::events))
        .route(
            "/v1/rules",
            get(rules::list).post(rules::create).delete(rules::delete_all),
        )
        .route("/v1/rules/{uuid}", get(rules::show).delete(rules::delete));
    let routes = if app.config.metrics_public {
        routes
    } else {
        routes.route("/metrics", get(metrics::metrics))
    };
    routes.route_layer(axum::middleware::from_fn_with_state(auth, auth::require_operator))
}

/// `/metrics` outside authentication, when `metrics_public`.
fn public_metrics(app: &App) -> Router<App> {
    if app.config.metrics_public {
        Router::new().route("/metrics", get(metrics::metrics))
    } else {
        Router::new()
    }
}

/// The whole router.
pub fn router(app: App, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/", get(versions::root))
        .route("/v1", get(versions::v1))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/{version}", get(versions::other_version))
        .route("/v1/continue", post(ramdisk::continue_))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(operator_routes(&app, auth))
        .merge(public_metrics(&app))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(versions::negotiate))
        .with_state(app)
}
