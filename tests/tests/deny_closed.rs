//! Deny mode without auto-discovery lets unknown MACs through only while
//! an introspection runs (issue 14; ironic-inspector's iptables filter,
//! `_should_enable_dhcp`): with the real daemon, helper, kernel, dnsmasq
//! and dhclient, an unknown MAC gets no lease while nothing runs, gets one
//! while a node without ports is introspected, and none again once that
//! introspection is aborted.

use std::time::Duration;

use ironic_discoverd_e2e::dhcp::{DhcpLab, SERVER_IF};
use ironic_discoverd_e2e::privileged_available;
use ironic_discoverd_e2e::stack::{Stack, eventually};
use test_support::FakeIronic;

const NODE: &str = "d3c1a3e7-2b2a-4e55-9a8f-5b0d6a0c0a01";
/// Port of an idle node Ironic knows, not the client's.
const IDLE: (&str, &str) = ("d3c1a3e7-2b2a-4e55-9a8f-5b0d6a0c0a02", "52:54:00:d3:00:02");
/// The client's MAC: no Ironic port has it.
const UNKNOWN_MAC: &str = "52:54:00:d3:00:99";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_mode_opens_for_unknown_macs_only_while_an_introspection_runs() -> anyhow::Result<()> {
    if !privileged_available("deny_closed")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    // The node to introspect has no ports: found later by its BMC address.
    fake.add_node(NODE, "192.0.2.31");
    fake.add_node(IDLE.0, "192.0.2.32");
    fake.add_port(IDLE.0, IDLE.1);
    let lab = DhcpLab::new(UNKNOWN_MAC)?;
    let stack = Stack::new(&fake.url(), &lab.server, SERVER_IF, "")?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let ns = &lab.server;
    let filter = || -> anyhow::Result<Option<(String, Vec<String>)>> {
        Ok(ns.nft_set_name()?.zip(ns.nft_set_macs()?))
    };

    // Nothing runs: closed, no DHCP at all.
    let closed = Some(("allowed".to_owned(), Vec::new()));
    eventually("the filter closed", Duration::from_secs(10), async || {
        Ok((filter()? == closed).then_some(()))
    })
    .await?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "an unknown MAC got a lease with no introspection running\n{}",
        stack.log()
    );

    // A node without ports is introspected: its start adds no MAC, yet
    // unknown MACs pass (the idle known one stays out).
    assert_eq!(stack.introspect(NODE).await?, 202);
    let open = Some(("denied".to_owned(), vec![IDLE.1.to_owned()]));
    eventually("the filter open", Duration::from_secs(10), async || {
        Ok((filter()? == open).then_some(()))
    })
    .await?;
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "an unknown MAC got no lease while an introspection runs\n{}",
        stack.log()
    );

    // The introspection is aborted: closed again.
    let r = stack
        .http
        .post(stack.url(&format!("/v1/introspection/{NODE}/abort")))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await?);
    eventually("the filter closed again", Duration::from_secs(10), async || {
        Ok((filter()? == closed).then_some(()))
    })
    .await?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "an unknown MAC got a lease after the last introspection ended\n{}",
        stack.log()
    );
    assert!(
        stack.log().contains("DHCP filter open for unknown MACs"),
        "{}",
        stack.log()
    );
    Ok(())
}
