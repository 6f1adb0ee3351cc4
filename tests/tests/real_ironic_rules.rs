//! Introspection rules against a real standalone Ironic
//! (`DISCOVERD_TEST_IRONIC_URL`; skipped without it, a failure with
//! `DISCOVERD_REQUIRE_PRIVILEGED=1`): rules loaded through `/v1/rules`,
//! a node introspected by the daemon binary, the node read back from
//! Ironic: the driver_info, capabilities, traits and extra the rules set.
//! A `fail` rule ends its node's introspection in `error` with the rule's
//! message, and nothing of the rules or hooks reaches that node in Ironic.

use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{PlainDaemon, ironic_url, unique_prefixes};
use ironic_discoverd_e2e::stack::eventually;
use serde_json::{Value, json};

const KERNEL: &str = "http://192.0.2.1/ipa.kernel";

async fn send(method: reqwest::Method, url: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    // 1.37: Ironic's traits; the daemon ignores the header.
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("X-OpenStack-Ironic-API-Version", "1.37");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let code = resp.status().as_u16();
    Ok((code, resp.json().await.unwrap_or(Value::Null)))
}

async fn traits(ironic: &IronicRest, uuid: &str) -> anyhow::Result<Vec<String>> {
    let (_, v) = send(
        reqwest::Method::GET,
        &format!("{}/v1/nodes/{uuid}/traits", ironic.url()),
        None,
    )
    .await?;
    let mut t: Vec<String> = v["traits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    t.sort();
    Ok(t)
}

fn report(mac: &str, bmc: &str) -> Value {
    json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.80"}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 8192, "cpus": 2, "local_gb": 20
    })
}

/// Starts the introspection of `uuid`, posts its report, waits for the end.
async fn introspect(daemon: &PlainDaemon, uuid: &str, mac: &str, bmc: &str) -> anyhow::Result<(u16, Value)> {
    let status_url = format!("{}/v1/introspection/{uuid}", daemon.url);
    let (code, v) = send(reqwest::Method::POST, &status_url, None).await?;
    anyhow::ensure!(code == 202, "start of {uuid}: {code} {v}");
    eventually("the node to wait", Duration::from_secs(60), async || {
        let (_, s) = send(reqwest::Method::GET, &status_url, None).await?;
        Ok((s["state"] == "waiting").then_some(()))
    })
    .await?;
    let (code, answer) = send(
        reqwest::Method::POST,
        &format!("{}/v1/continue", daemon.url),
        Some(report(mac, bmc)),
    )
    .await?;
    let status = eventually("the introspection to end", Duration::from_secs(60), async || {
        let (_, s) = send(reqwest::Method::GET, &status_url, None).await?;
        Ok((s["finished"] == true).then_some(s))
    })
    .await?;
    Ok((code, json!({"answer": answer, "status": status})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_change_the_node_in_ironic_and_fail_ends_the_run() -> anyhow::Result<()> {
    let Some(url) = ironic_url("real_ironic_rules")? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&url)?;
    let (mac_prefix, bmc_prefix) = unique_prefixes(4);
    let good = (format!("{mac_prefix}:00:01"), format!("{bmc_prefix}1"));
    let bad = (format!("{mac_prefix}:00:02"), format!("{bmc_prefix}2"));
    let good_uuid = ironic.enroll(&good.1, &good.0).await?;
    let bad_uuid = ironic.enroll(&bad.1, &bad.0).await?;
    // A trait the rules remove, and one they leave.
    for t in ["CUSTOM_OLD", "CUSTOM_KEEP"] {
        let (code, v) = send(
            reqwest::Method::PUT,
            &format!("{url}/v1/nodes/{good_uuid}/traits/{t}"),
            None,
        )
        .await?;
        anyhow::ensure!(code == 204, "adding {t}: {code} {v}");
    }
    let daemon = PlainDaemon::start(
        &url,
        "processing_hooks = ramdisk_error,scheduler,validate_interfaces",
    )
    .await?;
    let rules_url = format!("{}/v1/rules", daemon.url);
    let rules = [
        // Every node whose deploy kernel is not set.
        json!({"description": "defaults", "conditions": [
            {"op": "is-empty", "field": "node://driver_info.deploy_kernel"}],
         "actions": [
            {"action": "set-attribute", "path": "/driver_info/deploy_kernel", "value": KERNEL},
            {"action": "set-capability", "name": "boot_mode", "value": "uefi"},
            {"action": "add-trait", "name": "CUSTOM_RULED"},
            {"action": "remove-trait", "name": "CUSTOM_OLD"},
            {"action": "extend-attribute", "path": "/extra/racks", "value": "rack-{data[cpus]}", "unique": true}]}),
        json!({"description": "refuse the bad one", "conditions": [
            {"op": "eq", "field": "data://ipmi_address", "value": bad.1}],
         // Not formatted, as the inspector's `fail`.
         "actions": [{"action": "fail", "message": "bad hardware: refused by rule"}]}),
    ];
    for r in rules {
        let (code, v) = send(reqwest::Method::POST, &rules_url, Some(r)).await?;
        anyhow::ensure!(code == 200 || code == 201, "rule: {code} {v}");
    }

    let (code, v) = introspect(&daemon, &good_uuid, &good.0, &good.1).await?;
    assert_eq!(code, 200, "{v}\n{}", daemon.log());
    assert_eq!(v["status"]["state"], "finished", "{v}\n{}", daemon.log());
    let node = ironic.node(&good_uuid).await?;
    assert_eq!(node["driver_info"]["deploy_kernel"], KERNEL, "{node}");
    assert_eq!(node["properties"]["capabilities"], "boot_mode:uefi", "{node}");
    assert_eq!(node["extra"]["racks"], json!(["rack-2"]), "{node}");
    assert_eq!(node["properties"]["cpus"], "2", "the hooks' changes went too");
    assert_eq!(
        traits(&ironic, &good_uuid).await?,
        vec!["CUSTOM_KEEP", "CUSTOM_RULED"],
        "added, removed, kept"
    );

    let (code, v) = introspect(&daemon, &bad_uuid, &bad.0, &bad.1).await?;
    let message = "bad hardware: refused by rule";
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["answer"]["error"]["message"], json!(message), "{v}");
    assert_eq!(v["status"]["state"], "error", "{v}");
    assert_eq!(v["status"]["error"], json!(message), "{v}");
    // A failed run gets the mark (after the failure is recorded).
    let node = ironic.wait_failure_mark(&bad_uuid).await?;
    assert!(node["driver_info"].get("deploy_kernel").is_none(), "{node}");
    assert!(node["properties"].get("capabilities").is_none(), "{node}");
    assert!(node["properties"].get("cpus").is_none(), "{node}");
    assert!(node["extra"].get("racks").is_none(), "{node}");
    assert!(traits(&ironic, &bad_uuid).await?.is_empty());
    for u in [&good_uuid, &bad_uuid] {
        ironic
            .send(reqwest::Method::DELETE, &format!("/v1/nodes/{u}"), None)
            .await?;
    }
    Ok(())
}
