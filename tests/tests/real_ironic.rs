//! Against a real standalone Ironic (started once per test run by
//! `scripts/test.sh`, address in `DISCOVERD_TEST_IRONIC_URL`): several
//! nodes introspected in parallel with both payload formats, read back
//! from Ironic; DHCP through the filter with a real dnsmasq; 1.0's error
//! paths. Tests here share that Ironic, so each creates its own nodes
//! and only asserts on them.

use std::time::Duration;

use ironic_discoverd_e2e::Netns;
use ironic_discoverd_e2e::dhcp::{DhcpLab, SERVER_IF};
use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{privileged_ironic_url, unique_prefixes};
use ironic_discoverd_e2e::stack::{Stack, eventually};
use serde_json::{Value, json};

/// The MAC of a node's second NIC, which Ironic does not know: the
/// daemon must create its port, on that node.
fn second_nic(mac: &str) -> String {
    let (prefix, last) = mac.rsplit_once(':').unwrap_or((mac, "00"));
    let prefix = prefix.rsplit_once(':').map_or(prefix, |p| p.0);
    format!("{prefix}:01:{last}")
}

fn flat_payload(mac: &str, bmc: &str, cpus: u32) -> Value {
    json!({
        "interfaces": {
            "em1": {"mac": mac, "ip": "192.0.2.60"},
            "em2": {"mac": second_nic(mac), "ip": "192.0.2.62"}
        },
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": cpus, "local_gb": 40
    })
}

fn ipa_payload(mac: &str, bmc: &str, cpus: u32) -> Value {
    json!({
        "inventory": {
            "interfaces": [
                {"name": "eno1", "mac_address": mac, "ipv4_address": "192.0.2.61", "has_carrier": true},
                {"name": "eno2", "mac_address": second_nic(mac), "ipv4_address": "192.0.2.63", "has_carrier": true}
            ],
            "cpu": {"count": cpus, "architecture": "aarch64"},
            "memory": {"total": 8_000_000_000u64, "physical_mb": 8192},
            "disks": [{"name": "/dev/vda", "size": 21_474_836_480u64}],
            "bmc_address": bmc
        },
        "error": null
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_introspection_and_dhcp_only_while_introspected() -> anyhow::Result<()> {
    let Some(url) = privileged_ironic_url("real_ironic_parallel")? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&url)?;
    let (mac_prefix, bmc_prefix) = unique_prefixes(1);
    let nodes: Vec<(String, String)> = (0..4)
        .map(|i| (format!("{mac_prefix}:00:{i:02x}"), format!("{bmc_prefix}{i}")))
        .collect();
    // The DHCP client's NIC is node 0's.
    let lab = DhcpLab::new(&nodes[0].0)?;
    let mut uuids = Vec::new();
    for (mac, bmc) in &nodes {
        uuids.push(ironic.enroll(bmc, mac).await?);
    }
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let stack = Stack::new(
        &url,
        &lab.server,
        SERVER_IF,
        &format!(
            "processing_hooks = ramdisk_error,scheduler,validate_interfaces{}",
            Stack::DENY_OPEN
        ),
    )?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let contains = |macs: &[&String]| -> anyhow::Result<bool> {
        let set = lab.server.nft_set_macs()?.unwrap_or_default();
        Ok(macs.iter().all(|m| set.contains(m)))
    };
    let ours: Vec<&String> = nodes.iter().map(|(m, _)| m).collect();
    eventually(
        "all four MACs in the deny set",
        Duration::from_secs(15),
        async || Ok(contains(&ours)?.then_some(())),
    )
    .await?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "an idle known node got a DHCP answer"
    );

    // All four at once.
    let starts = join_all(uuids.iter().map(|u| stack.introspect(u)).collect()).await;
    for s in starts {
        assert_eq!(s?, 202);
    }
    eventually(
        "the MACs to leave the deny set",
        Duration::from_secs(30),
        async || {
            let set = lab.server.nft_set_macs()?.unwrap_or_default();
            Ok(ours.iter().all(|m| !set.contains(m)).then_some(()))
        },
    )
    .await?;
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "a node under introspection got no DHCP answer"
    );

    // The ramdisks report, two in each format, concurrently.
    let bodies: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, (m, b))| {
            if i % 2 == 0 {
                flat_payload(m, b, 2 + i as u32)
            } else {
                ipa_payload(m, b, 2 + i as u32)
            }
        })
        .collect();
    let replies = join_all(bodies.iter().map(|b| stack.post_continue(b)).collect()).await;
    for r in replies {
        let (code, v) = r?;
        assert_eq!(code, 200, "{v}");
    }
    for (i, uuid) in uuids.iter().enumerate() {
        let st = stack
            .wait_status(uuid, Duration::from_secs(60), |s| s["finished"] == true)
            .await?;
        assert_eq!(st["error"], Value::Null, "{uuid}: {st}");
        let node = ironic.node(uuid).await?;
        let (arch, mem, disk) = if i % 2 == 0 {
            ("x86_64", "4096", "40")
        } else {
            ("aarch64", "8192", "19")
        };
        assert_eq!(
            node["properties"],
            json!({"cpus": (2 + i).to_string(), "cpu_arch": arch, "memory_mb": mem, "local_gb": disk}),
            "{uuid}"
        );
        assert_eq!(node["extra"], json!({"newly_discovered": "true"}));
        // The power-off is the last call; Ironic carries it out after
        // answering it.
        eventually("the node powered off", Duration::from_secs(30), async || {
            Ok((ironic.node(uuid).await?["power_state"] == "power off").then_some(()))
        })
        .await?;
        // The enrolled port, and the second NIC's created on this node.
        let mut want = vec![nodes[i].0.clone(), second_nic(&nodes[i].0)];
        want.sort();
        assert_eq!(ironic.port_macs(uuid).await?, want, "{uuid}'s ports");
    }
    eventually(
        "the MACs back in the deny set",
        Duration::from_secs(15),
        async || Ok(contains(&ours)?.then_some(())),
    )
    .await?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a finished node still got a DHCP answer"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_paths_of_discoverd_1_0_against_real_ironic() -> anyhow::Result<()> {
    let Some(url) = privileged_ironic_url("real_ironic_errors")? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&url)?;
    let (mac_prefix, bmc_prefix) = unique_prefixes(2);
    let ns = Netns::new("rierr")?;
    let stack = Stack::new(&url, &ns, "br-err", "timeout = 2\nclean_up_period = 0.5")?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;

    // Unknown node.
    let unknown = "5f0b4f3e-4c87-4a87-9d7e-1f5b4c2d9a00";
    let r = stack
        .http
        .post(stack.url(&format!("/v1/introspection/{unknown}")))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await?;
    assert_eq!(
        body["error"]["message"],
        json!(format!("Cannot find node {unknown}"))
    );

    // A node in "available" is refused, unless it is in maintenance.
    let avail = ironic
        .enroll(&format!("{bmc_prefix}1"), &format!("{mac_prefix}:00:01"))
        .await?;
    ironic.set_provision(&avail, "provide", "available").await?;
    let r = stack
        .http
        .post(stack.url(&format!("/v1/introspection/{avail}")))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await?;
    assert_eq!(
        body["error"]["message"],
        json!(format!(
            "Refusing to introspect node {avail} with provision state \"available\" and maintenance mode off"
        ))
    );
    ironic
        .send(
            reqwest::Method::PUT,
            &format!("/v1/nodes/{avail}/maintenance"),
            Some(json!({"reason": "test"})),
        )
        .await?;
    assert_eq!(stack.introspect(&avail).await?, 202);

    // Timeout: nobody reports, the status says so, and Ironic is untouched.
    let st = stack
        .wait_status(&avail, Duration::from_secs(15), |s| s["finished"] == true)
        .await?;
    assert_eq!(st["error"], json!("Introspection timeout"));
    ironic.wait_failure_mark(&avail).await?;

    // Already finished: a repeated report finds no node (attributes are
    // gone). A second daemon without the short timeout.
    let ns2 = Netns::new("rierr2")?;
    let stack = Stack::new(&url, &ns2, "br-err", "")?;
    let _daemon2 = stack.daemon()?;
    stack.wait_ready().await?;
    let done_mac = format!("{mac_prefix}:00:02");
    let done_bmc = format!("{bmc_prefix}2");
    let done = ironic.enroll(&done_bmc, &done_mac).await?;
    assert_eq!(stack.introspect(&done).await?, 202);
    stack
        .wait_status(&done, Duration::from_secs(15), |s| s["state"] == "waiting")
        .await?;
    let (code, v) = stack
        .post_continue(&flat_payload(&done_mac, &done_bmc, 2))
        .await?;
    assert_eq!(code, 200, "{v}");
    let st = stack
        .wait_status(&done, Duration::from_secs(30), |s| s["finished"] == true)
        .await?;
    assert_eq!(st["error"], Value::Null, "{st}");
    let (code, v) = stack
        .post_continue(&flat_payload(&done_mac, &done_bmc, 2))
        .await?;
    assert_eq!(code, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Could not find a node for attributes")),
        "{v}"
    );
    Ok(())
}

/// A minimal join-all over boxed futures (no extra crate for one helper).
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
