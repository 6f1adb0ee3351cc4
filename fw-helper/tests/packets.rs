//! Real packets: a veth pair between two private namespaces, a real
//! dnsmasq serving DHCP on the server side behind the helper's filter, and
//! a real dhclient with a chosen MAC on the other side.

mod support;

use std::time::Duration;

use common::FilterMode;
use ironic_discoverd_e2e::dhcp::DhcpLab;
use support::*;

const CLIENT_MAC: u32 = 0x0505;

#[tokio::test]
async fn denied_mac_gets_no_lease_and_allowed_mac_does() -> anyhow::Result<()> {
    if !privileged_available("dhcp_packets")? {
        return Ok(());
    }
    let lab = DhcpLab::new(&mac(CLIENT_MAC).to_string())?;
    let h = Helper::start(&lab.server, "")?;
    let mut c = h.client().await?;

    // Deny mode with the client's MAC in the set: no lease, counter moves.
    expect_applied(
        &call(
            &mut c,
            sync(&["veth0"], FilterMode::Deny, vec![mac(CLIENT_MAC), mac(1)]),
        )
        .await?,
        2,
    );
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a denied MAC got a lease"
    );
    let dropped = lab.set_rule_packets()?;
    assert!(dropped > 0, "the deny rule counted no packets");

    // Incremental remove of the client's MAC: now it is served.
    expect_applied(
        &call(
            &mut c,
            common::protocol::RequestBody::Remove {
                macs: vec![mac(CLIENT_MAC)],
            },
        )
        .await?,
        1,
    );
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "an allowed MAC got no lease"
    );

    // Allow mode listing only another MAC: the client is dropped again.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(1)])).await?,
        1,
    );
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "allow mode served an unlisted MAC"
    );
    // And listing it lets it through, counted by the accept rule.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(CLIENT_MAC)])).await?,
        1,
    );
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "allow mode did not serve a listed MAC"
    );
    assert!(lab.set_rule_packets()? > 0, "the accept rule counted no packets");
    Ok(())
}

/// Through a real DHCP relay (dnsmasq in relay mode) the server sees the
/// relay's Ethernet source; only the BOOTP chaddr names the client.
#[tokio::test]
async fn relayed_requests_are_filtered_by_the_clients_mac() -> anyhow::Result<()> {
    if !privileged_available("dhcp_relay_packets")? {
        return Ok(());
    }
    let lab = DhcpLab::relayed(&mac(CLIENT_MAC).to_string())?;
    deny_and_allow_scenario(&lab, CLIENT_MAC, Dhcp::V4).await
}

/// A helper restarted after its table was deleted drops DHCP from a known
/// MAC at once (its state file), before any daemon connects; the daemon's
/// next sync lets the right ones through. Without a state file it starts
/// closed: nobody is served until the first sync.
#[tokio::test]
async fn a_restarted_helper_never_opens_the_filter() -> anyhow::Result<()> {
    if !privileged_available("dhcp_restart_packets")? {
        return Ok(());
    }
    let lab = DhcpLab::new(&mac(CLIENT_MAC).to_string())?;
    let dir = tempfile::tempdir()?;
    let conf = format!("state_file = {}", dir.path().join("state").display());
    {
        let mut h = Helper::start(&lab.server, &conf)?;
        let mut c = h.client().await?;
        expect_applied(
            &call(&mut c, sync(&["veth0"], FilterMode::Deny, vec![mac(CLIENT_MAC)])).await?,
            1,
        );
        h.proc.kill();
    }
    lab.server
        .exec(&["nft", "delete", "table", "inet", "ironic_discoverd"])?;
    // The hole this closes: no helper, no table, the known MAC is served.
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "without any filter the client should get a lease"
    );
    let h = Helper::start(&lab.server, &conf)?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a restarted helper let a denied MAC through before the daemon synced"
    );
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, vec![mac(1)])).await?,
        1,
    );
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "the daemon's sync did not let the client through"
    );
    drop(c);
    drop(h);
    // No state file, no table: closed until the first sync.
    lab.server
        .exec(&["nft", "delete", "table", "inet", "ironic_discoverd"])?;
    let h = Helper::start(&lab.server, "")?;
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a helper without state started open"
    );
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, vec![])).await?,
        0,
    );
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "the first sync did not open the closed filter"
    );
    Ok(())
}
