//! An in-process fake of the Ironic REST API, for unit, failure-injection
//! and benchmark runs (never used by the product). It serves exactly the
//! calls discoverd makes, with Ironic's shapes, on 127.0.0.1 and a free
//! port, records every call, and can be told to fail.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use serde_json::{Value, json};

/// A failure to inject into the next matching requests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and an Ironic-style error body.
    Status(u16),
    /// Sleep this long before answering normally.
    Delay(Duration),
    /// Answer 200 with a body that is not JSON.
    BadJson,
    /// Send a 200 header and part of a body, then drop the connection.
    Close,
    /// Carry the request out, then drop the connection mid-answer (the
    /// answer is lost although the change was made).
    CloseAfter,
    /// Answer 429 with `Retry-After` of this many seconds.
    Throttle(u64),
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<String, Value>,
    ports: BTreeMap<String, Value>,
    calls: Vec<Call>,
    /// (method, path or prefix, fault, times left, whole path only).
    faults: Vec<(Method, String, Fault, usize, bool)>,
    next_port: u64,
}

/// Handle to a running fake. Dropping it does not stop the server; the
/// server stops with the runtime.
#[derive(Debug, Clone)]
pub struct FakeIronic {
    inner: Arc<Mutex<Inner>>,
    pub addr: SocketAddr,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ironic_error(status: StatusCode, msg: &str) -> Response {
    let inner = json!({"faultstring": msg, "debuginfo": null}).to_string();
    (status, axum::Json(json!({"error_message": inner}))).into_response()
}

impl FakeIronic {
    /// Starts the fake on 127.0.0.1 with a free port.
    pub async fn start() -> std::io::Result<Self> {
        let inner: Shared = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route(
                "/v1",
                get(|| async {
                    axum::Json(
                        json!({"id": "v1", "version": {"id": "v1", "version": "1.99", "min_version": "1.1"}}),
                    )
                }),
            )
            .route("/v1/nodes", get(list_nodes).post(create_node))
            .route("/v1/nodes/{uuid}", get(get_node).patch(patch_node))
            .route("/v1/nodes/{uuid}/validate", get(validate))
            .route("/v1/nodes/{uuid}/ports", get(node_ports))
            .route("/v1/nodes/{uuid}/management/boot_device", put(boot_device))
            .route("/v1/nodes/{uuid}/states/power", put(power))
            .route(
                "/v1/nodes/{uuid}/traits/{name}",
                put(add_trait).delete(remove_trait),
            )
            .route("/v1/ports", get(all_ports).post(create_port))
            .route("/v1/ports/{uuid}", patch(patch_port))
            .layer(axum::middleware::from_fn_with_state(
                inner.clone(),
                record_and_inject,
            ))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeIronic { inner, addr })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a node in `manageable`, powered off, with a BMC address.
    pub fn add_node(&self, uuid: &str, bmc: &str) {
        self.add_node_json(json!({
            "uuid": uuid, "driver": "fake-hardware",
            "driver_info": {"ipmi_address": bmc}, "properties": {}, "extra": {},
            "maintenance": false, "provision_state": "manageable", "power_state": "power off"
        }));
    }

    /// Adds a node given as Ironic JSON.
    pub fn add_node_json(&self, node: Value) {
        if let Some(uuid) = node["uuid"].as_str() {
            lock(&self.inner).nodes.insert(uuid.to_owned(), node.clone());
        }
    }

    /// Every node's UUID.
    pub fn node_uuids(&self) -> Vec<String> {
        lock(&self.inner).nodes.keys().cloned().collect()
    }

    /// Adds a port for `node` and returns its uuid.
    pub fn add_port(&self, node: &str, mac: &str) -> String {
        let mut g = lock(&self.inner);
        new_port(&mut g, node, mac)
    }

    /// The node as the fake holds it now.
    pub fn node(&self, uuid: &str) -> Option<Value> {
        lock(&self.inner).nodes.get(uuid).cloned()
    }

    /// Every port's `(node_uuid, address)`.
    pub fn ports(&self) -> Vec<(String, String)> {
        lock(&self.inner)
            .ports
            .values()
            .map(|p| {
                (
                    p["node_uuid"].as_str().unwrap_or("").to_owned(),
                    p["address"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner).calls.clone()
    }

    /// Calls whose method and path start match.
    pub fn calls_to(&self, method: &str, path_prefix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.starts_with(path_prefix))
            .collect()
    }

    /// The next `times` requests with `method` to paths starting with
    /// `path_prefix` get `fault`.
    pub fn inject(&self, method: Method, path_prefix: &str, fault: Fault, times: usize) {
        lock(&self.inner)
            .faults
            .push((method, path_prefix.to_owned(), fault, times, false));
    }

    /// Like [`Self::inject`], for requests to exactly `path` (the query
    /// string aside): `/v1/nodes/X` then misses `/v1/nodes/X/ports`.
    pub fn inject_exact(&self, method: Method, path: &str, fault: Fault, times: usize) {
        lock(&self.inner)
            .faults
            .push((method, path.to_owned(), fault, times, true));
    }

    /// Forgets every injected fault not yet used up.
    pub fn clear_faults(&self) {
        lock(&self.inner).faults.clear();
    }

    /// Edits a node in place (e.g. to put it in maintenance).
    pub fn edit_node(&self, uuid: &str, f: impl FnOnce(&mut Value)) {
        if let Some(n) = lock(&self.inner).nodes.get_mut(uuid) {
            f(n);
        }
    }
}

fn new_port(g: &mut Inner, node: &str, mac: &str) -> String {
    g.next_port += 1;
    let uuid = format!("00000000-0000-4000-8000-{:012x}", g.next_port);
    g.ports.insert(
        uuid.clone(),
        json!({"uuid": uuid, "address": mac.to_lowercase(), "node_uuid": node, "extra": {}}),
    );
    uuid
}

async fn record_and_inject(
    State(s): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let fault = {
        let mut g = lock(&s);
        g.calls.push(Call {
            method: method.to_string(),
            path: path.clone(),
            body: serde_json::from_slice(&bytes).ok(),
        });
        let hit = g.faults.iter_mut().find(|(m, p, _, n, exact)| {
            *m == method
                && *n > 0
                && if *exact {
                    path == *p
                } else {
                    path.starts_with(p.as_str())
                }
        });
        hit.map(|(_, _, f, n, _)| {
            *n -= 1;
            f.clone()
        })
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ironic_error(status, "injected failure");
        }
        Some(Fault::BadJson) => return (StatusCode::OK, "{not json").into_response(),
        Some(Fault::Close) => {
            return (
                StatusCode::OK,
                [("content-type", "application/json")],
                axum::body::Body::new(Truncated(false)),
            )
                .into_response();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Throttle(secs)) => {
            let mut r = ironic_error(StatusCode::TOO_MANY_REQUESTS, "injected throttling");
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(secs));
            return r;
        }
        Some(Fault::CloseAfter) => {
            let _ = next
                .run(axum::extract::Request::from_parts(
                    parts,
                    axum::body::Body::from(bytes),
                ))
                .await;
            return (
                StatusCode::OK,
                [("content-type", "application/json")],
                axum::body::Body::new(Truncated(false)),
            )
                .into_response();
        }
        None => {}
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// A body that yields a few bytes and then fails, so the server drops the
/// connection mid-response (what a crashing or restarting Ironic does).
struct Truncated(bool);

impl http_body::Body for Truncated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if self.0 {
            return std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected connection close",
            ))));
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{\"uu")))))
    }
}

/// A node by UUID, or by name as Ironic allows in its node paths.
fn find_node<'a>(nodes: &'a BTreeMap<String, Value>, ident: &str) -> Option<&'a Value> {
    nodes
        .get(ident)
        .or_else(|| nodes.values().find(|n| n["name"].as_str() == Some(ident)))
}

/// `GET /v1/nodes`: every node in one page (`fields` is ignored).
async fn list_nodes(State(s): State<Shared>) -> Response {
    let g = lock(&s);
    axum::Json(json!({"nodes": g.nodes.values().cloned().collect::<Vec<_>>()})).into_response()
}

/// `POST /v1/nodes`: a new node in `enroll`, as Ironic's API 1.11+.
async fn create_node(State(s): State<Shared>, body: Bytes) -> Response {
    let Ok(Value::Object(mut node)) = serde_json::from_slice::<Value>(&body) else {
        return ironic_error(StatusCode::BAD_REQUEST, "the body is not a JSON object");
    };
    if !node.get("driver").is_some_and(Value::is_string) {
        return ironic_error(StatusCode::BAD_REQUEST, "Mandatory field missing: 'driver'");
    }
    let mut g = lock(&s);
    let uuid = format!("00000000-0000-4000-9000-{:012x}", g.nodes.len() + 1);
    for (k, v) in [
        ("uuid", json!(uuid)),
        ("provision_state", json!("enroll")),
        ("power_state", Value::Null),
        ("maintenance", json!(false)),
    ] {
        node.insert(k.into(), v);
    }
    for k in ["driver_info", "properties", "extra"] {
        node.entry(k).or_insert_with(|| json!({}));
    }
    let node = Value::Object(node);
    g.nodes.insert(uuid, node.clone());
    (StatusCode::CREATED, axum::Json(node)).into_response()
}

async fn get_node(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let g = lock(&s);
    match find_node(&g.nodes, &uuid) {
        Some(n) => axum::Json(n.clone()).into_response(),
        None => ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found.")),
    }
}

fn apply_patch(target: &mut Value, body: &Bytes) -> Result<(), Box<Response>> {
    let bad = |e: String| Box::new(ironic_error(StatusCode::BAD_REQUEST, &e));
    let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    json_patch::patch(target, &ops).map_err(|e| bad(e.to_string()))
}

async fn patch_node(State(s): State<Shared>, Path(uuid): Path<String>, body: Bytes) -> Response {
    let mut g = lock(&s);
    let Some(node) = g.nodes.get_mut(&uuid) else {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    };
    if let Err(r) = apply_patch(node, &body) {
        return *r;
    }
    axum::Json(node.clone()).into_response()
}

async fn patch_port(State(s): State<Shared>, Path(uuid): Path<String>, body: Bytes) -> Response {
    let mut g = lock(&s);
    let Some(port) = g.ports.get_mut(&uuid) else {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Port {uuid} could not be found."));
    };
    if let Err(r) = apply_patch(port, &body) {
        return *r;
    }
    axum::Json(port.clone()).into_response()
}

async fn validate(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let g = lock(&s);
    let Some(node) = find_node(&g.nodes, &uuid) else {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    };
    let power = node
        .get("fake_power_validation")
        .cloned()
        .unwrap_or_else(|| json!({"result": true, "reason": null}));
    axum::Json(json!({"power": power, "deploy": {"result": true}})).into_response()
}

fn page(ports: Vec<Value>, q: &BTreeMap<String, String>, uri: &Uri, host: &str) -> Value {
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    let start = q
        .get("marker")
        .and_then(|m| {
            ports
                .iter()
                .position(|p| p["uuid"].as_str() == Some(m.as_str()))
                .map(|i| i + 1)
        })
        .unwrap_or(0);
    let chunk: Vec<Value> = ports.iter().skip(start).take(limit).cloned().collect();
    let mut out = json!({"ports": chunk});
    if start + limit < ports.len()
        && let Some(last) = out["ports"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|p| p["uuid"].as_str())
    {
        out["next"] = json!(format!("http://{host}{}?limit={limit}&marker={last}", uri.path()));
    }
    out
}

async fn node_ports(
    State(s): State<Shared>,
    Path(uuid): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let g = lock(&s);
    if !g.nodes.contains_key(&uuid) {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    }
    let ports = g
        .ports
        .values()
        .filter(|p| p["node_uuid"] == uuid.as_str())
        .cloned()
        .collect();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    axum::Json(page(ports, &q, &uri, host)).into_response()
}

async fn all_ports(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    // Ironic's `?address=` filter (one MAC, any case) and `?node_uuid=`
    // (a 404 for a node it does not have).
    let address = q.get("address").map(|a| a.to_lowercase());
    let node = q.get("node_uuid");
    let g = lock(&s);
    if let Some(n) = node
        && !g.nodes.contains_key(n)
    {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {n} could not be found."));
    }
    let ports = g
        .ports
        .values()
        .filter(|p| {
            address
                .as_deref()
                .is_none_or(|a| p["address"].as_str() == Some(a))
                && node.is_none_or(|n| p["node_uuid"] == n.as_str())
        })
        .cloned()
        .collect();
    drop(g);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    axum::Json(page(ports, &q, &uri, host)).into_response()
}

async fn create_port(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let (Some(node), Some(mac)) = (body["node_uuid"].as_str(), body["address"].as_str()) else {
        return ironic_error(StatusCode::BAD_REQUEST, "node_uuid and address are required");
    };
    let mut g = lock(&s);
    if g.ports
        .values()
        .any(|p| p["address"].as_str() == Some(&mac.to_lowercase()))
    {
        return ironic_error(
            StatusCode::CONFLICT,
            &format!("A port with MAC address {mac} already exists."),
        );
    }
    let uuid = new_port(&mut g, node, mac);
    (StatusCode::CREATED, axum::Json(g.ports[&uuid].clone())).into_response()
}

async fn boot_device(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    if !lock(&s).nodes.contains_key(&uuid) {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `PUT /v1/nodes/{uuid}/traits/{name}` (API 1.37): kept in the node's
/// `traits` list.
async fn add_trait(State(s): State<Shared>, Path((uuid, name)): Path<(String, String)>) -> Response {
    let mut g = lock(&s);
    let Some(node) = g.nodes.get_mut(&uuid) else {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    };
    if !node["traits"].is_array() {
        node["traits"] = json!([]);
    }
    if let Some(t) = node["traits"].as_array_mut()
        && !t.contains(&json!(name))
    {
        t.push(json!(name));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /v1/nodes/{uuid}/traits/{name}`: 404 when the node lacks it.
async fn remove_trait(State(s): State<Shared>, Path((uuid, name)): Path<(String, String)>) -> Response {
    let mut g = lock(&s);
    let Some(node) = g.nodes.get_mut(&uuid) else {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    };
    match node["traits"].as_array_mut() {
        Some(t) if t.contains(&json!(name)) => {
            t.retain(|x| *x != json!(name));
            StatusCode::NO_CONTENT.into_response()
        }
        _ => ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} has no trait {name}")),
    }
}

async fn power(
    State(s): State<Shared>,
    Path(uuid): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut g = lock(&s);
    let Some(node) = g.nodes.get_mut(&uuid) else {
        return ironic_error(StatusCode::NOT_FOUND, &format!("Node {uuid} could not be found."));
    };
    let state = match body["target"].as_str() {
        Some("rebooting" | "power on") => "power on",
        Some("power off") => "power off",
        _ => return ironic_error(StatusCode::BAD_REQUEST, "bad target"),
    };
    node["power_state"] = json!(state);
    StatusCode::ACCEPTED.into_response()
}
