//! A `202` for a start is a promise: the daemon (the real binary)
//! SIGKILLed right after a burst of accepted starts knows every one of
//! them after its restart, and the starts whose reboot had not been sent
//! are resumed (rebooted) rather than left for the timeout.

use std::time::Duration;

use axum::http::Method;
use ironic_discoverd_e2e::stack::{Stack, eventually};
use ironic_discoverd_e2e::{Netns, privileged_available};
use serde_json::{Value, json};
use test_support::{Call, FakeIronic, Fault};

const NODES: usize = 30;
/// Nodes `0..HELD_PATCH` hang on their first PATCH (before the reboot);
/// nodes `HELD_PATCH..HELD_POWER` on their first power call (the reboot
/// is received but not answered). The rest run freely.
const HELD_PATCH: usize = 10;
const HELD_POWER: usize = 20;
const HOLD: Duration = Duration::from_secs(5);

fn node(i: usize) -> (String, String, String) {
    (
        format!("5d0c1b2a-6e7f-4a8b-9c0d-1e2f3a{i:06x}"),
        format!("52:54:20:00:00:{i:02x}"),
        format!("203.0.113.{}", i + 1),
    )
}

fn reboots(calls: &[Call], uuid: &str) -> usize {
    let path = format!("/v1/nodes/{uuid}/states/power");
    calls
        .iter()
        .filter(|c| c.method == "PUT" && c.path == path)
        .filter(|c| c.body.as_ref().is_some_and(|b| b["target"] == "rebooting"))
        .count()
}

fn power_targets(calls: &[Call], uuid: &str) -> Vec<Value> {
    let path = format!("/v1/nodes/{uuid}/states/power");
    calls
        .iter()
        .filter(|c| c.method == "PUT" && c.path == path)
        .filter_map(|c| c.body.as_ref().map(|b| b["target"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_starts_survive_sigkill_and_unsent_reboots_are_sent() -> anyhow::Result<()> {
    if !privileged_available("durable_start")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    let nodes: Vec<_> = (0..NODES).map(node).collect();
    for (i, (uuid, mac, bmc)) in nodes.iter().enumerate() {
        fake.add_node(uuid, bmc);
        fake.add_port(uuid, mac);
        let (method, path) = if i < HELD_PATCH {
            (Method::PATCH, format!("/v1/nodes/{uuid}"))
        } else if i < HELD_POWER {
            (Method::PUT, format!("/v1/nodes/{uuid}/states/power"))
        } else {
            continue;
        };
        fake.inject(method, &path, Fault::Delay(HOLD), 1);
    }
    let ns = Netns::new("durable")?;
    let stack = Stack::new(&fake.url(), &ns, "br-durable", "timeout = 300")?;
    let mut daemon = stack.daemon()?;
    stack.wait_ready().await?;

    // The burst: every start answered 202, then SIGKILL at once.
    for code in stack.introspect_all(nodes.iter().map(|n| &n.0)).await? {
        assert_eq!(code, 202);
    }
    daemon.kill();
    let before_kill = fake.calls();
    for (uuid, _, _) in &nodes[..HELD_PATCH] {
        assert_eq!(
            reboots(&before_kill, uuid),
            0,
            "{uuid} was rebooted before the kill: the test holds nothing back"
        );
    }

    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    // Every accepted start is known at once after the restart.
    for (uuid, _, _) in &nodes {
        let (code, st) = stack.status(uuid).await?;
        assert_eq!(code, 200, "{uuid} accepted, then lost: {st}");
        assert_eq!(st["finished"], false, "{uuid}: {st}");
    }
    // ... and each reaches `waiting` (resumed), not the 300 s timeout.
    for (uuid, _, _) in &nodes {
        stack
            .wait_status(uuid, Duration::from_secs(60), |s| s["state"] == "waiting")
            .await?;
    }
    let after_restart = fake.calls();
    let since_restart = &after_restart[before_kill.len()..];
    for (uuid, _, _) in &nodes[..HELD_PATCH] {
        assert_eq!(
            reboots(since_restart, uuid),
            1,
            "{uuid}: its reboot had not been sent before the kill"
        );
    }
    for (uuid, _, _) in &nodes {
        assert!(reboots(&after_restart, uuid) >= 1, "{uuid} never rebooted");
    }

    // The ramdisks report: every node finishes once, without error, and
    // its last power call is the power-off.
    for (uuid, mac, bmc) in &nodes {
        let body = json!({
            "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.60"}},
            "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": 2, "local_gb": 40
        });
        let (code, answer) = stack.post_continue(&body).await?;
        assert_eq!(code, 200, "{uuid}: {answer}");
    }
    for (uuid, _, _) in &nodes {
        let st = stack
            .wait_status(uuid, Duration::from_secs(60), |s| s["finished"] == true)
            .await?;
        assert!(st["error"].is_null(), "{uuid}: {st}");
    }
    let calls = eventually("every node powered off", Duration::from_secs(30), async || {
        let calls = fake.calls();
        Ok(nodes
            .iter()
            .all(|(u, _, _)| power_targets(&calls, u).last() == Some(&json!("power off")))
            .then_some(calls))
    })
    .await?;
    for (uuid, _, _) in &nodes {
        let after_off = power_targets(&calls, uuid)
            .iter()
            .skip_while(|t| **t != "power off")
            .any(|t| *t == "rebooting");
        assert!(!after_off, "{uuid} rebooted after its report was processed");
    }
    Ok(())
}
