//! The HTTP API: discoverd 1.0's endpoints with ironic-inspector's error
//! envelope and status fields. Every error is JSON
//! `{"error": {"message": "..."}}`; bodies are size-limited; a 500 never
//! shows internals, only an id to find them in the log.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::app::App;
use crate::node_cache::{CacheError, iso8601};
use crate::{introspect, process};

/// The inspector API versions we answer to (headers on every response).
pub const MIN_VERSION: &str = "1.0";
pub const MAX_VERSION: &str = "1.0";

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Logs `detail` with an id and returns a 500 that shows only the id.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal server error (see the log for error id {id})"),
        )
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::NotFound(_) | CacheError::NoMatch(_) | CacheError::Ambiguous(_) => {
                ApiError::not_found(e.to_string())
            }
            CacheError::AlreadyFinished { .. } | CacheError::Duplicate { .. } => {
                ApiError::bad_request(e.to_string())
            }
            // The database is unusable (read-only, disk full, locked):
            // say so plainly; it is the operator's to fix, not a bug.
            CacheError::Storage { .. } | CacheError::Directory { .. } => {
                tracing::error!("node cache failure: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The node cache database is not available (read-only file or disk full?); see the log",
                )
            }
            CacheError::Unwritable { ref reason, .. } => {
                tracing::error!("node cache failure: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The node cache database cannot be written ({reason}); nothing was changed"),
                )
            }
            CacheError::Task(_) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// Reads a body up to `limit` bytes: 413 above it, 400 when unreadable.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
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
fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Invalid data: the request body is empty"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid data: not valid JSON: {e}")))
}

fn validate_uuid(uuid: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(uuid)
        .map(drop)
        .map_err(|_| ApiError::bad_request("Invalid UUID value"))
}

async fn versions(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    axum::Json(json!({"versions": [{
        "id": MAX_VERSION, "status": "CURRENT",
        "links": [{"href": format!("http://{host}/v1"), "rel": "self"}]
    }]}))
    .into_response()
}

async fn v1(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    axum::Json(json!({"resources": [
        {"name": "introspection", "links": [{"href": format!("http://{host}/v1/introspection"), "rel": "self"}]},
        {"name": "continue", "links": [{"href": format!("http://{host}/v1/continue"), "rel": "self"}]}
    ]}))
    .into_response()
}

/// Path and query extractors' rejections as our JSON error, not axum's
/// plain text.
fn rejected(r: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(r.to_string())
}

async fn start(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let Query(q) = q.map_err(rejected)?;
    validate_uuid(&uuid)?;
    let opts = introspect::StartOptions {
        // 1.0: any non-empty value means yes, "0" and "false" included.
        setup_ipmi_credentials: q.get("setup_ipmi_credentials").is_some_and(|v| !v.is_empty())
            || q.contains_key("new_ipmi_password"),
        new_ipmi_username: q.get("new_ipmi_username").cloned(),
        new_ipmi_password: q.get("new_ipmi_password").cloned(),
    };
    introspect::start(&app, &uuid, opts).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({}))).into_response())
}

async fn status(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    validate_uuid(&uuid)?;
    let n = app.cache.get_node(&uuid).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(axum::Json(json!({
        "uuid": n.uuid,
        "finished": n.finished(),
        "error": n.error,
        "state": n.state,
        "started_at": iso8601(n.started_at),
        "finished_at": n.finished_at.map(iso8601),
        "links": [{"href": format!("http://{host}/v1/introspection/{uuid}"), "rel": "self"}],
    }))
    .into_response())
}

async fn continue_(State(app): State<App>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, app.config.max_body_size).await?;
    let value = parse_json(&bytes)?;
    let reply = process::process(&app, value).await?;
    Ok(axum::Json(reply).into_response())
}

async fn continue_counted(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let resp = continue_(State(app.clone()), headers, body).await.into_response();
    app.metrics.continue_result(resp.status());
    resp
}

async fn discover(State(app): State<App>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, app.config.max_body_size).await?;
    let uuids = match parse_json(&bytes)? {
        Value::Array(a) => a,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid data: expected a JSON list of UUIDs, got {}",
                process::type_name(&other)
            )));
        }
    };
    // 1.0: each in order, the first error stops the loop; nodes already
    // accepted keep going.
    for u in uuids {
        let Some(uuid) = u.as_str() else {
            return Err(ApiError::bad_request("Invalid data: UUIDs must be strings"));
        };
        validate_uuid(uuid)?;
        introspect::start(&app, uuid, introspect::StartOptions::default()).await?;
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({}))).into_response())
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

async fn version_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "X-OpenStack-Ironic-Inspector-API-Minimum-Version",
        HeaderValue::from_static(MIN_VERSION),
    );
    h.insert(
        "X-OpenStack-Ironic-Inspector-API-Maximum-Version",
        HeaderValue::from_static(MAX_VERSION),
    );
    resp
}

/// Operator endpoints, behind `auth_strategy`.
fn operator_routes(app: &App) -> Router<App> {
    let routes = Router::new()
        .route("/v1/introspection/{uuid}", post(start).get(status))
        .route("/v1/discover", post(discover));
    let routes = if app.config.metrics_public {
        routes
    } else {
        routes.route("/metrics", get(crate::metrics::metrics))
    };
    routes.route_layer(axum::middleware::from_fn_with_state(
        app.auth.clone(),
        crate::auth::require_operator,
    ))
}

/// `/metrics` outside authentication, when `metrics_public`.
fn public_metrics(app: &App) -> Router<App> {
    if app.config.metrics_public {
        Router::new().route("/metrics", get(crate::metrics::metrics))
    } else {
        Router::new()
    }
}

/// The whole router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v1", get(v1))
        .route("/v1/continue", post(continue_counted))
        .route("/healthz", get(crate::metrics::healthz))
        .route("/readyz", get(crate::metrics::readyz))
        .merge(operator_routes(&app))
        .merge(public_metrics(&app))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(version_headers))
        .with_state(app)
}
