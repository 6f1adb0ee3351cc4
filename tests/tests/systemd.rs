//! The binaries started with the environment systemd gives them. systemd
//! is not booted anywhere (it is not PID 1 here, and booting it over the
//! host filesystem would wipe the host's /tmp): the binaries get
//! `NOTIFY_SOCKET`, `LISTEN_FDS` (via systemd-socket-activate) and the
//! units' user, capabilities and no_new_privs (via setpriv). The unit
//! files themselves are checked offline in `systemd_units.rs`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::protocol::{ReplyBody, RequestBody};
use common::{FilterMode, FilterState, InterfaceName, MacAddr};
use ironic_discoverd_e2e::stack::{Stack, eventually};
use ironic_discoverd_e2e::{ChildGuard, Netns, binary, privileged_available, proc_status_field};
use test_support::FakeIronic;

fn notify_socket(dir: &Path) -> anyhow::Result<(UnixDatagram, String)> {
    let path = dir.join("notify.sock");
    let rx = UnixDatagram::bind(&path)?;
    // The daemon runs as another user and must be able to send.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    rx.set_nonblocking(true)?;
    Ok((rx, path.display().to_string()))
}

fn messages(rx: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = rx.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_is_ready_only_after_the_first_firewall_sync_and_says_stopping() -> anyhow::Result<()> {
    if !privileged_available("systemd_notify")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    fake.add_node("0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01", "192.0.2.11");
    fake.add_port("0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01", "52:54:00:0a:00:01");
    let ns = Netns::new("notify")?;
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let mut stack = Stack::new(&fake.url(), &ns, "br-notify", Stack::DENY_OPEN)?;
    let (rx, path) = notify_socket(stack.dir.path())?;
    // The order, proven: with the helper down the daemon comes up, serves
    // HTTP and says it waits for the sync, but sends no READY; READY comes
    // only once the helper is back and the filter is in the kernel.
    stack.kill_helper();
    let mut daemon =
        stack.daemon_with_env(&[("NOTIFY_SOCKET", path), ("WATCHDOG_USEC", "2000000".into())])?;
    let mut seen = Vec::new();
    eventually(
        "the daemon serving without its helper",
        Duration::from_secs(20),
        async || {
            seen.extend(messages(&rx));
            let up = stack
                .http
                .get(stack.url("/"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            Ok((up
                && seen
                    .iter()
                    .any(|m| m.contains("STATUS=waiting for the first firewall sync")))
            .then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; got {seen:?}\n{}", stack.log()))?;
    // Several of the daemon's reconnect attempts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    seen.extend(messages(&rx));
    assert!(
        !seen.iter().any(|m| m.starts_with("READY=1")),
        "READY before any firewall sync: {seen:?}"
    );
    assert!(
        ns.nft_set_macs()?.unwrap_or_default().is_empty(),
        "no filter yet without the helper"
    );
    stack.start_helper(&ns)?;
    eventually("READY=1", Duration::from_secs(20), async || {
        seen.extend(messages(&rx));
        Ok(seen.iter().any(|m| m.starts_with("READY=1")).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; got {seen:?}\n{}", stack.log()))?;
    // READY came after the filter was in the kernel.
    assert_eq!(ns.nft_set_macs()?, Some(vec!["52:54:00:0a:00:01".to_owned()]));
    assert!(
        seen.iter()
            .any(|m| m.contains("STATUS=waiting for the first firewall sync")),
        "{seen:?}"
    );
    eventually("a watchdog ping", Duration::from_secs(5), async || {
        seen.extend(messages(&rx));
        Ok(seen.iter().any(|m| m == "WATCHDOG=1").then_some(()))
    })
    .await?;
    let status = daemon.terminate(Duration::from_secs(10))?;
    assert!(status.success());
    seen.extend(messages(&rx));
    assert!(seen.iter().any(|m| m == "STOPPING=1"), "{seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_runs_socket_activated_with_only_ambient_net_admin() -> anyhow::Result<()> {
    if !privileged_available("systemd_socket_activation")? {
        return Ok(());
    }
    let ns = Netns::new("sockact")?;
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("fw.sock");
    let conf = dir.path().join("discoverd.conf");
    // socket_path points elsewhere: the inherited socket must win.
    std::fs::write(
        &conf,
        format!(
            "[fw_helper]\nsocket_path = {}\nallowed_uid = 0\ninterfaces = br-sa\n",
            dir.path().join("unused.sock").display()
        ),
    )?;
    // What the units do: systemd listens; the service runs as its own
    // user with CAP_NET_ADMIN as its only (ambient) capability.
    let mut cmd = ns.command("systemd-socket-activate");
    cmd.arg("-l")
        .arg(&sock)
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+net_admin",
            "--ambient-caps=-all,+net_admin",
            "--bounding-set=-all,+net_admin",
            "--no-new-privs",
        ])
        .arg(binary("ironic-discoverd-fw-helper")?)
        .arg("--config-file")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("helper.log"))?);
    let _activator = ChildGuard::spawn("systemd-socket-activate", &mut cmd)?;
    // The file appears at bind(), before listen(): until then a connect
    // is refused, so wait for one that is accepted.
    let (mut client, hello) = eventually("the activation socket", Duration::from_secs(10), async || {
        Ok(fw_helper_client(&sock).await.ok())
    })
    .await?;
    assert!(matches!(hello, ReplyBody::Hello { .. }), "{hello:?}");
    let state = FilterState {
        interfaces: vec![InterfaceName::new("br-sa")?],
        mode: FilterMode::Deny,
        macs: vec![MacAddr::parse("52:54:00:5a:00:01")?],
    };
    let reply = client.call(RequestBody::Sync(state)).await?;
    assert!(
        matches!(reply, ReplyBody::Applied(_)),
        "{reply:?}\n{}",
        std::fs::read_to_string(dir.path().join("helper.log"))?
    );
    assert_eq!(ns.nft_set_macs()?, Some(vec!["52:54:00:5a:00:01".to_owned()]));
    assert!(
        !dir.path().join("unused.sock").exists(),
        "the helper bound its own socket instead of the inherited one"
    );
    // The helper's credentials, found by name among the namespace's processes.
    let pid = helper_pid(&conf)?;
    assert_eq!(proc_status_field(pid, "CapEff")?, "0000000000001000");
    assert_eq!(proc_status_field(pid, "CapAmb")?, "0000000000001000");
    assert_eq!(proc_status_field(pid, "NoNewPrivs")?, "1");
    Ok(())
}

/// A protocol client (the daemon's side) for the test above.
struct HelperClient {
    stream: tokio::net::UnixStream,
    id: u64,
}

impl HelperClient {
    async fn call(&mut self, body: RequestBody) -> anyhow::Result<ReplyBody> {
        self.id += 1;
        common::protocol::io::write_frame(&mut self.stream, &common::protocol::Request { id: self.id, body })
            .await?;
        let reply: common::protocol::Reply = common::protocol::io::read_frame(&mut self.stream)
            .await?
            .ok_or_else(|| anyhow::anyhow!("closed"))?;
        Ok(reply.body)
    }
}

async fn fw_helper_client(sock: &Path) -> anyhow::Result<(HelperClient, ReplyBody)> {
    let stream = tokio::net::UnixStream::connect(sock).await?;
    let mut c = HelperClient { stream, id: 0 };
    let hello = c
        .call(RequestBody::Hello {
            version: common::protocol::PROTOCOL_VERSION,
        })
        .await?;
    Ok((c, hello))
}

/// The helper process started with `conf` (a unique temp path).
fn helper_pid(conf: &Path) -> anyhow::Result<u32> {
    let conf = conf.display().to_string();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
                .into_owned();
        let is_helper = cmdline
            .split('\0')
            .next()
            .is_some_and(|exe| exe.ends_with("ironic-discoverd-fw-helper"));
        if is_helper && cmdline.contains(&conf) {
            return Ok(pid);
        }
    }
    anyhow::bail!("helper process not found")
}
