//! What gets installed next to the binaries: the systemd units (verified
//! and scored offline by `systemd-analyze`, never by booting systemd),
//! the sysusers.d/tmpfiles.d files (applied to a temporary root), the man
//! pages (rendered with warnings on) and `make install-files`.
//!
//! None of this needs the binaries: ExecStart= points at stubs inside a
//! temporary root. A missing tool skips its test, except under
//! `DISCOVERD_REQUIRE_PRIVILEGED=1`, where it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ironic_discoverd_e2e::privileged_required;

const DAEMON: &str = "ironic-discoverd.service";
const HELPER: &str = "ironic-discoverd-fw-helper.service";
const SOCKET: &str = "ironic-discoverd-fw-helper.socket";
const DAEMON_MAX_EXPOSURE: f64 = 1.5;
const HELPER_MAX_EXPOSURE: f64 = 2.0;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn units_dir() -> PathBuf {
    repo().join("systemd")
}

/// Whether `tool --version`-like `probe` runs; a missing tool is an error
/// when the suite is required to run everything.
fn have(tool: &str, probe: &[&str]) -> anyhow::Result<bool> {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if privileged_required() {
            anyhow::bail!("{tool} is missing and DISCOVERD_REQUIRE_PRIVILEGED=1");
        }
        ironic_discoverd_e2e::skipped("systemd_units", &format!("{tool} is not installed"));
    }
    Ok(ok)
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output()
        .map_err(|e| anyhow::anyhow!("failed to run {cmd:?}: {e}"))
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A root for `systemd-analyze --root`: the shipped units, stub binaries
/// where ExecStart= points, and the host's targets and slices the units
/// depend on (sysinit.target and friends).
fn analyze_root() -> anyhow::Result<tempfile::TempDir> {
    let root = tempfile::tempdir()?;
    let system = root.path().join("usr/lib/systemd/system");
    std::fs::create_dir_all(&system)?;
    for bin in ["ironic-discoverd", "ironic-discoverd-fw-helper"] {
        write_executable(&root.path().join("usr/bin").join(bin), "#!/bin/sh\n")?;
    }
    for unit in [DAEMON, HELPER, SOCKET] {
        std::fs::copy(units_dir().join(unit), system.join(unit))?;
    }
    for entry in std::fs::read_dir("/usr/lib/systemd/system")? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if (name.ends_with(".target") || name.ends_with(".slice")) && path.is_file() {
            std::fs::copy(&path, system.join(name))?;
        }
    }
    Ok(root)
}

/// `systemd-analyze verify`: success and nothing on stderr (unknown keys
/// and bad values are only warnings, with exit status 0).
fn verify(root: &Path, unit: &str) -> anyhow::Result<Result<(), String>> {
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg(unit))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    Ok(if out.status.success() && err.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{unit}: {}: {err}", out.status))
    })
}

/// The "Overall exposure level" of `unit` (a name under `root`, or a path).
fn exposure(root: &Path, unit: &str) -> anyhow::Result<f64> {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(format!("--root={}", root.display()))
        .arg(unit))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .ok_or_else(|| anyhow::anyhow!("no exposure level for {unit} in:\n{text}"))?;
    line.split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("cannot read the score in {line:?}"))
}

/// `--threshold` is in tenths: the command fails above it.
fn within_threshold(root: &Path, unit: &str, max: f64) -> anyhow::Result<bool> {
    let tenths = format!("--threshold={}", (max * 10.0).round());
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", &tenths])
        .arg(format!("--root={}", root.display()))
        .arg(unit))?;
    Ok(out.status.success())
}

#[test]
fn units_verify_cleanly_offline() -> anyhow::Result<()> {
    if !have("systemd-analyze", &["--version"])? {
        return Ok(());
    }
    let root = analyze_root()?;
    for unit in [DAEMON, HELPER, SOCKET] {
        if let Err(e) = verify(root.path(), unit)? {
            anyhow::bail!("verify failed: {e}");
        }
    }
    Ok(())
}

#[test]
fn verification_catches_a_typo_and_a_missing_binary() -> anyhow::Result<()> {
    if !have("systemd-analyze", &["--version"])? {
        return Ok(());
    }
    let root = analyze_root()?;
    let system = root.path().join("usr/lib/systemd/system");
    let text = std::fs::read_to_string(system.join(DAEMON))?;
    std::fs::write(
        system.join(DAEMON),
        text.replace("ProtectHome=yes", "ProtectHom=yes"),
    )?;
    assert!(verify(root.path(), DAEMON)?.is_err(), "a typo went unnoticed");
    std::fs::remove_file(root.path().join("usr/bin/ironic-discoverd-fw-helper"))?;
    assert!(
        verify(root.path(), HELPER)?.is_err(),
        "a missing ExecStart binary went unnoticed"
    );
    Ok(())
}

#[test]
fn units_meet_their_exposure_targets() -> anyhow::Result<()> {
    if !have("systemd-analyze", &["--version"])? {
        return Ok(());
    }
    let root = analyze_root()?;
    let daemon = exposure(root.path(), DAEMON)?;
    let helper = exposure(root.path(), HELPER)?;
    // What ironic-discoverd 1.0 shipped amounts to: ExecStart, as root.
    let plain = root.path().join("usr/lib/systemd/system/plain.service");
    std::fs::write(
        &plain,
        "[Service]\nExecStart=/usr/bin/ironic-discoverd --config-file /etc/ironic-discoverd/discoverd.conf\n",
    )?;
    let unhardened = exposure(root.path(), "plain.service")?;
    println!("exposure: daemon {daemon}, helper {helper}, 1.0-style {unhardened}");
    assert!(
        daemon <= DAEMON_MAX_EXPOSURE,
        "{DAEMON} exposure {daemon} > {DAEMON_MAX_EXPOSURE}"
    );
    assert!(
        helper <= HELPER_MAX_EXPOSURE,
        "{HELPER} exposure {helper} > {HELPER_MAX_EXPOSURE}"
    );
    // systemd-analyze's own verdict agrees with the parsed numbers, and
    // the parser sees a bad unit as bad.
    assert!(within_threshold(root.path(), DAEMON, DAEMON_MAX_EXPOSURE)?);
    assert!(within_threshold(root.path(), HELPER, HELPER_MAX_EXPOSURE)?);
    assert!(unhardened > 9.0, "1.0-style unit scored {unhardened}");
    assert!(!within_threshold(
        root.path(),
        "plain.service",
        HELPER_MAX_EXPOSURE
    )?);
    Ok(())
}

/// `key=value` settings of one unit file, in order (comments skipped).
fn settings(unit: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(units_dir().join(unit))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

fn setting(all: &[(String, String)], key: &str) -> Option<String> {
    all.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The promises other parts rely on, which a plain edit could break
/// without systemd-analyze noticing.
#[test]
fn units_agree_with_each_other_and_with_the_configuration() -> anyhow::Result<()> {
    let daemon = settings(DAEMON)?;
    let helper = settings(HELPER)?;
    let socket = settings(SOCKET)?;
    let get = |all: &[(String, String)], k: &str| setting(all, k).unwrap_or_default();
    // Ready and watchdog protocol (discoverd::notify).
    assert_eq!(get(&daemon, "Type"), "notify");
    assert_eq!(get(&daemon, "NotifyAccess"), "main");
    assert!(!get(&daemon, "WatchdogSec").is_empty());
    // No privilege in the daemon, exactly CAP_NET_ADMIN in the helper.
    assert_eq!(get(&daemon, "CapabilityBoundingSet"), "");
    assert_eq!(get(&daemon, "AmbientCapabilities"), "");
    assert_eq!(get(&helper, "CapabilityBoundingSet"), "CAP_NET_ADMIN");
    assert_eq!(get(&helper, "AmbientCapabilities"), "CAP_NET_ADMIN");
    for unit in [&daemon, &helper] {
        assert_eq!(get(unit, "NoNewPrivileges"), "yes");
    }
    // The helper must stay in the host's network namespace.
    assert_eq!(get(&helper, "PrivateNetwork"), "no");
    assert_eq!(get(&helper, "RestrictAddressFamilies"), "AF_UNIX AF_NETLINK");
    // Only the daemon's group can open the socket, and the helper can read
    // the configuration through that group.
    assert_eq!(get(&socket, "SocketGroup"), get(&daemon, "Group"));
    assert_eq!(get(&socket, "SocketMode"), "0660");
    assert_eq!(get(&helper, "SupplementaryGroups"), get(&daemon, "Group"));
    assert_ne!(get(&helper, "User"), get(&daemon, "User"));
    // The socket is where both sides look by default.
    let example = std::fs::read_to_string(repo().join("example.conf"))?;
    let listen = get(&socket, "ListenStream");
    assert!(
        example.contains(&format!("#firewall_helper_socket = {listen}\n")),
        "example.conf's firewall_helper_socket differs from {listen}"
    );
    assert!(
        example.contains(&format!("#socket_path = {listen}\n")),
        "example.conf's [fw_helper] socket_path differs from {listen}"
    );
    for unit in [&daemon, &helper] {
        assert!(
            get(unit, "ExecStart").ends_with(" --config-file /etc/ironic-discoverd/discoverd.conf"),
            "{unit:?}"
        );
    }
    Ok(())
}

/// sysusers.d and tmpfiles.d applied to a temporary root create the users
/// the units name and give the configuration to the daemon's group.
#[test]
fn sysusers_and_tmpfiles_create_what_the_units_need() -> anyhow::Result<()> {
    if !have("systemd-sysusers", &["--version"])? || !have("systemd-tmpfiles", &["--version"])? {
        return Ok(());
    }
    let root = tempfile::tempdir()?;
    let conf_dir = root.path().join("etc/ironic-discoverd");
    std::fs::create_dir_all(&conf_dir)?;
    let out = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(units_dir().join("sysusers.d/ironic-discoverd.conf")))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd"))?;
    let group = std::fs::read_to_string(root.path().join("etc/group"))?;
    let entry = |file: &str, name: &str| {
        file.lines()
            .find(|l| l.split(':').next() == Some(name))
            .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
    };
    for unit in [DAEMON, HELPER] {
        let user = setting(&settings(unit)?, "User").unwrap_or_default();
        assert!(entry(&passwd, &user).is_some(), "no user {user:?} for {unit}");
    }
    let daemon_group = setting(&settings(DAEMON)?, "Group").unwrap_or_default();
    let gid = entry(&group, &daemon_group)
        .and_then(|g| g.get(2).and_then(|n| n.parse::<u32>().ok()))
        .ok_or_else(|| anyhow::anyhow!("no group {daemon_group:?}"))?;
    // tmpfiles: the socket directory, and the configuration's mode/group.
    std::fs::write(conf_dir.join("discoverd.conf"), "[discoverd]\n")?;
    std::fs::set_permissions(
        conf_dir.join("discoverd.conf"),
        std::fs::Permissions::from_mode(0o644),
    )?;
    let out = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(units_dir().join("tmpfiles.d/ironic-discoverd.conf")))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(root.path().join("run/ironic-discoverd").is_dir());
    let meta = std::fs::metadata(conf_dir.join("discoverd.conf"))?;
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o640);
    // Changing the group needs root; as another user only the mode is checked.
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(meta.gid(), gid);
    }
    Ok(())
}

/// Renders `page` with groff warnings on; returns the warnings.
fn man_warnings(page: &Path) -> anyhow::Result<String> {
    let out = run(Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0"))?;
    anyhow::ensure!(
        out.status.success(),
        "man failed on {}: {}",
        page.display(),
        out.status
    );
    anyhow::ensure!(!out.stdout.is_empty(), "{} rendered to nothing", page.display());
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

const MAN_PAGES: [&str; 3] = [
    "ironic-discoverd.8",
    "ironic-discoverd-fw-helper.8",
    "discoverd.conf.5",
];

#[test]
fn man_pages_render_without_warnings() -> anyhow::Result<()> {
    if !have("man", &["--version"])? {
        return Ok(());
    }
    for page in MAN_PAGES {
        let warnings = man_warnings(&repo().join("man").join(page))?;
        assert!(warnings.trim().is_empty(), "{page}:\n{warnings}");
    }
    // The check sees a broken page as broken.
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.8");
    std::fs::write(&bad, ".TH BAD 8\n.SH NAME\nbad \\- page\n.XX undefined macro\n")?;
    assert!(!man_warnings(&bad)?.trim().is_empty());
    Ok(())
}

/// Every `[discoverd]` and `[fw_helper]` option of example.conf is
/// documented in discoverd.conf(5), and nothing else is.
#[test]
fn configuration_page_documents_every_option() -> anyhow::Result<()> {
    let example = std::fs::read_to_string(repo().join("example.conf"))?;
    let options: std::collections::BTreeSet<String> = example
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once(" ="))
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .collect();
    assert!(options.len() > 40, "parsed only {options:?}");
    let page = std::fs::read_to_string(repo().join("man/discoverd.conf.5"))?;
    let documented: std::collections::BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix(".BI ").or_else(|| l.strip_prefix(".BR ")))
        .flat_map(|l| {
            l.split([' ', ','])
                .map(|w| w.trim_matches('"').to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|w| options.contains(w))
        .collect();
    let missing: Vec<_> = options.difference(&documented).collect();
    assert!(missing.is_empty(), "not in discoverd.conf(5): {missing:?}");
    Ok(())
}

/// `make install-files` with stub binaries: the tree a package would ship.
#[test]
fn make_install_lays_out_the_tree_and_keeps_an_existing_config() -> anyhow::Result<()> {
    if !have("make", &["--version"])? || !have("gzip", &["--version"])? {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let bins = tmp.path().join("bin");
    write_executable(&bins.join("ironic-discoverd"), "#!/bin/sh\n")?;
    // The client prints its own man page; the helper was "not built".
    write_executable(
        &bins.join("ironic-discoverd-client"),
        "#!/bin/sh\n[ \"$1\" = man ] && printf '.TH IRONIC-DISCOVERD-CLIENT 1\\n'\n",
    )?;
    let dest = tmp.path().join("root");
    let install = |extra: &[&str]| -> anyhow::Result<Output> {
        let out = run(Command::new("make")
            .arg("-C")
            .arg(repo())
            .arg("--no-print-directory")
            .arg("install-files")
            .arg(format!("DESTDIR={}", dest.display()))
            .arg(format!("BINDIR_SRC={}", bins.display()))
            .args(extra))?;
        anyhow::ensure!(
            out.status.success(),
            "make install-files failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };
    let out = install(&["PREFIX=/usr"])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("skipping ironic-discoverd-fw-helper"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mode = |p: &str| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(dest.join(p))
            .map_err(|e| anyhow::anyhow!("{p}: {e}"))?
            .permissions()
            .mode()
            & 0o777)
    };
    assert_eq!(mode("usr/bin/ironic-discoverd")?, 0o755);
    assert_eq!(mode("usr/bin/ironic-discoverd-client")?, 0o755);
    assert!(!dest.join("usr/bin/ironic-discoverd-fw-helper").exists());
    for unit in [DAEMON, HELPER, SOCKET] {
        let installed = std::fs::read_to_string(dest.join("usr/lib/systemd/system").join(unit))?;
        assert_eq!(
            installed,
            std::fs::read_to_string(units_dir().join(unit))?,
            "{unit}"
        );
    }
    assert_eq!(mode("usr/lib/sysusers.d/ironic-discoverd.conf")?, 0o644);
    assert_eq!(mode("usr/lib/tmpfiles.d/ironic-discoverd.conf")?, 0o644);
    assert_eq!(mode("etc/ironic-discoverd/discoverd.conf")?, 0o640);
    assert_eq!(
        std::fs::read(dest.join("etc/ironic-discoverd/discoverd.conf"))?,
        std::fs::read(repo().join("example.conf"))?
    );
    for page in [
        "man5/discoverd.conf.5.gz",
        "man8/ironic-discoverd.8.gz",
        "man8/ironic-discoverd-fw-helper.8.gz",
        "man1/ironic-discoverd-client.1.gz",
    ] {
        let gz = dest.join("usr/share/man").join(page);
        let out = run(Command::new("gzip").arg("-t").arg(&gz))?;
        assert!(out.status.success(), "{page} is not gzip");
    }
    // A second install keeps the operator's file and puts the example next to it.
    std::fs::write(
        dest.join("etc/ironic-discoverd/discoverd.conf"),
        "[discoverd]\nmine\n",
    )?;
    install(&[])?;
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/ironic-discoverd/discoverd.conf"))?,
        "[discoverd]\nmine\n"
    );
    assert!(dest.join("etc/ironic-discoverd/discoverd.conf.example").is_file());
    // Another prefix: the units follow the binaries.
    let local = tmp.path().join("local");
    let out = run(Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("install-files")
        .arg(format!("DESTDIR={}", local.display()))
        .arg(format!("BINDIR_SRC={}", bins.display()))
        .arg("PREFIX=/opt/discoverd"))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = std::fs::read_to_string(local.join("opt/discoverd/lib/systemd/system").join(DAEMON))?;
    assert!(
        unit.contains("ExecStart=/opt/discoverd/bin/ironic-discoverd --config-file"),
        "{unit}"
    );
    // uninstall removes what install put there, but not the operator's config.
    let out = run(Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("uninstall")
        .arg(format!("DESTDIR={}", dest.display())))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dest.join("usr/bin/ironic-discoverd").exists());
    assert!(!dest.join("usr/lib/systemd/system").join(DAEMON).exists());
    assert!(!dest.join("usr/share/man/man8/ironic-discoverd.8.gz").exists());
    assert!(dest.join("etc/ironic-discoverd/discoverd.conf").is_file());
    Ok(())
}
