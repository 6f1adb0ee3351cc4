//! Stored introspection data: `GET /v1/introspection/<node>/data`
//! (processed, 1.1), `GET …/data/unprocessed` (raw, 1.17), and reapply,
//! `POST …/data/unprocessed` (1.4; with a JSON object body from 1.15).

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use super::introspection::{accepted, resolve};
use super::{parse_json, read_body, rejected};
use crate::app::App;
use crate::config::StoreData;
use crate::processing::type_name;
use crate::store::DataKind;

async fn get(app: App, node: &str, kind: DataKind) -> Result<Response, ApiError> {
    if app.config.store_data == StoreData::None {
        return Err(ApiError::not_found(
            "Inspector is not configured to store data. Set the store_data configuration option to change this.",
        ));
    }
    let id = resolve(&app, node).await?;
    match app.store.get_data(id, kind).await? {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError::not_found(format!(
            "No {} introspection data stored for node {id}",
            match kind {
                DataKind::Raw => "unprocessed",
                DataKind::Processed => "processed",
            }
        ))),
    }
}

/// `GET /v1/introspection/<node>/data`.
pub async fn processed(
    State(app): State<App>,
    node: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(node) = node.map_err(rejected)?;
    get(app, &node, DataKind::Processed).await
}

/// `GET /v1/introspection/<node>/data/unprocessed`.
pub async fn unprocessed(
    State(app): State<App>,
    node: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(node) = node.map_err(rejected)?;
    get(app, &node, DataKind::Raw).await
}

/// `POST /v1/introspection/<node>/data/unprocessed`: 202 once the node
/// is `reapplying`.
pub async fn reapply(
    State(app): State<App>,
    node: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(node) = node.map_err(rejected)?;
    let bytes = read_body(&headers, body, app.config.max_body_size).await?;
    let data = if bytes.is_empty() {
        None
    } else {
        match parse_json(&bytes)? {
            v @ Value::Object(_) => Some(v),
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid data: expected a JSON object, got {}",
                    type_name(&other)
                )));
            }
        }
    };
    let id = resolve(&app, &node).await?;
    app.processor.reapply(id, data).await?;
    Ok(accepted())
}
