//! Auto-discovery against a real standalone Ironic
//! (`DISCOVERD_TEST_IRONIC_URL`; skipped without it, a failure with
//! `DISCOVERD_REQUIRE_PRIVILEGED=1`): the daemon binary with
//! `node_not_found_hook = enroll` gets a report from a machine Ironic
//! does not know, creates the node with the `[discovery]` driver and
//! fields, and finishes its introspection; the node read back from
//! Ironic has them, its properties, its port and the `auto_discovered`
//! mark. A second report from the same machine is not enrolled again.

use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{PlainDaemon, ironic_url, unique_prefixes};
use ironic_discoverd_e2e::stack::eventually;
use serde_json::{Value, json};

async fn send(method: reqwest::Method, url: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let code = resp.status().as_u16();
    Ok((code, resp.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_machine_is_enrolled_and_finished() -> anyhow::Result<()> {
    let Some(url) = ironic_url("real_ironic_discovery")? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&url)?;
    let (mac_prefix, bmc_prefix) = unique_prefixes(3);
    let (mac, bmc) = (format!("{mac_prefix}:00:01"), format!("{bmc_prefix}1"));
    let tag = format!("discovered-{}", std::process::id());
    let daemon = PlainDaemon::start(
        &url,
        &format!(
            "processing_hooks = ramdisk_error,scheduler,validate_interfaces\nstore_data = database\n\
             [processing]\nnode_not_found_hook = enroll\n\
             [discovery]\nenroll_node_driver = fake-hardware\nenroll_node_fields = name:{tag},resource_class:discovered\n"
        ),
    )
    .await?;
    let report = json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.70"}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 6144, "cpus": 3, "local_gb": 30
    });
    let continue_url = format!("{}/v1/continue", daemon.url);
    let (code, v) = send(reqwest::Method::POST, &continue_url, Some(report.clone())).await?;
    assert_eq!(code, 200, "{v}\n{}", daemon.log());
    let uuid = v["uuid"].as_str().unwrap_or_default().to_owned();
    let status_url = format!("{}/v1/introspection/{uuid}", daemon.url);
    let status = eventually("the introspection to end", Duration::from_secs(60), async || {
        let (_, s) = send(reqwest::Method::GET, &status_url, None).await?;
        Ok((s["finished"] == true).then_some(s))
    })
    .await?;
    assert_eq!(status["state"], "finished", "{status}\n{}", daemon.log());
    assert_eq!(status["error"], Value::Null);

    let node = ironic.node(&uuid).await?;
    assert_eq!(node["driver"], "fake-hardware", "{node}");
    assert_eq!(node["driver_info"]["ipmi_address"], json!(bmc));
    assert_eq!(node["name"], json!(tag));
    assert_eq!(node["resource_class"], "discovered");
    assert_eq!(node["extra"]["auto_discovered"], json!(true), "{node}");
    assert_eq!(node["extra"]["newly_discovered"], "true");
    assert!(node["extra"].get("on_discovery").is_none(), "{node}");
    assert_eq!(node["properties"]["cpus"], "3");
    assert_eq!(node["properties"]["memory_mb"], "6144");
    assert_eq!(node["properties"]["cpu_arch"], "x86_64");
    // Ironic carries the accepted power-off out after the finish.
    eventually(
        "the node to be powered off",
        Duration::from_secs(30),
        async || Ok((ironic.node(&uuid).await?["power_state"] == "power off").then_some(())),
    )
    .await?;
    assert_eq!(ironic.port_macs(&uuid).await?, vec![mac.clone()]);
    let (_, data) = send(reqwest::Method::GET, &format!("{status_url}/data"), None).await?;
    assert_eq!(data["auto_discovered"], json!(true), "{data}");

    // Known now: the same machine reporting again is refused, not enrolled twice.
    let (code, v) = send(reqwest::Method::POST, &continue_url, Some(report)).await?;
    assert_eq!(code, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(&uuid), "{msg}");
    let mut with_bmc = 0;
    let mut path = "/v1/nodes?fields=uuid,driver_info&limit=1000".to_owned();
    loop {
        let page = ironic.send(reqwest::Method::GET, &path, None).await?;
        with_bmc += page["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["driver_info"]["ipmi_address"] == json!(bmc))
            .count();
        match page["next"]
            .as_str()
            .and_then(|n| n.find("/v1/").map(|i| n[i..].to_owned()))
        {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(with_bmc, 1, "one node for the machine");
    ironic
        .send(reqwest::Method::DELETE, &format!("/v1/nodes/{uuid}"), None)
        .await?;
    Ok(())
}
