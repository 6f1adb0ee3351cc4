//! Ironic failing at each call of a ramdisk report (`/v1/continue`) and of
//! its background finish: 404 (permanent), 409, 503, a hang past the call
//! timeout and a dropped connection (transient), each once briefly (the
//! retries absorb it) and once for longer than the retry budget. The rule
//! (docs/ironic-client.md): a report whose calls still fail transiently
//! when its budget is spent leaves the node `waiting` and is answered 503
//! with `Retry-After`, and the ramdisk's retry finishes the node; a
//! permanent error, or a spent budget in the background, fails the node
//! with an error that names the call.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use test_support::{FakeIronic, Fault};
use tower::ServiceExt;

const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";
const MAC: &str = "11:22:33:44:55:66";

/// Short budgets so a spent one takes about a second.
const SETTINGS: &str = "ironic_timeout = 0.3\nironic_retry_backoff = 0.01\nironic_retry_max_backoff = 0.05\nironic_retry_budget = 1.5\nironic_request_retry_budget = 1";

struct Env {
    fake: FakeIronic,
    router: Router,
    _t: test_support::TestApp,
}

async fn env() -> anyhow::Result<Env> {
    let fake = FakeIronic::start().await?;
    let t = test_support::TestApp::new(&fake.url(), SETTINGS).await?;
    Ok(Env {
        fake,
        router: t.router.clone(),
        _t: t,
    })
}

async fn call(
    r: &Router,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, Body::from))?;
    let resp = r.clone().oneshot(req).await?;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, headers, v))
}

async fn status(e: &Env) -> anyhow::Result<Value> {
    Ok(
        call(&e.router, Method::GET, &format!("/v1/introspection/{NODE}"), None)
            .await?
            .2,
    )
}

/// Waits (a liveness bound, not a speed check) until the status matches.
async fn wait_status(e: &Env, f: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = status(e).await?;
        if f(&v) {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "status never matched; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A node waiting for its report (its start flow done, no fault yet).
async fn waiting_node() -> anyhow::Result<Env> {
    let e = env().await?;
    e.fake.add_node_json(json!({
        "uuid": NODE, "driver": "fake-hardware", "driver_info": {"ipmi_address": "1.2.3.4"},
        "properties": {}, "extra": {}, "maintenance": false,
        "provision_state": "manageable", "power_state": "power off"
    }));
    let (code, _, v) = call(
        &e.router,
        Method::POST,
        &format!("/v1/introspection/{NODE}"),
        None,
    )
    .await?;
    anyhow::ensure!(code == StatusCode::ACCEPTED, "{code} {v}");
    wait_status(&e, |v| v["state"] == "waiting").await?;
    Ok(e)
}

async fn report(e: &Env) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
    let body = json!({
        "interfaces": {"em1": {"mac": MAC, "ip": "192.168.0.15"}},
        "ipmi_address": "1.2.3.4", "cpu_arch": "x86_64", "memory_mb": 12288, "cpus": 4, "local_gb": 464
    });
    call(
        &e.router,
        Method::POST,
        "/v1/continue",
        Some(serde_json::to_vec(&body)?),
    )
    .await
}

/// Requests so far to exactly `path`.
fn exact_calls(fake: &FakeIronic, method: &Method, path: &str) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.method == method.as_str() && c.path == path)
        .count()
}

/// Where a fault goes.
#[derive(Debug, Clone, Copy)]
enum Step {
    GetNode,
    ListPorts,
    CreatePort,
    PatchNode,
    /// The background finish's power-off.
    PowerOff,
}

impl Step {
    fn target(self) -> (Method, String) {
        match self {
            Step::GetNode => (Method::GET, format!("/v1/nodes/{NODE}")),
            Step::ListPorts => (Method::GET, "/v1/ports".to_owned()),
            Step::CreatePort => (Method::POST, "/v1/ports".into()),
            Step::PatchNode => (Method::PATCH, format!("/v1/nodes/{NODE}")),
            Step::PowerOff => (Method::PUT, format!("/v1/nodes/{NODE}/states/power")),
        }
    }

    fn inject(self, fake: &FakeIronic, fault: Fault, times: usize) {
        let (method, path) = self.target();
        fake.inject_exact(method, &path, fault, times);
    }
}

const TRANSIENT: [(&str, Fault); 4] = [
    ("409", Fault::Status(409)),
    ("503", Fault::Status(503)),
    ("hang", Fault::Delay(Duration::from_secs(3))),
    ("dropped connection", Fault::Close),
];

/// Everything a finished introspection leaves in Ironic: the properties,
/// exactly one port for the MAC, the extra fields, powered off.
fn assert_complete(e: &Env, case: &str) {
    let node = e.fake.node(NODE).unwrap_or_default();
    assert_eq!(node["properties"]["memory_mb"], json!("12288"), "{case}: {node}");
    assert_eq!(
        node["extra"],
        json!({"newly_discovered": "true"}),
        "{case}: {node}"
    );
    assert_eq!(node["power_state"], json!("power off"), "{case}");
    assert_eq!(
        e.fake.ports(),
        vec![(NODE.to_owned(), MAC.to_owned())],
        "{case}: one port, this node's"
    );
}

/// A brief fault (twice) is absorbed by the retries: the report is
/// answered 200 and the node finishes complete.
async fn brief(step: Step) -> anyhow::Result<()> {
    for (name, fault) in TRANSIENT {
        let case = format!("{step:?} {name} twice");
        let e = waiting_node().await?;
        step.inject(&e.fake, fault, 2);
        let (code, _, v) = report(&e).await?;
        assert_eq!(code, StatusCode::OK, "{case}: {v}");
        let st = wait_status(&e, |v| v["finished"] == true).await?;
        assert_eq!(st["error"], Value::Null, "{case}: {st}");
        assert_complete(&e, &case);
    }
    Ok(())
}

/// A fault that lasts past the report's budget: 503 with Retry-After, the
/// node waits (nothing recorded as ended), and the ramdisk's retry, once
/// Ironic is well, finishes it complete.
async fn lasting_in_report(step: Step) -> anyhow::Result<()> {
    for (name, fault) in TRANSIENT {
        let case = format!("{step:?} {name} past the budget");
        let e = waiting_node().await?;
        step.inject(&e.fake, fault, 10_000);
        let (code, headers, v) = report(&e).await?;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{case}: {v}");
        assert!(headers.contains_key("retry-after"), "{case}");
        let (method, path) = step.target();
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("{method} {path}")) && msg.contains("retry budget spent"),
            "{case}: {msg}"
        );
        let st = status(&e).await?;
        assert_eq!(
            (st["state"].clone(), st["finished"].clone(), st["error"].clone()),
            (json!("waiting"), json!(false), Value::Null),
            "{case}"
        );
        e.fake.clear_faults();
        let (code, _, v) = report(&e).await?;
        assert_eq!(code, StatusCode::OK, "{case}, the ramdisk's retry: {v}");
        let st = wait_status(&e, |v| v["finished"] == true).await?;
        assert_eq!(st["error"], Value::Null, "{case}: {st}");
        assert_complete(&e, &case);
    }
    Ok(())
}

/// 404 is permanent: the node fails at once, and its error says which
/// call failed (or, for the node itself, that Ironic has no such node).
async fn permanent_in_report(step: Step) -> anyhow::Result<()> {
    let e = waiting_node().await?;
    let (method, path) = step.target();
    let before = exact_calls(&e.fake, &method, &path);
    step.inject(&e.fake, Fault::Status(404), 10_000);
    let (code, headers, v) = report(&e).await?;
    // The call (method and path, the query aside) and why.
    let want = match step {
        Step::GetNode => vec!["is not found in Ironic".to_owned()],
        _ => vec![format!("{method} {path}"), ": not found: ".to_owned()],
    };
    assert!(code.is_client_error(), "{step:?}: {code} {v}");
    assert!(!headers.contains_key("retry-after"), "{step:?}");
    let st = wait_status(&e, |v| v["finished"] == true).await?;
    let err = st["error"].as_str().unwrap_or_default();
    assert!(want.iter().all(|w| err.contains(w.as_str())), "{step:?}: {err}");
    assert_eq!(st["state"], "error");
    assert_eq!(
        exact_calls(&e.fake, &method, &path) - before,
        1,
        "{step:?}: a 404 is not retried"
    );
    Ok(())
}

#[tokio::test]
async fn get_node_failing() -> anyhow::Result<()> {
    brief(Step::GetNode).await?;
    lasting_in_report(Step::GetNode).await?;
    permanent_in_report(Step::GetNode).await
}

#[tokio::test]
async fn port_listing_failing() -> anyhow::Result<()> {
    brief(Step::ListPorts).await?;
    lasting_in_report(Step::ListPorts).await?;
    permanent_in_report(Step::ListPorts).await
}

#[tokio::test]
async fn port_creation_failing() -> anyhow::Result<()> {
    brief(Step::CreatePort).await?;
    lasting_in_report(Step::CreatePort).await?;
    permanent_in_report(Step::CreatePort).await
}

/// The node's PATCH (properties, extra fields, the flag's removal) is
/// one call of the background finish, after the power-off (docs/speed.md):
/// a brief fault is absorbed; a lasting or permanent one fails the node
/// with an error naming the call, and the report was answered 200.
#[tokio::test]
async fn node_patch_failing() -> anyhow::Result<()> {
    brief(Step::PatchNode).await?;
    background_failing(
        Step::PatchNode,
        "Failed to update the properties and extra fields",
    )
    .await
}

/// A fault at a call of the background finish that lasts past its budget
/// or is permanent: the report is answered 200 and the node fails with an
/// error that starts with `what` and names the call and why.
async fn background_failing(step: Step, what: &str) -> anyhow::Result<()> {
    let (method, path) = step.target();
    let mut cases = TRANSIENT.to_vec();
    cases.push(("404", Fault::Status(404)));
    for (name, fault) in cases {
        let e = waiting_node().await?;
        step.inject(&e.fake, fault, 10_000);
        let (code, _, v) = report(&e).await?;
        assert_eq!(code, StatusCode::OK, "{step:?} {name}: {v}");
        let st = wait_status(&e, |v| v["finished"] == true).await?;
        let err = st["error"].as_str().unwrap_or_default();
        let why = if name == "404" {
            "not found"
        } else {
            "retry budget spent"
        };
        assert!(
            err.starts_with(what) && err.contains(&format!("{method} {path}: ")) && err.contains(why),
            "{step:?} {name}: {err}"
        );
        assert_eq!(st["state"], "error", "{step:?} {name}");
    }
    Ok(())
}

/// The power-off runs in the background with the longer budget, like the
/// PATCH after it.
#[tokio::test]
async fn power_off_failing() -> anyhow::Result<()> {
    brief(Step::PowerOff).await?;
    background_failing(Step::PowerOff, &format!("Failed to power off node {NODE}")).await
}

/// Answers lost after Ironic carried the request out: the port creation
/// is not duplicated (its 409 is checked against the MAC's port), and the
/// finish's PATCH, whose `remove` fails when replayed, is checked against
/// the node; both end well.
#[tokio::test]
async fn lost_answers_of_changes_are_not_failures() -> anyhow::Result<()> {
    let e = waiting_node().await?;
    let patch = format!("/v1/nodes/{NODE}");
    Step::CreatePort.inject(&e.fake, Fault::CloseAfter, 1);
    let before = exact_calls(&e.fake, &Method::PATCH, &patch);
    Step::PatchNode.inject(&e.fake, Fault::CloseAfter, 1);
    let (code, _, v) = report(&e).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    let st = wait_status(&e, |v| v["finished"] == true).await?;
    assert_eq!(st["error"], Value::Null, "{st}");
    assert_complete(&e, "lost answers");
    assert_eq!(e.fake.calls_to("POST", "/v1/ports").len(), 2, "one replay");
    assert_eq!(before, 0, "no PATCH at start");
    assert_eq!(
        exact_calls(&e.fake, &Method::PATCH, &patch),
        before + 2,
        "the finish's PATCH and its replay"
    );
    Ok(())
}

/// Retry-After is honoured: the retry does not come before it.
#[tokio::test]
async fn retry_after_is_honoured() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = test_support::TestApp::new(&fake.url(), SETTINGS).await?;
    fake.add_node(NODE, "1.2.3.4");
    fake.inject_exact(Method::GET, &format!("/v1/nodes/{NODE}"), Fault::Throttle(1), 1);
    let began = tokio::time::Instant::now();
    let node = t.app.ironic.get_node(NODE).await?;
    assert_eq!(node.uuid, NODE);
    assert!(began.elapsed() >= Duration::from_secs(1), "{:?}", began.elapsed());
    assert_eq!(fake.calls_to("GET", &format!("/v1/nodes/{NODE}")).len(), 2);
    Ok(())
}

/// `create_port` whose answer was lost returns the port it created; a
/// MAC that belongs to another node's port stays a conflict; a 409 with
/// no such port (a lock) is retried.
#[tokio::test]
async fn port_creation_is_idempotent() -> anyhow::Result<()> {
    const OTHER: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";
    let fake = FakeIronic::start().await?;
    let t = test_support::TestApp::new(&fake.url(), SETTINGS).await?;
    fake.add_node(NODE, "1.2.3.4");
    fake.add_node(OTHER, "1.2.3.5");
    fake.inject(Method::POST, "/v1/ports", Fault::CloseAfter, 1);
    let port = t.app.ironic.create_port(NODE, MAC).await?;
    assert_eq!(
        (port.node_uuid.as_deref(), port.address.as_str()),
        (Some(NODE), MAC)
    );
    let theirs = t.app.ironic.create_port(OTHER, MAC).await;
    assert!(theirs.as_ref().is_err_and(|e| e.is_conflict()), "{theirs:?}");
    fake.inject(Method::POST, "/v1/ports", Fault::Status(409), 2);
    let port = t.app.ironic.create_port(NODE, "52:54:00:00:00:02").await?;
    assert_eq!(port.node_uuid.as_deref(), Some(NODE));
    assert_eq!(fake.ports().len(), 2);
    // Every try went through the observer (the metrics): lost answer and
    // replay, the other node's, two locks and the success.
    let posts = fake.calls_to("POST", "/v1/ports").len();
    assert_eq!(posts, 6);
    let line = format!("ironic_discoverd_ironic_call_seconds_count{{call=\"create_port\"}} {posts}");
    assert!(t.app.metrics.render().contains(&line), "{line}");
    Ok(())
}
