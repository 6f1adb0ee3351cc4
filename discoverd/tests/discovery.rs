//! Auto-discovery with the fake Ironic (`[processing] node_not_found_hook
//! = enroll`): a report no node matches creates the node in Ironic with
//! the `[discovery]` driver and fields and is processed as its
//! introspection; a machine Ironic already has is refused; a creation
//! whose answer is lost is not repeated, and a transient failure answers
//! 503 without a second node.

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{FakeIronic, Fault, call};

const MAC: &str = "52:54:00:12:34:56";
const BMC: &str = "192.0.2.77";

const DISCOVERY: &str = "auth_strategy = noauth\nstore_data = database\nironic_timeout = 0.3\nironic_retry_backoff = 0.01\n\
ironic_retry_max_backoff = 0.05\nironic_request_retry_budget = 1\n\
[processing]\nnode_not_found_hook = enroll\n\
[discovery]\nenroll_node_driver = ipmi\nenroll_node_fields = resource_class:baremetal,description:found\n";

struct Env {
    fake: FakeIronic,
    router: Router,
    _t: test_support::TestApp,
}

async fn env(settings: &str) -> anyhow::Result<Env> {
    let fake = FakeIronic::start().await?;
    let t = test_support::TestApp::new(&fake.url(), settings).await?;
    Ok(Env {
        fake,
        router: t.router.clone(),
        _t: t,
    })
}

async fn report(e: &Env) -> anyhow::Result<(StatusCode, Value)> {
    let body = json!({
        "interfaces": {"em1": {"mac": MAC, "ip": "192.168.0.15"}},
        "ipmi_address": BMC, "cpu_arch": "x86_64", "memory_mb": 12288, "cpus": 4, "local_gb": 464
    });
    call(&e.router, Method::POST, "/v1/continue", Some(body)).await
}

/// Waits (a liveness bound, not a speed check) for a final state.
async fn ended(e: &Env, uuid: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = call(&e.router, Method::GET, &format!("/v1/introspection/{uuid}"), None).await?;
        if v["finished"] == json!(true) {
            return Ok(v);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never ended: {v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn creations(e: &Env) -> usize {
    e.fake
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/v1/nodes")
        .count()
}

#[tokio::test]
async fn an_unknown_machine_is_enrolled_and_introspected() -> anyhow::Result<()> {
    let e = env(DISCOVERY).await?;
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    let uuid = v["uuid"].as_str().unwrap_or_default().to_owned();
    assert_eq!(e.fake.node_uuids(), vec![uuid.clone()]);
    let status = ended(&e, &uuid).await?;
    assert_eq!(status["state"], "finished", "{status}");
    assert_eq!(status["error"], Value::Null);
    let node = e.fake.node(&uuid).unwrap_or_default();
    assert_eq!(node["driver"], "ipmi");
    assert_eq!(node["driver_info"]["ipmi_address"], BMC);
    assert_eq!(node["resource_class"], "baremetal");
    assert_eq!(node["description"], "found");
    assert_eq!(node["extra"]["auto_discovered"], json!(true));
    assert_eq!(node["extra"]["newly_discovered"], "true");
    assert!(node["extra"].get("on_discovery").is_none(), "{node}");
    assert_eq!(node["properties"]["cpus"], "4");
    assert_eq!(node["properties"]["memory_mb"], "12288");
    assert_eq!(e.fake.ports(), vec![(uuid.clone(), MAC.to_owned())]);
    let (_, data) = call(
        &e.router,
        Method::GET,
        &format!("/v1/introspection/{uuid}/data"),
        None,
    )
    .await?;
    assert_eq!(data["auto_discovered"], json!(true), "{data}");
    // The machine is known now: a second report is not enrolled again.
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(creations(&e), 1);
    Ok(())
}

#[tokio::test]
async fn without_the_hook_an_unknown_machine_is_refused() -> anyhow::Result<()> {
    let e = env("").await?;
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(creations(&e), 0);
    assert!(e.fake.node_uuids().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_machine_ironic_has_is_not_enrolled_again() -> anyhow::Result<()> {
    let e = env(DISCOVERY).await?;
    e.fake.add_node("aaaaaaaa-1111-4222-8333-444455556666", BMC);
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("aaaaaaaa-1111-4222-8333-444455556666") && msg.contains(BMC),
        "{msg}"
    );
    assert_eq!(creations(&e), 0);
    // The same by a MAC Ironic has a port for.
    let e = env(DISCOVERY).await?;
    e.fake
        .add_node("bbbbbbbb-1111-4222-8333-444455556666", "192.0.2.1");
    e.fake.add_port("bbbbbbbb-1111-4222-8333-444455556666", MAC);
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains(MAC), "{v}");
    assert_eq!(creations(&e), 0);
    Ok(())
}

/// The creation reached Ironic but its answer was lost: the node with
/// this report's marks is found by its BMC address and used.
#[tokio::test]
async fn a_lost_creation_answer_makes_no_second_node() -> anyhow::Result<()> {
    let e = env(DISCOVERY).await?;
    e.fake
        .inject_exact(Method::POST, "/v1/nodes", Fault::CloseAfter, 1);
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        creations(&e),
        1,
        "a creation that may have happened is not repeated"
    );
    let nodes = e.fake.node_uuids();
    assert_eq!(nodes.len(), 1);
    assert_eq!(v["uuid"], json!(nodes[0]));
    assert_eq!(ended(&e, &nodes[0]).await?["state"], "finished");
    Ok(())
}

/// Ironic fails the creation transiently: 503 (the ramdisk retries), no
/// node; the retry enrols exactly one.
#[tokio::test]
async fn a_transient_failure_answers_503_and_the_retry_enrols_once() -> anyhow::Result<()> {
    let e = env(DISCOVERY).await?;
    e.fake
        .inject_exact(Method::POST, "/v1/nodes", Fault::Status(503), 1);
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("create a node") && msg.contains("POST /v1/nodes"),
        "{msg}"
    );
    assert!(e.fake.node_uuids().is_empty());
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(e.fake.node_uuids().len(), 1);
    // A listing that keeps failing is transient too.
    let e = env(DISCOVERY).await?;
    e.fake
        .inject_exact(Method::GET, "/v1/nodes", Fault::Status(503), 1000);
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v.to_string().contains("list the nodes"), "{v}");
    assert_eq!(creations(&e), 0);
    Ok(())
}

/// Ironic refuses the creation: 400 naming the call and Ironic's reason.
#[tokio::test]
async fn a_refused_creation_says_which_call_and_why() -> anyhow::Result<()> {
    let e = env(DISCOVERY).await?;
    e.fake
        .inject_exact(Method::POST, "/v1/nodes", Fault::Status(400), 1);
    let (code, v) = report(&e).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("create a node") && msg.contains("POST /v1/nodes") && msg.contains("injected failure"),
        "{msg}"
    );
    assert!(e.fake.node_uuids().is_empty());
    Ok(())
}
