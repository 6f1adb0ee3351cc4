//! The dnsmasq backend with the real thing: the helper writes a
//! `dhcp-hostsdir` that a real dnsmasq (in a private namespace) reads, and
//! a real dhclient with a chosen MAC asks for a lease through a veth.
//! No kernel filter is involved: only dnsmasq's `ignore` keeps a host out.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::FilterMode;
use common::protocol::RequestBody;
use ironic_discoverd_e2e::dhcp::DhcpLab;
use support::*;

const CLIENT_MAC: u32 = 0x0606;

/// A hostsdir owned by `nobody` (the user the helper drops to) inside a
/// directory dnsmasq (which drops to its own user) can enter.
fn hostsdir() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let top = tempfile::tempdir()?;
    std::fs::set_permissions(top.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let dir = top.path().join("hosts");
    std::fs::create_dir(&dir)?;
    if nix::unistd::Uid::effective().is_root() {
        let nobody =
            nix::unistd::User::from_name("nobody")?.ok_or_else(|| anyhow::anyhow!("no user nobody"))?;
        nix::unistd::chown(&dir, Some(nobody.uid), Some(nobody.gid))?;
    }
    Ok((top, dir))
}

fn conf(dir: &Path) -> String {
    format!("backend = dnsmasq\ndnsmasq_hostsdir = {}", dir.display())
}

#[tokio::test]
async fn dnsmasq_ignores_denied_macs_and_serves_allowed_ones_in_both_modes() -> anyhow::Result<()> {
    if !privileged_available("hostsdir_packets")? {
        return Ok(());
    }
    let (_top, dir) = hostsdir()?;
    let lab = DhcpLab::with_dnsmasq_args(
        &mac(CLIENT_MAC).to_string(),
        &[format!("--dhcp-hostsdir={}", dir.display())],
    )?;
    let h = Helper::start(&lab.server, &conf(&dir))?;
    // It only writes files: no capability at all.
    for field in ["CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(proc_status_field(h.pid(), field)?, "0000000000000000", "{field}");
    }
    // Closed start: the wildcard ignores everyone until the first sync.
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a helper without state left dnsmasq serving unknown hosts"
    );
    let mut c = h.client().await?;

    // Deny mode, the client listed: dnsmasq ignores it.
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
        "a denied MAC got a lease:\n{}",
        lab.server_log()
    );
    // Removed from the deny set: its file now serves it, and dnsmasq
    // (which never forgets the earlier ",ignore") takes the newer line.
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
        lab.try_lease(Duration::from_secs(15))?,
        "a MAC removed from the deny set got no lease:\n{}",
        lab.server_log()
    );
    // Denied again: the same file flips back.
    expect_applied(
        &call(
            &mut c,
            RequestBody::Add {
                macs: vec![mac(CLIENT_MAC)],
            },
        )
        .await?,
        2,
    );
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "a MAC denied again got a lease"
    );

    // Allow mode listing another MAC: the wildcard ignores the rest.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(1)])).await?,
        1,
    );
    assert!(
        !lab.try_lease(Duration::from_secs(6))?,
        "allow mode served an unlisted MAC"
    );
    // Listed: served, although the wildcard says ignore.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, vec![mac(CLIENT_MAC)])).await?,
        1,
    );
    assert!(
        lab.try_lease(Duration::from_secs(15))?,
        "allow mode did not serve a listed MAC:\n{}",
        lab.server_log()
    );
    // Nothing was ever deleted: one file per MAC seen, plus the wildcard.
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            mac(1).to_string(),
            mac(CLIENT_MAC).to_string(),
            "unknown-hosts".into()
        ]
    );
    Ok(())
}

/// Runs the helper with `extra` config and returns its exit status and
/// stderr; it must exit on its own.
fn run_to_exit(extra: &str) -> anyhow::Result<(bool, String)> {
    let tmp = tempfile::tempdir()?;
    let conf = tmp.path().join("discoverd.conf");
    std::fs::write(
        &conf,
        format!(
            "[fw_helper]\nsocket_path = {}\nallowed_uid = 0\nuser = nobody\ninterfaces = veth0\n{extra}\n",
            tmp.path().join("fw.sock").display()
        ),
    )?;
    let err = tmp.path().join("stderr");
    let mut child = Command::new(BIN)
        .arg("--config-file")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("the helper kept running with {extra:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((status.success(), std::fs::read_to_string(&err)?))
}

#[test]
fn a_bad_hostsdir_stops_start_up_with_the_reason() -> anyhow::Result<()> {
    let (_top, dir) = hostsdir()?;
    let missing = dir.join("missing");
    let file = dir.join("02:00:00:00:00:01.conf");
    std::fs::write(&file, "")?;
    let mut cases = vec![
        (missing.clone(), "does not exist"),
        (file.clone(), "is not a directory"),
        (dir.clone(), "did not write"),
    ];
    let root_owned = tempfile::tempdir()?;
    std::fs::set_permissions(
        root_owned.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    if nix::unistd::Uid::effective().is_root() {
        // Root drops to nobody, who cannot write a root-owned directory.
        cases.push((root_owned.path().to_owned(), "is not writable"));
    }
    for (path, why) in cases {
        let (ok, stderr) = run_to_exit(&conf(&path))?;
        assert!(!ok, "started with {}", path.display());
        assert!(
            stderr.contains(why) && stderr.contains(&path.display().to_string()),
            "{}: expected {why:?} in:\n{stderr}",
            path.display()
        );
    }
    let (ok, stderr) = run_to_exit("backend = dnsmasq")?;
    assert!(!ok && stderr.contains("dnsmasq_hostsdir"), "{stderr}");
    Ok(())
}
