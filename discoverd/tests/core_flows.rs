//! What the core promises (issue 12), in-process against the fake Ironic
//! and a real SQLite file: a 202 is durable, a report never races the
//! start flow, and every ending is counted once.

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{FakeIronic, Fault, TestApp, call};

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn mac(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn bmc(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

/// A node with one port, as Ironic has it.
fn add(fake: &FakeIronic, i: usize) {
    fake.add_node(
        &uuid(i),
        &format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
    );
    fake.add_port(&uuid(i), &mac(i));
}

/// A ramdisk's report: its BMC address (the one lookup attribute recorded
/// before the start flow has listed the node's ports) and its NIC.
fn report(i: usize) -> Value {
    json!({"ipmi_address": bmc(i), "interfaces": {"eth0": {"mac": mac(i), "ip": "192.0.2.10"}},
           "cpus": 2, "cpu_arch": "x86_64", "memory_mb": 2048, "local_gb": 20})
}

async fn status(r: &Router, i: usize) -> anyhow::Result<(StatusCode, Value)> {
    call(r, Method::GET, &format!("/v1/introspection/{}", uuid(i)), None).await
}

/// Liveness bound only (not a speed claim): background work ends within it.
const LIVENESS: Duration = Duration::from_secs(20);

async fn wait(r: &Router, i: usize, f: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let (code, v) = status(r, i).await?;
        if code == StatusCode::OK && f(&v) {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node {i} never matched: {code} {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The counters, once the event bus has delivered (they follow it).
async fn counters(t: &TestApp, want: (i64, i64, i64)) -> anyhow::Result<()> {
    let m = &t.app.metrics;
    let read = || {
        (
            m.introspections_started.get() as i64,
            m.introspections_finished.get() as i64,
            m.introspections_failed.get() as i64,
        )
    };
    let deadline = tokio::time::Instant::now() + LIVENESS;
    while read() != want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(50)).await;
    anyhow::ensure!(
        read() == want,
        "(started, finished, failed) = {:?}, want {want:?}",
        read()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_starts_are_each_known_at_once() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    let n = 1000;
    for i in 0..n {
        add(&fake, i);
    }
    let mut not_found = 0;
    for i in 0..n {
        let (code, v) = call(
            &t.router,
            Method::POST,
            &format!("/v1/introspection/{}", uuid(i)),
            None,
        )
        .await?;
        anyhow::ensure!(code == StatusCode::ACCEPTED, "start {i}: {code} {v}");
        if status(&t.router, i).await?.0 == StatusCode::NOT_FOUND {
            not_found += 1;
        }
    }
    assert_eq!(not_found, 0, "statuses unknown right after their 202");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_at_every_point_of_the_start_flow_finish_exactly_once() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    // The start flow's calls, in order; each run delays one of them so the
    // report lands while the flow is there.
    let steps: [(Method, &str); 4] = [
        (Method::PATCH, "/v1/nodes/"),
        (Method::GET, "/v1/ports"),
        (Method::PUT, "/v1/nodes/{}/management/boot_device"),
        (Method::PUT, "/v1/nodes/{}/states/power"),
    ];
    for (k, (method, path)) in steps.iter().enumerate() {
        let i = k + 1;
        add(&fake, i);
        fake.inject(
            method.clone(),
            &path.replace("{}", &uuid(i)),
            Fault::Delay(Duration::from_millis(300)),
            1,
        );
        let (code, v) = call(
            &t.router,
            Method::POST,
            &format!("/v1/introspection/{}", uuid(i)),
            None,
        )
        .await?;
        anyhow::ensure!(code == StatusCode::ACCEPTED, "{code} {v}");
        // The ramdisk reports at once, while the start flow is held.
        let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report(i))).await?;
        anyhow::ensure!(
            code == StatusCode::OK,
            "report during {method} {path}: {code} {v}"
        );
        let st = wait(&t.router, i, |v| v["finished"] == true).await?;
        assert_eq!(st["error"], Value::Null, "{st}");
        let node = fake.node(&uuid(i)).unwrap_or_default();
        assert_eq!(
            node["power_state"],
            json!("power off"),
            "node {i} left powered on"
        );
        assert_eq!(node["properties"]["cpus"], json!("2"));
        assert_eq!(node["extra"].get("on_discovery"), None);
        // The reboot came before the report was processed: the last power
        // call is the power-off.
        let power: Vec<Value> = fake
            .calls_to("PUT", &format!("/v1/nodes/{}/states/power", uuid(i)))
            .into_iter()
            .filter_map(|c| c.body.map(|b| b["target"].clone()))
            .collect();
        assert_eq!(power, vec![json!("rebooting"), json!("power off")], "node {i}");
    }
    counters(&t, (4, 4, 0)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_held_past_its_limit_is_answered_503_and_changes_nothing() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    add(&fake, 1);
    // The reboot hangs longer than the hold (10 s in TestApp).
    fake.inject(
        Method::PUT,
        &format!("/v1/nodes/{}/states/power", uuid(1)),
        Fault::Delay(Duration::from_secs(12)),
        1,
    );
    call(
        &t.router,
        Method::POST,
        &format!("/v1/introspection/{}", uuid(1)),
        None,
    )
    .await?;
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report(1))).await?;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("still starting")),
        "{v}"
    );
    assert_eq!(status(&t.router, 1).await?.1["state"], json!("starting"));
    assert!(
        fake.calls_to("POST", "/v1/ports").is_empty(),
        "Ironic was not touched"
    );
    // The retry after the reboot goes through.
    wait(&t.router, 1, |v| v["state"] == "waiting").await?;
    let (code, _) = call(&t.router, Method::POST, "/v1/continue", Some(report(1))).await?;
    assert_eq!(code, StatusCode::OK);
    wait(&t.router, 1, |v| v["finished"] == true).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ending_is_counted_once() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "timeout = 1\nclean_up_period = 0.05").await?;
    for i in 1..=4 {
        add(&fake, i);
    }
    let start = |i| {
        let r = t.router.clone();
        async move { call(&r, Method::POST, &format!("/v1/introspection/{}", uuid(i)), None).await }
    };
    // 1 finishes.
    start(1).await?;
    wait(&t.router, 1, |v| v["state"] == "waiting").await?;
    assert_eq!(
        call(&t.router, Method::POST, "/v1/continue", Some(report(1)))
            .await?
            .0,
        StatusCode::OK
    );
    wait(&t.router, 1, |v| v["finished"] == true).await?;
    counters(&t, (1, 1, 0)).await?;
    // 2 fails in the background start (the reboot is refused).
    fake.inject(
        Method::PUT,
        &format!("/v1/nodes/{}/states/power", uuid(2)),
        Fault::Status(400),
        1,
    );
    start(2).await?;
    let st = wait(&t.router, 2, |v| v["finished"] == true).await?;
    assert!(
        st["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to power on")),
        "{st}"
    );
    counters(&t, (2, 1, 1)).await?;
    // 3 fails after its report (the one PATCH of properties and extras,
    // sent after power-off, is refused).
    start(3).await?;
    wait(&t.router, 3, |v| v["state"] == "waiting").await?;
    fake.inject(
        Method::PATCH,
        &format!("/v1/nodes/{}", uuid(3)),
        Fault::Status(400),
        1,
    );
    let (code, v) = call(&t.router, Method::POST, "/v1/continue", Some(report(3))).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    let st = wait(&t.router, 3, |v| v["finished"] == true).await?;
    assert_eq!(st["state"], json!("error"));
    assert!(
        st["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to update the properties")),
        "{st}"
    );
    counters(&t, (3, 1, 2)).await?;
    // 4 times out (the clean-up run by hand, as the periodic task does).
    start(4).await?;
    wait(&t.router, 4, |v| v["state"] == "waiting").await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let timed_out = discoverd::periodic::clean_up(&t.app.lifecycle, &t.app.periodic_settings()).await?;
    assert_eq!(timed_out, 1);
    let st = wait(&t.router, 4, |v| v["finished"] == true).await?;
    assert_eq!(st["error"], json!("Introspection timeout"));
    counters(&t, (4, 1, 3)).await
}
