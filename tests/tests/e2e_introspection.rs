//! The real daemon (unprivileged, no capabilities) and the real helper
//! (in a private network namespace) against the in-process fake Ironic: a
//! whole introspection with a 1.0 ramdisk payload, the kernel filter read
//! back before, during and after, and a SIGKILL of the daemon in the middle.

use std::time::Duration;

use ironic_discoverd_e2e::stack::{DAEMON_ID, Stack, eventually, sorted};
use ironic_discoverd_e2e::{Netns, binary, privileged_available, proc_status_field};
use serde_json::{Value, json};
use test_support::FakeIronic;

const NODE_A: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01";
const NODE_B: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a02";
const NODE_C: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a03";
const MAC_A: &str = "52:54:00:0a:00:01";
const MAC_B: &str = "52:54:00:0b:00:01";
const MAC_C: &str = "52:54:00:0c:00:01";

fn payload(mac: &str, bmc: &str) -> Value {
    json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.50"}, "em2": {"mac": "52:54:00:ff:ff:ff", "ip": ""}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 8192, "cpus": 2, "local_gb": 99
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_introspection_with_the_real_helper_and_a_daemon_killed_midway() -> anyhow::Result<()> {
    if !privileged_available("e2e_introspection")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    for (uuid, mac, bmc) in [
        (NODE_A, MAC_A, "192.0.2.11"),
        (NODE_B, MAC_B, "192.0.2.12"),
        (NODE_C, MAC_C, "192.0.2.13"),
    ] {
        fake.add_node(uuid, bmc);
        fake.add_port(uuid, mac);
    }
    let ns = Netns::new("e2e")?;
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let stack = Stack::new(
        &fake.url(),
        &ns,
        "br-e2e",
        &format!(
            "processing_hooks = ramdisk_error,scheduler,validate_interfaces{}",
            Stack::DENY_OPEN
        ),
    )?;
    let set = || ns.nft_set_macs();
    let mut daemon = stack.daemon()?;
    stack.wait_ready().await?;

    // Unprivileged: its own uid, no capabilities at all.
    let pid = daemon.pid();
    let uid_line = proc_status_field(pid, "Uid")?;
    assert!(
        uid_line.split_whitespace().all(|u| u == DAEMON_ID.to_string()),
        "{uid_line}"
    );
    assert_eq!(proc_status_field(pid, "CapEff")?, "0000000000000000");
    assert_eq!(proc_status_field(pid, "CapPrm")?, "0000000000000000");

    // Before: deny mode drops DHCP from every known, idle node.
    let all = sorted(&[MAC_A, MAC_B, MAC_C]);
    eventually("the first full sync", Duration::from_secs(10), async || {
        Ok(set()?.filter(|s| *s == all))
    })
    .await?;

    // During: node A's MAC is let through before its reboot. Started with
    // the CLI, as an operator would.
    let cli = |args: &[&str]| -> anyhow::Result<(i32, String)> {
        let out = std::process::Command::new(binary("ironic-discoverd-client")?)
            .arg("--discoverd-url")
            .arg(stack.url(""))
            .args(args)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let (code, _) = tokio::task::block_in_place(|| cli(&["introspect", NODE_A]))?;
    assert_eq!(code, 0);
    let without_a = sorted(&[MAC_B, MAC_C]);
    eventually(
        "A's MAC to leave the deny set",
        Duration::from_secs(10),
        async || Ok(set()?.filter(|s| *s == without_a)),
    )
    .await?;
    eventually("A's reboot", Duration::from_secs(10), async || {
        Ok((!fake
            .calls_to("PUT", &format!("/v1/nodes/{NODE_A}/states/power"))
            .is_empty())
        .then_some(()))
    })
    .await?;

    // Start B too, then SIGKILL the daemon while both are in flight.
    assert_eq!(stack.introspect(NODE_B).await?, 202);
    let only_c = sorted(&[MAC_C]);
    eventually(
        "B's MAC to leave the deny set",
        Duration::from_secs(10),
        async || Ok(set()?.filter(|s| *s == only_c)),
    )
    .await?;
    daemon.kill();
    // The filter stays while the daemon is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(set()?, Some(only_c.clone()));
    // Someone puts A and B (both in flight) back into the deny set while the
    // daemon is down: the helper defends the last state it was given and
    // takes them out again on its own (docs/dhcp-filter.md).
    let table = ns.nft_table()?.unwrap_or_default();
    let deny_set = table["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|i| i.get("set")).cloned())
        .ok_or_else(|| anyhow::anyhow!("no set in the table: {table}"))?;
    let field = |k: &str| deny_set[k].as_str().unwrap_or_default().to_owned();
    ns.exec(&[
        "nft",
        "add",
        "element",
        &field("family"),
        &field("table"),
        &field("name"),
        &format!("{{ {MAC_A}, {MAC_B} }}"),
    ])?;
    eventually(
        "the helper to restore its state while the daemon is down",
        Duration::from_secs(5),
        async || Ok(set()?.filter(|s| *s == only_c)),
    )
    .await?;

    let mut daemon2 = stack.daemon()?;
    stack.wait_ready().await?;
    for uuid in [NODE_A, NODE_B] {
        let (code, out) = tokio::task::block_in_place(|| cli(&["get_status", uuid]))?;
        assert_eq!(code, 0, "{out}");
        let st: Value = serde_json::from_str(&out)?;
        assert_eq!(
            (st["finished"].clone(), st["error"].clone()),
            (json!(false), Value::Null),
            "{uuid}: {st}"
        );
    }
    // The restarted daemon's first full sync computes the same set from the
    // cache: /readyz answers 200 only once it is in the helper, and a daemon
    // that lost A and B would have put their MACs back (Ironic has their
    // ports). The set was already right before, so wait for the sync first.
    eventually(
        "the restarted daemon's first sync (/readyz)",
        Duration::from_secs(30),
        async || {
            let r = stack.http.get(stack.url("/readyz")).send().await?;
            Ok(r.status().is_success().then_some(()))
        },
    )
    .await?;
    assert_eq!(set()?, Some(only_c.clone()), "the restarted daemon's sync");

    // After: the ramdisk reports, the node is updated and filtered again.
    let (code, reply) = stack.post_continue(&payload(MAC_A, "192.0.2.11")).await?;
    assert_eq!(code, 200, "{reply}");
    let st = stack
        .wait_status(NODE_A, Duration::from_secs(20), |s| s["finished"] == true)
        .await?;
    assert_eq!(st["error"], Value::Null, "{st}");
    let props = fake
        .node(NODE_A)
        .map(|n| n["properties"].clone())
        .unwrap_or_default();
    assert_eq!(
        props,
        json!({"cpus": "2", "cpu_arch": "x86_64", "memory_mb": "8192", "local_gb": "99"})
    );
    let a_back = sorted(&[MAC_A, MAC_C]);
    eventually(
        "A's MAC back in the deny set",
        Duration::from_secs(10),
        async || Ok(set()?.filter(|s| *s == a_back)),
    )
    .await?;

    // A clean stop: SIGTERM, exit 0; the filter stays.
    let exit = daemon2.terminate(Duration::from_secs(10))?;
    assert!(exit.success(), "daemon exited with {exit}\n{}", stack.log());
    assert_eq!(set()?, Some(a_back));
    Ok(())
}
