//! What one introspection costs Ironic (issue 15): every call the daemon
//! makes for a node, by method and path, against the in-process fake
//! Ironic, so a new call or a lost merge fails here. And the failure
//! semantics of the finishing PATCH and power-off: a node that fails gets
//! `extra.on_discovery` (1.0's mark, no longer written at start), and the
//! error says why.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{FakeIronic, Fault, TestApp, call};

const NODE: &str = "5f0c6d3e-7b1a-4e8e-9a43-0c7f61c2d0a1";
const MAC: &str = "52:54:00:12:34:56";

async fn wait(r: &Router, f: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, v) = call(r, Method::GET, &format!("/v1/introspection/{NODE}"), None).await?;
        if code == StatusCode::OK && f(&v) {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never matched: {code} {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The node once the daemon marked it as failed (after recording the end).
async fn marked(fake: &FakeIronic) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = fake.node(NODE).unwrap_or_default();
        if n["extra"]["on_discovery"] == json!("true") {
            return Ok(n);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never marked: {n}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A node as an operator enrolls it: one port, powered off.
fn node(fake: &FakeIronic, extra: Value) {
    fake.add_node_json(json!({
        "uuid": NODE, "driver": "fake-hardware", "driver_info": {"ipmi_address": "192.0.2.50"},
        "properties": {}, "extra": extra, "maintenance": false,
        "provision_state": "manageable", "power_state": "power off"
    }));
    fake.add_port(NODE, MAC);
}

fn report() -> Value {
    json!({
        "interfaces": {"eth0": {"mac": MAC, "ip": "192.0.2.100"}},
        "ipmi_address": "192.0.2.50", "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": 2, "local_gb": 20
    })
}

/// `METHOD /v1/nodes/*/rest` with the node's uuid replaced by `*`.
fn tally(fake: &FakeIronic) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for c in fake.calls() {
        let path = c.path.split('?').next().unwrap_or_default().replace(NODE, "*");
        *t.entry(format!("{} {path}", c.method)).or_insert(0) += 1;
    }
    t
}

fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn one_introspection_costs_one_node_patch_and_no_redundant_call() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    node(&fake, json!({}));
    let before = fake.calls().len();
    let (code, v) = call(
        &t.router,
        Method::POST,
        &format!("/v1/introspection/{NODE}"),
        None,
    )
    .await?;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    wait(&t.router, |v| v["state"] == "waiting").await?;
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report())).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    let st = wait(&t.router, |v| v["finished"] == true).await?;
    assert_eq!(st["error"], Value::Null, "{st}");
    assert_eq!(before, 0, "the fake saw calls before the start");
    // No power-state read: the finish writes first, then powers off.
    assert_eq!(
        tally(&fake),
        expect(&[
            ("GET /v1/nodes/*", 2),
            ("GET /v1/nodes/*/validate", 1),
            ("GET /v1/ports", 2),
            ("PATCH /v1/nodes/*", 1),
            ("PUT /v1/nodes/*/management/boot_device", 1),
            ("PUT /v1/nodes/*/states/power", 2),
        ])
    );
    let n = fake.node(NODE).unwrap_or_default();
    assert_eq!(n["extra"], json!({"newly_discovered": "true"}));
    assert_eq!(n["properties"]["memory_mb"], json!("4096"));
    Ok(())
}

#[tokio::test]
async fn a_node_marked_by_a_failed_run_loses_the_mark_when_a_run_succeeds() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    node(&fake, json!({"on_discovery": "true"}));
    call(
        &t.router,
        Method::POST,
        &format!("/v1/introspection/{NODE}"),
        None,
    )
    .await?;
    wait(&t.router, |v| v["state"] == "waiting").await?;
    assert_eq!(fake.calls_to("PATCH", "/v1/nodes/").len(), 0);
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report())).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    wait(&t.router, |v| v["finished"] == true && v["error"].is_null()).await?;
    assert_eq!(fake.calls_to("PATCH", "/v1/nodes/").len(), 1);
    assert_eq!(
        fake.node(NODE).map(|n| n["extra"].clone()),
        Some(json!({"newly_discovered": "true"}))
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_finishing_patch_keeps_the_mark_and_the_power_and_says_why() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    node(&fake, json!({}));
    call(
        &t.router,
        Method::POST,
        &format!("/v1/introspection/{NODE}"),
        None,
    )
    .await?;
    wait(&t.router, |v| v["state"] == "waiting").await?;
    fake.inject(Method::PATCH, &format!("/v1/nodes/{NODE}"), Fault::Status(400), 1);
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report())).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    let st = wait(&t.router, |v| v["finished"] == true).await?;
    assert_eq!(st["state"], json!("error"));
    let err = st["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(&format!(
            "Failed to update the properties and extra fields of node {NODE} after introspection"
        )),
        "{err}"
    );
    let n = marked(&fake).await?;
    assert_eq!(n["extra"], json!({"on_discovery": "true"}));
    // Left powered on (in the ramdisk) for the operator to look at: the
    // power-off comes after the write.
    assert_eq!(n["power_state"], json!("power on"));
    assert_eq!(
        fake.calls_to("PUT", &format!("/v1/nodes/{NODE}/states/power"))
            .len(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_power_off_marks_the_node_and_says_why() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    node(&fake, json!({}));
    call(
        &t.router,
        Method::POST,
        &format!("/v1/introspection/{NODE}"),
        None,
    )
    .await?;
    wait(&t.router, |v| v["state"] == "waiting").await?;
    // The reboot was the first power call; the power-off is refused.
    fake.inject(
        Method::PUT,
        &format!("/v1/nodes/{NODE}/states/power"),
        Fault::Status(400),
        1,
    );
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report())).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    let st = wait(&t.router, |v| v["finished"] == true).await?;
    let err = st["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(&format!("Failed to power off node {NODE}")),
        "{err}"
    );
    let n = marked(&fake).await?;
    assert_eq!(
        n["extra"],
        json!({"on_discovery": "true", "newly_discovered": "true"})
    );
    assert_eq!(n["properties"]["memory_mb"], json!("4096"));
    assert_eq!(n["power_state"], json!("power on"));
    Ok(())
}

#[tokio::test]
async fn a_failed_start_marks_the_node_and_the_next_good_run_clears_it() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    node(&fake, json!({}));
    // The reboot is refused: the run fails in the background.
    fake.inject(
        Method::PUT,
        &format!("/v1/nodes/{NODE}/states/power"),
        Fault::Status(400),
        1,
    );
    let path = format!("/v1/introspection/{NODE}");
    call(&t.router, Method::POST, &path, None).await?;
    let st = wait(&t.router, |v| v["finished"] == true).await?;
    let err = st["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(&format!("Failed to power on node {NODE}")),
        "{err}"
    );
    marked(&fake).await?;
    assert_eq!(fake.calls_to("PATCH", "/v1/nodes/").len(), 1, "only the mark");
    // Again, successfully: the finishing PATCH takes the mark away.
    let (code, v) = call(&t.router, Method::POST, &path, None).await?;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    wait(&t.router, |v| v["state"] == "waiting").await?;
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report())).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    wait(&t.router, |v| v["finished"] == true && v["error"].is_null()).await?;
    assert_eq!(
        fake.node(NODE).map(|n| n["extra"].clone()),
        Some(json!({"newly_discovered": "true"}))
    );
    Ok(())
}
