//! `/v1/rules` and `/v1/rules/<uuid>`: ironic-inspector's introspection
//! rules API (create, list, show, delete one, delete all).

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::versions::ApiVersion;
use super::{parse_json, read_body, rejected};
use crate::app::App;
use crate::rules::Rule;

fn repr(rule: &Rule, short: bool) -> Value {
    let mut v = rule.as_json(short);
    v["links"] = json!([{"href": format!("/v1/rules/{}", rule.uuid), "rel": "self"}]);
    v
}

/// `POST /v1/rules`: 201 from API 1.6, 200 below (as the inspector).
pub async fn create(
    State(app): State<App>,
    version: ApiVersion,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, app.config.max_body_size).await?;
    let body = parse_json(&bytes)?;
    let rule = app.rules.create(&body).await?;
    let status = if version >= ApiVersion::RULE_CREATED {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(repr(&rule, false))).into_response())
}

/// `GET /v1/rules`: every rule, short, in creation order.
pub async fn list(State(app): State<App>) -> Result<Response, ApiError> {
    let rules = app.rules.all().await?;
    let list: Vec<Value> = rules.iter().map(|r| repr(r, true)).collect();
    Ok(axum::Json(json!({"rules": list})).into_response())
}

/// `GET /v1/rules/<uuid>`.
pub async fn show(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let rule = app.rules.get(&uuid).await?;
    Ok(axum::Json(repr(&rule, false)).into_response())
}

/// `DELETE /v1/rules/<uuid>`: 204.
pub async fn delete(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    app.rules.delete(&uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1/rules`: 204.
pub async fn delete_all(State(app): State<App>) -> Result<Response, ApiError> {
    app.rules.delete_all().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
