//! Fault tolerance with the real binaries: the helper SIGKILLed while the
//! daemon keeps serving and changing the desired state; Ironic failing for
//! a while; the filter converging once things are back.

use std::time::{Duration, Instant};

use axum::http::Method;
use discoverd::testing::{FakeIronic, Fault};
use ironic_discoverd_e2e::stack::{Stack, eventually, sorted};
use ironic_discoverd_e2e::{Netns, privileged_available};

const NODE_A: &str = "7c1a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01";
const NODE_B: &str = "7c1a3e70-2b2a-4e55-9a8f-5b0d6a0c0a02";
const MAC_A: &str = "52:54:00:7a:00:01";
const MAC_B: &str = "52:54:00:7b:00:01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_killed_then_back_gets_the_full_state_within_a_second() -> anyhow::Result<()> {
    if !privileged_available("fault_helper_kill")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE_A, "192.0.2.31");
    fake.add_port(NODE_A, MAC_A);
    fake.add_node(NODE_B, "192.0.2.32");
    fake.add_port(NODE_B, MAC_B);
    let ns = Netns::new("fault")?;
    // A long periodic sync period: the resync must come from the reconnector.
    let mut stack = Stack::new(&fake.url(), &ns, "br-fault", "firewall_update_period = 300")?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let both = sorted(&[MAC_A, MAC_B]);
    eventually("the first sync", Duration::from_secs(10), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == both))
    })
    .await?;

    stack.kill_helper();
    // The daemon keeps serving and accepts an introspection meanwhile.
    assert_eq!(stack.introspect(NODE_A).await?, 202);
    stack
        .wait_status(NODE_A, Duration::from_secs(10), |s| s["state"] == "waiting")
        .await?;
    // The old filter is still in the kernel, unchanged.
    assert_eq!(ns.nft_set_macs()?, Some(both.clone()));

    stack.start_helper(&ns)?;
    let back = Instant::now();
    let only_b = sorted(&[MAC_B]);
    eventually("the resync", Duration::from_secs(5), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == only_b))
    })
    .await?;
    let took = back.elapsed();
    assert!(took <= Duration::from_millis(1500), "resync took {took:?}");
    println!("helper back → kernel holds the desired set after {took:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ironic_outage_keeps_the_last_filter_and_loses_no_node() -> anyhow::Result<()> {
    if !privileged_available("fault_ironic_outage")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE_A, "192.0.2.41");
    fake.add_port(NODE_A, MAC_A);
    let ns = Netns::new("outage")?;
    let stack = Stack::new(&fake.url(), &ns, "br-out", "ironic_conflict_retry_period = 0.05")?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let a = sorted(&[MAC_A]);
    eventually("the first sync", Duration::from_secs(10), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == a))
    })
    .await?;
    // Ironic lists ports with 503s and then garbage for a while: periodic
    // syncs fail, the filter must stay as it was (never emptied).
    fake.inject(Method::GET, "/v1/ports", Fault::Status(503), 20);
    fake.inject(Method::GET, "/v1/ports", Fault::BadJson, 5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ns.nft_set_macs()?,
        Some(a.clone()),
        "a failed Ironic listing must not change the filter"
    );
    // Node locked (409) a few times during the start: retried, not lost.
    fake.inject(
        Method::PATCH,
        &format!("/v1/nodes/{NODE_A}"),
        Fault::Status(409),
        3,
    );
    assert_eq!(stack.introspect(NODE_A).await?, 202);
    let st = stack
        .wait_status(NODE_A, Duration::from_secs(15), |s| s["state"] == "waiting")
        .await?;
    assert!(st["error"].is_null(), "{st}");
    eventually(
        "A's MAC out of the deny set",
        Duration::from_secs(10),
        async || Ok(ns.nft_set_macs()?.filter(|s| s.is_empty())),
    )
    .await?;
    Ok(())
}
