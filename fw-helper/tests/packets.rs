//! Real packets: a veth pair between two private namespaces, a real
//! dnsmasq serving DHCP on the server side behind the helper's filter, and
//! a real dhclient with a chosen MAC on the other side.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::FilterMode;
use support::*;

const CLIENT_MAC: u32 = 0x0505;

struct Lab {
    server: Netns,
    client: Netns,
    dir: tempfile::TempDir,
    _dnsmasq: ChildGuard,
}

impl Lab {
    fn new() -> anyhow::Result<Self> {
        let server = Netns::new("dhcps")?;
        let client = Netns::new("dhcpc")?;
        // veth0 (server, 192.0.2.1/24) <-> veth1 (client, chosen MAC)
        server.exec(&[
            "ip",
            "link",
            "add",
            "veth0",
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            client.name(),
        ])?;
        server.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "veth0"])?;
        server.exec(&["ip", "link", "set", "veth0", "up"])?;
        client.exec(&[
            "ip",
            "link",
            "set",
            "veth1",
            "address",
            &mac(CLIENT_MAC).to_string(),
        ])?;
        client.exec(&["ip", "link", "set", "veth1", "up"])?;
        let dir = tempfile::tempdir()?;
        let leases = dir.path().join("dnsmasq.leases");
        let mut cmd = server.command("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--interface=veth0",
            "--bind-interfaces",
            "--port=0",
            "--no-ping",
            "--dhcp-range=192.0.2.100,192.0.2.150,2m",
            "--log-dhcp",
        ])
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("dnsmasq.log"))?);
        let dnsmasq = ChildGuard::spawn("dnsmasq", &mut cmd)?;
        std::fs::write(
            dir.path().join("dhclient.conf"),
            "timeout 4;\ninitial-interval 1;\n",
        )?;
        Ok(Lab {
            server,
            client,
            dir,
            _dnsmasq: dnsmasq,
        })
    }

    /// Runs one dhclient attempt; true if it got a lease within `limit`.
    /// `-sf /bin/true`: never let dhclient-script touch the host's
    /// resolv.conf (the namespaces share the host's filesystem).
    fn try_lease(&self, limit: Duration) -> anyhow::Result<bool> {
        let lf = self.dir.path().join("dhclient.leases");
        let _ = std::fs::remove_file(&lf);
        let mut cmd = self.client.command("dhclient");
        cmd.args(["-1", "-d", "-v", "-sf", "/bin/true"])
            .arg("-cf")
            .arg(self.dir.path().join("dhclient.conf"))
            .arg("-lf")
            .arg(&lf)
            .arg("-pf")
            .arg(self.dir.path().join("dhclient.pid"))
            .arg("veth1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut dhclient = ChildGuard::spawn("dhclient", &mut cmd)?;
        let deadline = Instant::now() + limit;
        loop {
            let leased = std::fs::read_to_string(&lf).is_ok_and(|t| t.contains("fixed-address"));
            if leased {
                return Ok(true);
            }
            if !dhclient.alive() || Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Packets counted by the rule that matches the set.
    fn set_rule_packets(&self) -> anyhow::Result<u64> {
        let table = self
            .server
            .nft_table()?
            .ok_or_else(|| anyhow::anyhow!("no table"))?;
        let items = table["nftables"].as_array().cloned().unwrap_or_default();
        let mut total = 0;
        for rule in items.iter().filter_map(|i| i.get("rule")) {
            let exprs = rule["expr"].as_array().cloned().unwrap_or_default();
            let has_set = exprs
                .iter()
                .any(|e| e["match"]["right"].as_str().is_some_and(|r| r.starts_with('@')));
            if has_set {
                total += exprs
                    .iter()
                    .filter_map(|e| e["counter"]["packets"].as_u64())
                    .sum::<u64>();
            }
        }
        Ok(total)
    }
}

#[tokio::test]
async fn denied_mac_gets_no_lease_and_allowed_mac_does() -> anyhow::Result<()> {
    if !privileged_available("dhcp_packets")? {
        return Ok(());
    }
    let lab = Lab::new()?;
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
