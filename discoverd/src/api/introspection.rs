//! `/v1/introspection` (list), `/v1/introspection/<node>` (start,
//! status), `…/abort`, and 1.0's `/v1/discover`.

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
use crate::store::{ListQuery, Status};

fn node_id(s: &str) -> Result<NodeId, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request("Invalid UUID value"))
}

/// A node reference from the path: a UUID or a name, at every version.
/// Names came with API 1.5, but ironic-inspector takes them whatever the
/// version asked, and its clients rely on that: the `openstack` command
/// asks for 1.0 unless told otherwise.
pub(crate) fn node_ref(s: &str) -> Result<NodeRef, ApiError> {
    NodeRef::parse_uuid_or_name(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The node a path names, names resolved through Ironic.
pub(crate) async fn resolve(app: &App, s: &str) -> Result<NodeId, ApiError> {
    let r = node_ref(s)?;
    Ok(app.introspector.resolve(&r).await?)
}

/// An empty `202` (ironic-inspector answers `{}`).
pub(crate) fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}

/// oslo's `bool_from_string(strict=True)`.
fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid boolean value for {name}: {}",
            v.chars().take(40).collect::<String>()
        ))),
    }
}

/// `POST /v1/introspection/<node>`: 202 once the start is recorded.
pub async fn start(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let Query(q) = q.map_err(rejected)?;
    let node = node_ref(&uuid)?;
    let manage_boot = match q.get("manage_boot") {
        Some(v) => boolean("manage_boot", v)?,
        None => true,
    };
    let opts = StartOptions {
        // 1.0: any non-empty value means yes, "0" and "false" included.
        setup_ipmi_credentials: q.get("setup_ipmi_credentials").is_some_and(|v| !v.is_empty())
            || q.contains_key("new_ipmi_password"),
        new_ipmi_username: q.get("new_ipmi_username").cloned(),
        new_ipmi_password: q.get("new_ipmi_password").cloned(),
        manage_boot,
    };
    app.introspector.start(&node, opts).await?;
    Ok(accepted())
}

/// The status object (API 1.7's fields at every version, as the inspector).
pub(crate) fn status_json(n: &Status, host: &str) -> Value {
    json!({
        "uuid": n.node,
        "finished": n.finished(),
        "error": n.error,
        "state": n.state,
        "started_at": n.started_at,
        "finished_at": n.finished_at,
        "links": [{"href": format!("http://{host}/v1/introspection/{}", n.node), "rel": "self"}],
    })
}

/// `GET /v1/introspection/<node>`.
pub async fn status(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let id = resolve(&app, &uuid).await?;
    let n = app.store.get(id).await?;
    let host = super::versions::request_host(&headers);
    Ok(axum::Json(status_json(&n, host)).into_response())
}

/// Reads `marker`, `limit` and `state` as ironic-inspector does.
fn list_query(q: &BTreeMap<String, String>, max: usize) -> Result<ListQuery, ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("Bad request: {m}"));
    let marker = match q.get("marker") {
        None => None,
        Some(m) => Some(
            m.parse::<NodeId>()
                .map_err(|_| bad("Marker not UUID-like".into()))?,
        ),
    };
    let limit = match q.get("limit") {
        None => max,
        Some(l) => {
            let n: i64 = l.trim().parse().map_err(|_| {
                bad(format!(
                    "invalid literal for int() with base 10: '{}'",
                    l.chars().take(40).collect::<String>()
                ))
            })?;
            if n < 0 {
                return Err(bad("Limit cannot be negative".into()));
            }
            match usize::try_from(n) {
                Ok(0) => max,
                Ok(n) if n <= max => n,
                _ => return Err(bad(format!("Limit over {max}"))),
            }
        }
    };
    let states = match q.get("state") {
        None => Vec::new(),
        Some(s) => {
            let mut states = Vec::new();
            let mut invalid = Vec::new();
            for name in s.split(',') {
                match name.parse() {
                    Ok(st) => states.push(st),
                    Err(_) => invalid.push(name.chars().take(40).collect::<String>()),
                }
            }
            if !invalid.is_empty() {
                invalid.truncate(10);
                return Err(bad(format!("State(s) \"{}\" are not valid", invalid.join(", "))));
            }
            states
        }
    };
    Ok(ListQuery {
        marker,
        limit,
        states,
    })
}

/// `GET /v1/introspection`: statuses, newest first.
pub async fn list(
    State(app): State<App>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(rejected)?;
    let query = list_query(&q, app.config.api_max_limit)?;
    let statuses = match app.store.list(&query).await {
        Err(crate::store::StoreError::NotFound(m)) => {
            return Err(ApiError::not_found(format!("Node not found for marker: {m}")));
        }
        other => other?,
    };
    let host = super::versions::request_host(&headers);
    let items: Vec<Value> = statuses.iter().map(|s| status_json(s, host)).collect();
    Ok(axum::Json(json!({ "introspection": items })).into_response())
}

/// `POST /v1/introspection/<node>/abort`: 202 once `aborting` is recorded.
pub async fn abort(
    State(app): State<App>,
    uuid: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(uuid) = uuid.map_err(rejected)?;
    let id = resolve(&app, &uuid).await?;
    app.introspector.abort(id).await?;
    Ok(accepted())
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
    Ok(accepted())
}
