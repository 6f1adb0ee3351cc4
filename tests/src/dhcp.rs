//! A DHCP lab: two private namespaces joined by a veth pair, a real
//! dnsmasq serving DHCP on the server side and a real dhclient with a
//! chosen MAC on the client side.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{ChildGuard, Netns};

/// The server end's interface name, as the helper must be told.
pub const SERVER_IF: &str = "veth0";

#[derive(Debug)]
pub struct DhcpLab {
    pub server: Netns,
    pub client: Netns,
    dir: tempfile::TempDir,
    _dnsmasq: ChildGuard,
    /// For [`DhcpLab::relayed`]: the relay's namespace and its dnsmasq
    /// (dropped after the client and server, in field order).
    _relay: Option<(Netns, ChildGuard)>,
}

/// `ip link add A type veth peer name B netns OTHER`, run in `ns`.
fn veth(ns: &Netns, a: &str, b: &str, other: &Netns) -> anyhow::Result<()> {
    ns.exec(&[
        "ip",
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        other.name(),
    ])?;
    Ok(())
}

/// Waits until `ifname` has a usable (not tentative) link-local address:
/// dhclient -6 and dnsmasq need one.
fn wait_link_local(ns: &Netns, ifname: &str) -> anyhow::Result<()> {
    crate::wait_for("a link-local address", Duration::from_secs(10), || {
        let out = ns.exec(&["ip", "-6", "addr", "show", "dev", ifname, "scope", "link"])?;
        Ok((out.contains("fe80") && !out.contains("tentative")).then_some(()))
    })
}

/// The server's dnsmasq on `veth0` with `args` (its ranges and extras),
/// leases, pid file and log in `dir`.
fn spawn_server(server: &Netns, dir: &std::path::Path, args: &[String]) -> anyhow::Result<ChildGuard> {
    let mut cmd = server.command("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--interface=veth0",
        "--bind-interfaces",
        "--port=0",
        "--no-ping",
        "--log-dhcp",
    ])
    .args(args)
    .arg(format!(
        "--dhcp-leasefile={}",
        dir.join("dnsmasq.leases").display()
    ))
    .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("dnsmasq.log"))?);
    ChildGuard::spawn("dnsmasq", &mut cmd)
}

/// A dnsmasq relaying between `vethr1` (clients) and `vethr0` (server):
/// `relay` is its `--dhcp-relay` value (local address, server address).
fn spawn_relay(ns: &Netns, dir: &std::path::Path, relay: &str) -> anyhow::Result<ChildGuard> {
    let mut cmd = ns.command("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--interface=vethr1",
        "--interface=vethr0",
        "--port=0",
        "--log-dhcp",
    ])
    .arg(format!("--dhcp-relay={relay}"))
    .arg(format!("--pid-file={}", dir.join("relay.pid").display()))
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("relay.log"))?);
    ChildGuard::spawn("dnsmasq relay", &mut cmd)
}

/// dhclient's configuration: quick retries, a short overall timeout.
fn write_dhclient_conf(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("dhclient.conf"), "timeout 4;\ninitial-interval 1;\n")?;
    Ok(())
}

impl DhcpLab {
    /// Builds the lab; the client's NIC gets `client_mac`.
    pub fn new(client_mac: &str) -> anyhow::Result<Self> {
        Self::with_dnsmasq_args(client_mac, &[])
    }

    /// The same, with `extra` arguments for the server's dnsmasq (e.g.
    /// `--dhcp-hostsdir=DIR`).
    pub fn with_dnsmasq_args(client_mac: &str, extra: &[String]) -> anyhow::Result<Self> {
        Self::build(client_mac, extra, false)
    }

    /// The same lab with DHCPv6 too: the server's `veth0` also has
    /// 2001:db8::1/64 and its dnsmasq a DHCPv6 range; duplicate address
    /// detection is off on both ends so that link-local addresses work at
    /// once. Use [`DhcpLab::try_lease6`].
    pub fn dual_stack(client_mac: &str) -> anyhow::Result<Self> {
        Self::build(
            client_mac,
            &["--dhcp-range=2001:db8::100,2001:db8::1ff,64,2m".to_owned()],
            true,
        )
    }

    fn build(client_mac: &str, extra: &[String], ipv6: bool) -> anyhow::Result<Self> {
        let server = Netns::new("dhcps")?;
        let client = Netns::new("dhcpc")?;
        veth(&server, SERVER_IF, "veth1", &client)?;
        server.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", SERVER_IF])?;
        if ipv6 {
            server.exec(&["sysctl", "-qw", "net.ipv6.conf.veth0.accept_dad=0"])?;
            client.exec(&["sysctl", "-qw", "net.ipv6.conf.veth1.accept_dad=0"])?;
            server.exec(&["ip", "addr", "add", "2001:db8::1/64", "dev", SERVER_IF, "nodad"])?;
        }
        server.exec(&["ip", "link", "set", SERVER_IF, "up"])?;
        client.exec(&["ip", "link", "set", "veth1", "address", client_mac])?;
        client.exec(&["ip", "link", "set", "veth1", "up"])?;
        if ipv6 {
            wait_link_local(&server, SERVER_IF)?;
            wait_link_local(&client, "veth1")?;
        }
        let dir = tempfile::tempdir()?;
        let mut args = vec!["--dhcp-range=192.0.2.100,192.0.2.150,2m".to_owned()];
        args.extend_from_slice(extra);
        let dnsmasq = spawn_server(&server, dir.path(), &args)?;
        write_dhclient_conf(dir.path())?;
        Ok(DhcpLab {
            server,
            client,
            dir,
            _dnsmasq: dnsmasq,
            _relay: None,
        })
    }

    /// The same with a DHCP relay between client and server: the client
    /// (`veth1`) sits on 198.51.100.0/24 behind a relay namespace running
    /// dnsmasq in relay mode (`--dhcp-relay`), which forwards to the
    /// server's 192.0.2.1 from 192.0.2.2 with giaddr 198.51.100.1. On the
    /// server's `veth0` the requests carry the relay's Ethernet source and
    /// the client's MAC only in the BOOTP chaddr.
    pub fn relayed(client_mac: &str) -> anyhow::Result<Self> {
        let server = Netns::new("dhcps")?;
        let relay = Netns::new("dhcpr")?;
        let client = Netns::new("dhcpc")?;
        veth(&server, SERVER_IF, "vethr0", &relay)?;
        veth(&relay, "vethr1", "veth1", &client)?;
        server.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", SERVER_IF])?;
        server.exec(&["ip", "link", "set", SERVER_IF, "up"])?;
        server.exec(&["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.2"])?;
        relay.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vethr0"])?;
        relay.exec(&["ip", "addr", "add", "198.51.100.1/24", "dev", "vethr1"])?;
        relay.exec(&["ip", "link", "set", "vethr0", "up"])?;
        relay.exec(&["ip", "link", "set", "vethr1", "up"])?;
        client.exec(&["ip", "link", "set", "veth1", "address", client_mac])?;
        client.exec(&["ip", "link", "set", "veth1", "up"])?;
        let dir = tempfile::tempdir()?;
        let range = "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,2m".to_owned();
        let dnsmasq = spawn_server(&server, dir.path(), &[range])?;
        let relay_dnsmasq = spawn_relay(&relay, dir.path(), "198.51.100.1,192.0.2.1")?;
        write_dhclient_conf(dir.path())?;
        Ok(DhcpLab {
            server,
            client,
            dir,
            _dnsmasq: dnsmasq,
            _relay: Some((relay, relay_dnsmasq)),
        })
    }

    /// DHCPv6 through a relay: the client (`veth1`, 2001:db8:1::/64) sits
    /// behind a relay namespace whose dnsmasq (`--dhcp-relay`) forwards its
    /// requests as Relay-Forward messages from 2001:db8::2 to the server's
    /// 2001:db8::1. dnsmasq's relay puts the client's MAC (RFC 6939) first
    /// when it knows it. Use [`DhcpLab::try_lease6`].
    pub fn relayed6(client_mac: &str) -> anyhow::Result<Self> {
        let server = Netns::new("dhcps")?;
        let relay = Netns::new("dhcpr")?;
        let client = Netns::new("dhcpc")?;
        veth(&server, SERVER_IF, "vethr0", &relay)?;
        veth(&relay, "vethr1", "veth1", &client)?;
        for (ns, ifname, addr) in [
            (&server, SERVER_IF, Some("2001:db8::1/64")),
            (&relay, "vethr0", Some("2001:db8::2/64")),
            (&relay, "vethr1", Some("2001:db8:1::1/64")),
            (&client, "veth1", None),
        ] {
            ns.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{ifname}.accept_dad=0")])?;
            if let Some(a) = addr {
                ns.exec(&["ip", "addr", "add", a, "dev", ifname, "nodad"])?;
            }
        }
        client.exec(&["ip", "link", "set", "veth1", "address", client_mac])?;
        for (ns, ifname) in [
            (&server, SERVER_IF),
            (&relay, "vethr0"),
            (&relay, "vethr1"),
            (&client, "veth1"),
        ] {
            ns.exec(&["ip", "link", "set", ifname, "up"])?;
        }
        for (ns, ifname) in [(&server, SERVER_IF), (&relay, "vethr1"), (&client, "veth1")] {
            wait_link_local(ns, ifname)?;
        }
        server.exec(&[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            "2001:db8::2",
        ])?;
        let dir = tempfile::tempdir()?;
        let range = "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,2m".to_owned();
        let dnsmasq = spawn_server(&server, dir.path(), &[range])?;
        let relay_dnsmasq = spawn_relay(&relay, dir.path(), "2001:db8:1::1,2001:db8::1")?;
        write_dhclient_conf(dir.path())?;
        Ok(DhcpLab {
            server,
            client,
            dir,
            _dnsmasq: dnsmasq,
            _relay: Some((relay, relay_dnsmasq)),
        })
    }

    /// The server dnsmasq's log (which shows relayed requests).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// One dhclient attempt; true if it got a lease within `limit`.
    /// `-sf /bin/true`: dhclient-script must never touch the host's
    /// resolv.conf (the namespaces share the host's filesystem).
    pub fn try_lease(&self, limit: Duration) -> anyhow::Result<bool> {
        self.try_dhclient(limit, &["-4"], "fixed-address")
    }

    /// The same with `dhclient -6` (a [`DhcpLab::dual_stack`] lab): true
    /// if it got a DHCPv6 address within `limit`.
    pub fn try_lease6(&self, limit: Duration) -> anyhow::Result<bool> {
        self.try_dhclient(limit, &["-6"], "iaaddr")
    }

    fn try_dhclient(&self, limit: Duration, family: &[&str], leased: &str) -> anyhow::Result<bool> {
        let lf = self.dir.path().join("dhclient.leases");
        let _ = std::fs::remove_file(&lf);
        let mut cmd = self.client.command("dhclient");
        cmd.args(family)
            .args(["-1", "-d", "-v", "-sf", "/bin/true"])
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
            if std::fs::read_to_string(&lf).is_ok_and(|t| t.contains(leased)) {
                return Ok(true);
            }
            if !dhclient.alive() || Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Packets counted by the rules that look up the set.
    pub fn set_rule_packets(&self) -> anyhow::Result<u64> {
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
