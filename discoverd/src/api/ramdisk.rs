//! `POST /v1/continue`: what the ramdisk posts. Unauthenticated by design;
//! accepts data only for nodes under introspection.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{parse_json, read_body};
use crate::app::App;

async fn handle(app: &App, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, app.config.max_body_size).await?;
    let value = parse_json(&bytes)?;
    let reply = app.processor.process(value).await?;
    Ok(axum::Json(reply).into_response())
}

/// The handler, counted by result.
pub async fn continue_(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let resp = handle(&app, headers, body).await.into_response();
    app.metrics.continue_result(resp.status().as_u16());
    resp
}
