//! DHCPv6 through the nftables filter: a real dnsmasq with a DHCPv6 range
//! in one namespace, a real `dhclient -6` with a chosen MAC in another,
//! a veth between them.

mod support;

use std::time::Duration;

use common::FilterMode;
use common::protocol::RequestBody;
use ironic_discoverd_e2e::dhcp::DhcpLab;
use support::*;

const CLIENT_MAC: u32 = 0x0707;

#[tokio::test]
async fn dhcpv6_from_a_denied_mac_is_dropped_and_an_allowed_one_is_served() -> anyhow::Result<()> {
    if !privileged_available("dhcpv6_packets")? {
        return Ok(());
    }
    let lab = DhcpLab::dual_stack(&mac(CLIENT_MAC).to_string())?;
    let h = Helper::start(&lab.server, "")?;
    let mut c = h.client().await?;

    // Nothing denied: the lab works.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, vec![mac(1)])).await?,
        1,
    );
    assert!(
        lab.try_lease6(Duration::from_secs(15))?,
        "no DHCPv6 lease with nothing denied:\n{}",
        lab.server_log()
    );
    // Denied: no lease, and the drop rules counted its packets.
    expect_applied(
        &call(
            &mut c,
            sync(&["veth0"], FilterMode::Deny, vec![mac(CLIENT_MAC), mac(1)]),
        )
        .await?,
        2,
    );
    let before = lab.set_rule_packets()?;
    assert!(
        !lab.try_lease6(Duration::from_secs(6))?,
        "a denied MAC got a DHCPv6 lease"
    );
    assert!(
        lab.set_rule_packets()? > before,
        "the deny rules counted no DHCPv6 packet"
    );
    // Removed from the set: served.
    expect_applied(
        &call(
            &mut c,
            RequestBody::Remove {
                macs: vec![mac(CLIENT_MAC)],
            },
        )
        .await?,
        1,
    );
    assert!(
        lab.try_lease6(Duration::from_secs(15))?,
        "a MAC removed from the deny set got no DHCPv6 lease"
    );
    // Allow mode: unlisted dropped, listed served.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(1)])).await?,
        1,
    );
    assert!(
        !lab.try_lease6(Duration::from_secs(6))?,
        "allow mode served DHCPv6 to an unlisted MAC"
    );
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(CLIENT_MAC)])).await?,
        1,
    );
    assert!(
        lab.try_lease6(Duration::from_secs(15))?,
        "allow mode did not serve DHCPv6 to a listed MAC"
    );
    Ok(())
}

/// With `match_dhcpv6 = false` the filter is DHCPv4-only, as before: the
/// denied MAC's DHCPv6 goes through (what the rules above are for).
#[tokio::test]
async fn without_match_dhcpv6_a_denied_mac_gets_its_dhcpv6_lease() -> anyhow::Result<()> {
    if !privileged_available("dhcpv6_off_packets")? {
        return Ok(());
    }
    let lab = DhcpLab::dual_stack(&mac(CLIENT_MAC).to_string())?;
    let h = Helper::start(&lab.server, "match_dhcpv6 = false")?;
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, vec![mac(CLIENT_MAC)])).await?,
        1,
    );
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "the DHCPv4 filter let a denied MAC through"
    );
    assert!(
        lab.try_lease6(Duration::from_secs(15))?,
        "DHCPv6 was filtered with match_dhcpv6 = false"
    );
    Ok(())
}

/// Through a real DHCPv6 relay (dnsmasq `--dhcp-relay`), the server sees
/// the relay's Ethernet source; the client's MAC is in the Relay-Forward's
/// first option (RFC 6939), which the relayed rule reads.
#[tokio::test]
async fn relayed_dhcpv6_is_filtered_by_the_client_link_layer_option() -> anyhow::Result<()> {
    if !privileged_available("dhcpv6_relay_packets")? {
        return Ok(());
    }
    let lab = DhcpLab::relayed6(&mac(CLIENT_MAC).to_string())?;
    deny_and_allow_scenario(&lab, CLIENT_MAC, Dhcp::V6).await
}
