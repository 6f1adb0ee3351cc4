//! The daemon driving the other filter shapes end to end against a real
//! standalone Ironic (`DISCOVERD_TEST_IRONIC_URL`, as in real_ironic.rs):
//! allow mode through the iptables backend, and deny mode through the
//! dnsmasq `dhcp-hostsdir` backend with dnsmasq reading the directory. A
//! real dhclient with an enrolled node's MAC asks for a lease before,
//! during and after that node's introspection.

use std::path::PathBuf;
use std::time::Duration;

use ironic_discoverd_e2e::dhcp::{DhcpLab, SERVER_IF};
use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{privileged_ironic_url, unique_prefixes};
use ironic_discoverd_e2e::stack::{Stack, eventually};
use serde_json::{Value, json};

fn payload(mac: &str, bmc: &str) -> Value {
    json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.60"}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": 2, "local_gb": 40
    })
}

/// Node 0 (the DHCP client) is introspected; node 1 stays idle.
/// `filtered(mac)` reads the backend's state for one MAC.
async fn introspect_node_0(
    stack: &Stack,
    lab: &DhcpLab,
    nodes: &[(String, String)],
    uuids: &[String],
    filtered: &impl AsyncFn(&str) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mac0 = &nodes[0].0;
    eventually("node 0 filtered", Duration::from_secs(15), async || {
        Ok(filtered(mac0).await?.then_some(()))
    })
    .await?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "an idle known node got a DHCP answer"
    );
    assert_eq!(stack.introspect(&uuids[0]).await?, 202);
    eventually("node 0 let through", Duration::from_secs(30), async || {
        Ok((!filtered(mac0).await?).then_some(()))
    })
    .await?;
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "a node under introspection got no DHCP answer:\n{}",
        lab.server_log()
    );
    let (code, v) = stack.post_continue(&payload(mac0, &nodes[0].1)).await?;
    assert_eq!(code, 200, "{v}");
    let st = stack
        .wait_status(&uuids[0], Duration::from_secs(60), |s| s["finished"] == true)
        .await?;
    assert_eq!(st["error"], Value::Null, "{st}");
    eventually("node 0 filtered again", Duration::from_secs(15), async || {
        Ok(filtered(mac0).await?.then_some(()))
    })
    .await?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a finished node still got a DHCP answer"
    );
    Ok(())
}

async fn enroll(url: &str, tag: u8) -> anyhow::Result<(Vec<(String, String)>, Vec<String>)> {
    let ironic = IronicRest::new(url)?;
    let (mac_prefix, bmc_prefix) = unique_prefixes(tag);
    let nodes: Vec<(String, String)> = (0..2)
        .map(|i| (format!("{mac_prefix}:00:{i:02x}"), format!("{bmc_prefix}{i}")))
        .collect();
    let mut uuids = Vec::new();
    for (mac, bmc) in &nodes {
        uuids.push(ironic.enroll(bmc, mac).await?);
    }
    Ok((nodes, uuids))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_mode_through_the_iptables_backend() -> anyhow::Result<()> {
    let Some(url) = privileged_ironic_url("real_ironic_allow_iptables")? else {
        return Ok(());
    };
    let (nodes, uuids) = enroll(&url, 0x21).await?;
    let lab = DhcpLab::new(&nodes[0].0)?;
    let stack = Stack::with_helper_config(
        &url,
        &lab.server,
        SERVER_IF,
        "firewall_mode = allow",
        "backend = iptables",
    )?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let server = &lab.server;
    // Allowed = listed in our chain with RETURN; everyone else is dropped.
    let filtered = async |mac: &str| -> anyhow::Result<bool> {
        let saved = server.exec(&["iptables-nft-save", "-t", "filter"])?;
        assert!(saved.contains("ironic-discoverd:allow"), "{saved}");
        Ok(
            !saved.contains(&format!("--mac-source {} -j RETURN", mac.to_uppercase()))
                && !saved.contains(&format!("--mac-source {mac} -j RETURN")),
        )
    };
    introspect_node_0(&stack, &lab, &nodes, &uuids, &filtered).await?;
    // The idle node was never let through.
    assert!(filtered(&nodes[1].0).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_mode_through_the_dnsmasq_hostsdir_backend() -> anyhow::Result<()> {
    let Some(url) = privileged_ironic_url("real_ironic_hostsdir")? else {
        return Ok(());
    };
    let (nodes, uuids) = enroll(&url, 0x22).await?;
    let top = tempfile::tempdir()?;
    std::fs::set_permissions(top.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let dir: PathBuf = top.path().join("hosts");
    std::fs::create_dir(&dir)?;
    let nobody = nix::unistd::User::from_name("nobody")?.ok_or_else(|| anyhow::anyhow!("no user nobody"))?;
    nix::unistd::chown(&dir, Some(nobody.uid), Some(nobody.gid))?;
    let lab = DhcpLab::with_dnsmasq_args(&nodes[0].0, &[format!("--dhcp-hostsdir={}", dir.display())])?;
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let stack = Stack::with_helper_config(
        &url,
        &lab.server,
        SERVER_IF,
        Stack::DENY_OPEN,
        &format!("backend = dnsmasq\ndnsmasq_hostsdir = {}", dir.display()),
    )?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    // No kernel filter at all: only dnsmasq's "ignore" keeps node 0 out.
    assert_eq!(lab.server.nft_table()?, None);
    let d = dir.clone();
    let filtered = async move |mac: &str| -> anyhow::Result<bool> {
        Ok(std::fs::read_to_string(d.join(mac)).is_ok_and(|t| t.starts_with(&format!("{mac},ignore"))))
    };
    introspect_node_0(&stack, &lab, &nodes, &uuids, &filtered).await?;
    assert!(filtered(&nodes[1].0).await?);
    Ok(())
}
