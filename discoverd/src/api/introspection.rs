//! `/v1/introspection/<node>` (start, status) and `/v1/discover`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{parse_json, read_body, rejected};
use crate::app::App;
use crate::domain::{NodeId, NodeRef};
use crate::introspection::StartOptions;
use crate::processing::type_name;

fn node_id(s: &str) -> Result<NodeId, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request("Invalid UUID value"))
}

/// `POST /v1/introspection/<uuid>`: 202 once the start is recorded.
pub async fn start(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let Query(q) = q.map_err(rejected)?;
    let id = node_id(&uuid)?;
    let opts = StartOptions {
        // 1.0: any non-empty value means yes, "0" and "false" included.
        setup_ipmi_credentials: q.get("setup_ipmi_credentials").is_some_and(|v| !v.is_empty())
            || q.contains_key("new_ipmi_password"),
        new_ipmi_username: q.get("new_ipmi_username").cloned(),
        new_ipmi_password: q.get("new_ipmi_password").cloned(),
    };
    app.introspector.start(&NodeRef::Id(id), opts).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({}))).into_response())
}

/// `GET /v1/introspection/<uuid>`.
pub async fn status(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let id = node_id(&uuid)?;
    let n = app.store.get(id).await?;
    let host = super::versions::request_host(&headers);
    Ok(axum::Json(json!({
        "uuid": n.node,
        "finished": n.finished(),
        "error": n.error,
        "state": n.state,
        "started_at": n.started_at,
        "finished_at": n.finished_at,
        "links": [{"href": format!("http://{host}/v1/introspection/{id}"), "rel": "self"}],
    }))
    .into_response())
}

/// `POST /v1/discover` (1.0): a list of UUIDs, each started in order; the
/// first error stops the loop, nodes already accepted keep going.
pub async fn discover(State(app): State<App>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, app.config.max_body_size).await?;
    let uuids = match parse_json(&bytes)? {
        Value::Array(a) => a,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid data: expected a JSON list of UUIDs, got {}",
                type_name(&other)
            )));
        }
    };
    for u in uuids {
        let Some(uuid) = u.as_str() else {
            return Err(ApiError::bad_request("Invalid data: UUIDs must be strings"));
        };
        let id = node_id(uuid)?;
        app.introspector
            .start(&NodeRef::Id(id), StartOptions::default())
            .await?;
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({}))).into_response())
}
