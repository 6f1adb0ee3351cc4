//! The OpenAPI 3.1 document served at `GET /v1/openapi.json`, generated
//! with utoipa from the declarations below: one per route of
//! [`super::router`] (a test, `discoverd/tests/api_openapi.rs`, holds the
//! two together: every route documented, nothing documented that does
//! not exist). The handlers live in their resource files; these
//! declarations carry only the documentation.

#![allow(dead_code)]

use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

#[utoipa::path(get, path = "/", tag = "versions", responses((status = 200, description = "Version discovery: the newest version and a link to /v1")))]
fn root() {}

#[utoipa::path(get, path = "/v1", tag = "versions", responses((status = 200, description = "The v1 resources")))]
fn v1() {}

#[utoipa::path(get, path = "/{version}", tag = "versions",
    params(("version" = String, Path, description = "Any other version")),
    responses((status = 404, description = "Version not found")))]
fn other_version() {}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "versions", responses((status = 200, description = "This document")))]
fn openapi() {}

#[utoipa::path(get, path = "/v1/introspection", tag = "introspection",
    params(
        ("marker" = Option<String>, Query, description = "UUID of the last status of the previous page"),
        ("limit" = Option<u32>, Query, description = "At most this many (0: api_max_limit)"),
        ("state" = Option<String>, Query, description = "Comma-separated states"),
    ),
    responses((status = 200, description = "Statuses, newest first"), (status = 400, description = "Bad marker, limit or state"), (status = 404, description = "Unknown marker")))]
fn list() {}

#[utoipa::path(post, path = "/v1/introspection/{node}", tag = "introspection",
    params(("node" = String, Path, description = "Node UUID or name"),
        ("manage_boot" = Option<bool>, Query, description = "Set the boot device and reboot the node (1.13)")),
    responses((status = 202, description = "Recorded; the node reboots into the ramdisk"), (status = 400, description = "Refused"),
        (status = 404, description = "No such node in Ironic"), (status = 409, description = "Busy"), (status = 503, description = "Ironic or the store unavailable")))]
fn start() {}

#[utoipa::path(get, path = "/v1/introspection/{node}", tag = "introspection",
    params(("node" = String, Path, description = "Node UUID or name")),
    responses((status = 200, description = "The status object"), (status = 404, description = "Never introspected")))]
fn status() {}

#[utoipa::path(post, path = "/v1/introspection/{node}/abort", tag = "introspection",
    params(("node" = String, Path, description = "Node UUID or name")),
    responses((status = 202, description = "The node is aborting"), (status = 404, description = "Never introspected"), (status = 409, description = "Not waiting")))]
fn abort() {}

#[utoipa::path(get, path = "/v1/introspection/{node}/data", tag = "data",
    params(("node" = String, Path, description = "Node UUID or name")),
    responses((status = 200, description = "Processed introspection data"), (status = 404, description = "None stored")))]
fn data() {}

#[utoipa::path(get, path = "/v1/introspection/{node}/data/unprocessed", tag = "data",
    params(("node" = String, Path, description = "Node UUID or name")),
    responses((status = 200, description = "Raw introspection data as posted"), (status = 404, description = "None stored")))]
fn unprocessed() {}

#[utoipa::path(post, path = "/v1/introspection/{node}/data/unprocessed", tag = "data",
    params(("node" = String, Path, description = "Node UUID or name")),
    request_body(content = Object, description = "Optional: data to reapply instead of the stored raw data (1.15)"),
    responses((status = 202, description = "The node is reapplying"), (status = 400, description = "Bad body, or nothing stored and no body"),
        (status = 404, description = "No such node or no data"), (status = 409, description = "Introspection still running"), (status = 413, description = "Body too large")))]
fn reapply() {}

#[utoipa::path(post, path = "/v1/continue", tag = "ramdisk",
    request_body(content = Object, description = "The ramdisk's report"),
    responses((status = 200, description = "Processed: {\"uuid\": ...}"), (status = 400, description = "Bad report or lookup failed"),
        (status = 409, description = "Already being processed"), (status = 503, description = "Start not finished; retry")))]
fn continue_() {}

#[utoipa::path(post, path = "/v1/discover", tag = "introspection",
    request_body(content = Vec<String>, description = "Node UUIDs (discoverd 1.0)"),
    responses((status = 202, description = "All started"), (status = 400, description = "Bad body or refused")))]
fn discover() {}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("node" = Option<String>, Query, description = "Comma-separated node UUIDs or names (at most 1000)")),
    responses((status = 200, description = "text/event-stream: status, state and lagged events"), (status = 400, description = "Bad filter"), (status = 404, description = "Unknown node name")))]
fn events() {}

#[utoipa::path(get, path = "/v1/rules", tag = "rules", responses((status = 200, description = "Every rule, short, in creation order")))]
fn rules_list() {}

#[utoipa::path(post, path = "/v1/rules", tag = "rules",
    request_body(content = Object, description = "The rule: conditions, actions, optional uuid, description, scope"),
    responses((status = 201, description = "Created (200 before 1.6)"), (status = 400, description = "Invalid rule"), (status = 409, description = "UUID taken"), (status = 413, description = "Body too large")))]
fn rules_create() {}

#[utoipa::path(delete, path = "/v1/rules", tag = "rules", responses((status = 204, description = "Every rule deleted")))]
fn rules_delete_all() {}

#[utoipa::path(get, path = "/v1/rules/{uuid}", tag = "rules",
    params(("uuid" = String, Path, description = "Rule UUID")),
    responses((status = 200, description = "The rule"), (status = 404, description = "No such rule")))]
fn rules_show() {}

#[utoipa::path(delete, path = "/v1/rules/{uuid}", tag = "rules",
    params(("uuid" = String, Path, description = "Rule UUID")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such rule")))]
fn rules_delete() {}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics")))]
fn metrics() {}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
fn readyz() {}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "ironic-discoverd",
        description = "ironic-inspector's v1 API (1.0-1.18), discoverd 1.0's endpoints and an event stream"
    ),
    paths(
        root,
        v1,
        other_version,
        openapi,
        list,
        start,
        status,
        abort,
        data,
        unprocessed,
        reapply,
        continue_,
        discover,
        events,
        rules_list,
        rules_create,
        rules_delete_all,
        rules_show,
        rules_delete,
        metrics,
        healthz,
        readyz
    )
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Response {
    axum::Json(document()).into_response()
}
