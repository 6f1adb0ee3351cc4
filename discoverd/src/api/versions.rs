//! Version discovery (`GET /`, `GET /v1`) and the version headers every
//! answer carries.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The inspector API versions we answer to (headers on every response).
pub const MIN_VERSION: &str = "1.0";
pub const MAX_VERSION: &str = "1.0";

fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
}

/// `GET /`.
pub async fn root(headers: HeaderMap) -> Response {
    axum::Json(json!({"versions": [{
        "id": MAX_VERSION, "status": "CURRENT",
        "links": [{"href": format!("http://{}/v1", host(&headers)), "rel": "self"}]
    }]}))
    .into_response()
}

/// `GET /v1`.
pub async fn v1(headers: HeaderMap) -> Response {
    let host = host(&headers);
    axum::Json(json!({"resources": [
        {"name": "introspection", "links": [{"href": format!("http://{host}/v1/introspection"), "rel": "self"}]},
        {"name": "continue", "links": [{"href": format!("http://{host}/v1/continue"), "rel": "self"}]}
    ]}))
    .into_response()
}

/// Adds the minimum and maximum version headers to every answer.
pub async fn headers(req: Request, next: axum::middleware::Next) -> Response {
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

/// The host the client addressed, for links.
pub fn request_host(headers: &HeaderMap) -> &str {
    host(headers)
}
