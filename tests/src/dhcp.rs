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
}

impl DhcpLab {
    /// Builds the lab; the client's NIC gets `client_mac`.
    pub fn new(client_mac: &str) -> anyhow::Result<Self> {
        let server = Netns::new("dhcps")?;
        let client = Netns::new("dhcpc")?;
        server.exec(&[
            "ip",
            "link",
            "add",
            SERVER_IF,
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            client.name(),
        ])?;
        server.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", SERVER_IF])?;
        server.exec(&["ip", "link", "set", SERVER_IF, "up"])?;
        client.exec(&["ip", "link", "set", "veth1", "address", client_mac])?;
        client.exec(&["ip", "link", "set", "veth1", "up"])?;
        let dir = tempfile::tempdir()?;
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
        .arg(format!(
            "--dhcp-leasefile={}",
            dir.path().join("dnsmasq.leases").display()
        ))
        .arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("dnsmasq.log"))?);
        let dnsmasq = ChildGuard::spawn("dnsmasq", &mut cmd)?;
        std::fs::write(
            dir.path().join("dhclient.conf"),
            "timeout 4;\ninitial-interval 1;\n",
        )?;
        Ok(DhcpLab {
            server,
            client,
            dir,
            _dnsmasq: dnsmasq,
        })
    }

    /// One dhclient attempt; true if it got a lease within `limit`.
    /// `-sf /bin/true`: dhclient-script must never touch the host's
    /// resolv.conf (the namespaces share the host's filesystem).
    pub fn try_lease(&self, limit: Duration) -> anyhow::Result<bool> {
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
            if std::fs::read_to_string(&lf).is_ok_and(|t| t.contains("fixed-address")) {
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
