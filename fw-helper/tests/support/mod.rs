//! A helper process in its own network namespace, and a client for it.

#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use common::protocol::{ReplyBody, RequestBody};
use common::{FilterMode, FilterState, InterfaceName, MacAddr};
use fw_helper::ctl::Client;
pub use ironic_discoverd_e2e::{ChildGuard, Netns, privileged_available, proc_status_field, wait_for};

pub const BIN: &str = env!("CARGO_BIN_EXE_ironic-discoverd-fw-helper");

/// A running helper inside `ns`, killed on drop.
pub struct Helper {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub proc: ChildGuard,
}

impl Helper {
    /// Starts the helper in `ns` as root (it drops to nobody), allowing
    /// uid 0 to connect, with `extra` config lines in `[fw_helper]`.
    pub fn start(ns: &Netns, extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("fw.sock");
        let log = dir.path().join("helper.log");
        let conf = dir.path().join("discoverd.conf");
        std::fs::write(
            &conf,
            format!(
                "[fw_helper]\nsocket_path = {}\nallowed_uid = 0\nuser = nobody\ninterfaces = veth0,br0,eth1\n{extra}\n",
                socket.display()
            ),
        )?;
        let mut cmd = ns.command(BIN);
        cmd.arg("--config-file")
            .arg(&conf)
            .env("RUST_LOG", "debug,rustables=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let proc = ChildGuard::spawn("fw-helper", &mut cmd)?;
        let h = Helper {
            dir,
            socket,
            log,
            proc,
        };
        // "serving" is logged once the start-up filter is in the kernel
        // and the socket listens (its file exists a little earlier).
        wait_for("the helper serving", Duration::from_secs(10), || {
            Ok(h.log_text().contains("serving").then_some(()))
        })
        .with_context(|| format!("helper log:\n{}", h.log_text()))?;
        Ok(h)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The helper's own pid (ip netns exec execs it, so the child is it).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        let (c, hello) = Client::connect(&self.socket)
            .await
            .with_context(|| format!("helper log:\n{}", self.log_text()))?;
        if !matches!(hello.body, ReplyBody::Hello { .. }) {
            bail!("hello refused: {hello:?}");
        }
        Ok(c)
    }
}

pub fn iface(n: &str) -> InterfaceName {
    InterfaceName::new(n).unwrap_or_else(|e| panic!("{e}"))
}

pub fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr::new([0x02, 0x10, b[0], b[1], b[2], b[3]])
}

pub fn macs(range: std::ops::Range<u32>) -> Vec<MacAddr> {
    range.map(mac).collect()
}

pub fn sync(ifaces: &[&str], mode: FilterMode, macs: Vec<MacAddr>) -> RequestBody {
    RequestBody::Sync(FilterState {
        interfaces: ifaces.iter().map(|i| iface(i)).collect(),
        mode,
        macs,
    })
}

/// Sends a request and returns the reply body, failing on transport errors.
pub async fn call(c: &mut Client, body: RequestBody) -> anyhow::Result<ReplyBody> {
    Ok(c.call(body).await.context("helper call failed")?.body)
}

/// Asserts the reply is `Applied` with `n` MACs.
pub fn expect_applied(reply: &ReplyBody, n: usize) {
    match reply {
        ReplyBody::Applied(s) => assert_eq!(s.mac_count, n, "{reply:?}"),
        other => panic!("expected applied, got {other:?}"),
    }
}

/// MAC strings as nft prints them, sorted.
pub fn strings(macs: &[MacAddr]) -> Vec<String> {
    let mut v: Vec<String> = macs.iter().map(ToString::to_string).collect();
    v.sort();
    v
}

/// The chain's rules from `nft -j`, each as its list of expression keys
/// and verdict, e.g. `["iifname=veth0", "udp dport=67", "saddr@denied", "counter", "drop"]`.
pub fn rules(ns: &Netns) -> anyhow::Result<Vec<Vec<String>>> {
    let table = ns.nft_table()?.context("table missing")?;
    let items = table["nftables"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for rule in items.iter().filter_map(|i| i.get("rule")) {
        let mut parts = Vec::new();
        for e in rule["expr"].as_array().cloned().unwrap_or_default() {
            if let Some(m) = e.get("match") {
                let left = &m["left"];
                let right = &m["right"];
                let key = if let Some(meta) = left.get("meta") {
                    meta["key"].as_str().unwrap_or("?").to_owned()
                } else if let Some(p) = left.get("payload").filter(|p| p.get("base").is_some()) {
                    format!(
                        "@{},{},{}",
                        p["base"].as_str().unwrap_or("?"),
                        p["offset"],
                        p["len"]
                    )
                } else if let Some(p) = left.get("payload") {
                    format!(
                        "{} {}",
                        p["protocol"].as_str().unwrap_or("?"),
                        p["field"].as_str().unwrap_or("?")
                    )
                } else {
                    "?".into()
                };
                let value = match right {
                    serde_json::Value::String(s) if s.starts_with('@') => format!("{key}{s}"),
                    serde_json::Value::String(s) => format!("{key}={s}"),
                    other => format!("{key}={other}"),
                };
                parts.push(value);
            } else if e.get("counter").is_some() {
                parts.push("counter".into());
            } else if e.get("drop").is_some() {
                parts.push("drop".into());
            } else if e.get("accept").is_some() {
                parts.push("accept".into());
            }
        }
        out.push(parts);
    }
    Ok(out)
}

/// Runs `iptables-save` in the namespace.
pub fn iptables_save(ns: &Netns) -> anyhow::Result<String> {
    ns.exec(&["iptables-nft-save", "-t", "filter"])
}

pub fn setpriv_ctl(uid: u32, socket: &std::path::Path) -> anyhow::Result<std::process::Output> {
    Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
        ])
        .arg(BIN)
        .args(["ctl", "--socket"])
        .arg(socket)
        .arg("status")
        .output()
        .context("failed to run setpriv")
}

/// Which DHCP a packet scenario speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcp {
    V4,
    V6,
}

impl Dhcp {
    fn lease(self, lab: &ironic_discoverd_e2e::dhcp::DhcpLab, limit: Duration) -> anyhow::Result<bool> {
        match self {
            Dhcp::V4 => lab.try_lease(limit),
            Dhcp::V6 => lab.try_lease6(limit),
        }
    }
}

/// Real DHCP from the lab's client (MAC `mac(client)`) through the helper
/// on the server's `veth0`, in both modes: nothing denied → a lease; the
/// client denied → none; allow mode with it listed → a lease; with only
/// another MAC listed → none.
pub async fn deny_and_allow_scenario(
    lab: &ironic_discoverd_e2e::dhcp::DhcpLab,
    client: u32,
    dhcp: Dhcp,
) -> anyhow::Result<()> {
    let h = Helper::start(&lab.server, "")?;
    let mut c = h.client().await?;
    let what = format!("{dhcp:?}");
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, vec![mac(1)])).await?,
        1,
    );
    anyhow::ensure!(
        dhcp.lease(lab, Duration::from_secs(15))?,
        "{what}: no lease with nothing denied:\n{}",
        lab.server_log()
    );
    expect_applied(
        &call(
            &mut c,
            sync(&["veth0"], FilterMode::Deny, vec![mac(client), mac(1)]),
        )
        .await?,
        2,
    );
    anyhow::ensure!(
        !dhcp.lease(lab, Duration::from_secs(6))?,
        "{what}: a denied MAC got a lease"
    );
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(client)])).await?,
        1,
    );
    anyhow::ensure!(
        dhcp.lease(lab, Duration::from_secs(15))?,
        "{what}: allow mode did not serve a listed MAC"
    );
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(1)])).await?,
        1,
    );
    anyhow::ensure!(
        !dhcp.lease(lab, Duration::from_secs(6))?,
        "{what}: allow mode served an unlisted MAC"
    );
    Ok(())
}
