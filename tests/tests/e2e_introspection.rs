//! The real daemon (unprivileged, no capabilities) and the real helper
//! (in a private network namespace) against the in-process fake Ironic: a
//! whole introspection with a 1.0 ramdisk payload, the kernel filter read
//! back before, during and after, and a SIGKILL of the daemon in the middle.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use discoverd::testing::FakeIronic;
use ironic_discoverd_e2e::{ChildGuard, Netns, binary, privileged_available, proc_status_field};
use serde_json::{Value, json};

/// The daemon's uid/gid: no passwd entry needed for setpriv.
const DAEMON_ID: u32 = 64050;
const NODE_A: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01";
const NODE_B: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a02";
const NODE_C: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a03";
const MAC_A: &str = "52:54:00:0a:00:01";
const MAC_B: &str = "52:54:00:0b:00:01";
const MAC_C: &str = "52:54:00:0c:00:01";

struct Rig {
    dir: tempfile::TempDir,
    ns: Netns,
    conf: PathBuf,
    port: u16,
    _helper: ChildGuard,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Rig {
    fn new(fake: &FakeIronic) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let db = dir.path().join("db");
        std::fs::create_dir(&db)?;
        nix::unistd::chown(
            &db,
            Some(nix::unistd::Uid::from_raw(DAEMON_ID)),
            Some(nix::unistd::Gid::from_raw(DAEMON_ID)),
        )?;
        let port = free_port()?;
        let conf = dir.path().join("discoverd.conf");
        std::fs::write(
            &conf,
            format!(
                "[discoverd]\ndatabase = {db}/discoverd.sqlite\nauth_strategy = noauth\nironic_url = {url}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\ndnsmasq_interface = br-e2e\n\
firewall_helper_socket = {sock}\nfirewall_update_period = 1\nironic_retry_period = 0.2\n\
processing_hooks = ramdisk_error,scheduler,validate_interfaces\n\
[fw_helper]\nsocket_path = {sock}\nsocket_group = {DAEMON_ID}\nallowed_uid = {DAEMON_ID}\nuser = nobody\ninterfaces = br-e2e\n",
                db = db.display(),
                url = fake.url(),
                sock = dir.path().join("fw.sock").display(),
            ),
        )?;
        let ns = Netns::new("e2e")?;
        let mut cmd = ns.command(binary("ironic-discoverd-fw-helper")?);
        cmd.arg("--config-file").arg(&conf).stdout(Stdio::null());
        let helper = ChildGuard::spawn("fw-helper", &mut cmd)?;
        Ok(Rig {
            dir,
            ns,
            conf,
            port,
            _helper: helper,
        })
    }

    /// Starts the daemon as an unprivileged user with no capabilities.
    fn daemon(&self) -> anyhow::Result<ChildGuard> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))?;
        let mut cmd = Command::new("setpriv");
        cmd.args([
            format!("--reuid={DAEMON_ID}"),
            format!("--regid={DAEMON_ID}"),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
            "--bounding-set=-all".into(),
            "--no-new-privs".into(),
        ])
        .arg(binary("ironic-discoverd")?)
        .arg("--config-file")
        .arg(&self.conf)
        .stdout(Stdio::null())
        .stderr(log);
        ChildGuard::spawn("ironic-discoverd", &mut cmd)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn set(&self) -> anyhow::Result<Option<Vec<String>>> {
        self.ns.nft_set_macs()
    }
}

/// Polls `f` until it returns `Some`, up to `limit`.
async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut f: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

async fn status(http: &reqwest::Client, rig: &Rig, uuid: &str) -> anyhow::Result<(u16, Value)> {
    let r = http
        .get(rig.url(&format!("/v1/introspection/{uuid}")))
        .send()
        .await?;
    let code = r.status().as_u16();
    Ok((code, r.json().await.unwrap_or(Value::Null)))
}

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
    let rig = Rig::new(&fake)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut daemon = rig.daemon()?;
    let ready = eventually("the daemon to answer", Duration::from_secs(20), async || {
        Ok(http
            .get(rig.url("/"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success()))
    })
    .await;
    ready.map_err(|e| anyhow::anyhow!("{e}\n{}", rig.log()))?;

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
        Ok(rig.set()?.filter(|s| *s == all))
    })
    .await?;

    // During: node A's MAC is let through before its reboot.
    let r = http
        .post(rig.url(&format!("/v1/introspection/{NODE_A}")))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 202);
    let without_a = sorted(&[MAC_B, MAC_C]);
    eventually(
        "A's MAC to leave the deny set",
        Duration::from_secs(10),
        async || Ok(rig.set()?.filter(|s| *s == without_a)),
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
    http.post(rig.url(&format!("/v1/introspection/{NODE_B}")))
        .send()
        .await?;
    let only_c = sorted(&[MAC_C]);
    eventually(
        "B's MAC to leave the deny set",
        Duration::from_secs(10),
        async || Ok(rig.set()?.filter(|s| *s == only_c)),
    )
    .await?;
    daemon.kill();
    // The filter stays while the daemon is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.set()?, Some(only_c.clone()));

    let _daemon2 = rig.daemon()?;
    eventually("the restarted daemon", Duration::from_secs(20), async || {
        Ok(http
            .get(rig.url("/"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success()))
    })
    .await?;
    for uuid in [NODE_A, NODE_B] {
        let (code, st) = status(&http, &rig, uuid).await?;
        assert_eq!(code, 200, "{st}");
        assert_eq!(
            (st["finished"].clone(), st["error"].clone()),
            (json!(false), Value::Null),
            "{uuid}: {st}"
        );
    }
    // The restarted daemon's full sync computes the same set from the cache.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rig.set()?, Some(only_c.clone()));

    // After: the ramdisk reports, the node is updated and filtered again.
    let r = http
        .post(rig.url("/v1/continue"))
        .json(&payload(MAC_A, "192.0.2.11"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let st = eventually("A to finish", Duration::from_secs(20), async || {
        let (_, st) = status(&http, &rig, NODE_A).await?;
        Ok((st["finished"] == true).then_some(st))
    })
    .await?;
    assert_eq!(st["error"], Value::Null, "{st}\n{}", rig.log());
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
        async || Ok(rig.set()?.filter(|s| *s == a_back)),
    )
    .await?;

    // A clean stop: SIGTERM, exit 0; the filter stays.
    let mut d = _daemon2;
    let exit = d.terminate(Duration::from_secs(10))?;
    assert!(exit.success(), "daemon exited with {exit}\n{}", rig.log());
    assert_eq!(rig.set()?, Some(a_back));
    Ok(())
}
