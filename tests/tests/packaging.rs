//! Man pages render without warnings and document every option; `make
//! install` lays out a package tree under DESTDIR.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironic_discoverd_e2e::{binary, privileged_required};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &str) -> anyhow::Result<bool> {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()?
        .status
        .success();
    if !ok && privileged_required() {
        anyhow::bail!(
            "{name} is missing (scripts/setup-system.sh installs it) and DISCOVERD_REQUIRE_PRIVILEGED=1"
        );
    }
    Ok(ok)
}

#[test]
fn man_pages_render_without_warnings() -> anyhow::Result<()> {
    if !tool("man")? {
        return Ok(());
    }
    for page in [
        "ironic-discoverd.8",
        "ironic-discoverd-fw-helper.8",
        "discoverd.conf.5",
    ] {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(repo().join("man").join(page))
            .env("MANWIDTH", "80")
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "{page}: {err}");
        assert!(out.stdout.len() > 500, "{page} rendered almost nothing");
    }
    Ok(())
}

#[test]
fn discoverd_conf_5_documents_every_option_of_example_conf() -> anyhow::Result<()> {
    let conf = std::fs::read_to_string(repo().join("example.conf"))?;
    let page = std::fs::read_to_string(repo().join("man/discoverd.conf.5"))?;
    let mut count = 0;
    for line in conf.lines() {
        let line = line.strip_prefix('#').unwrap_or(line);
        if let Some((name, _)) = line
            .split_once(" =")
            .filter(|(n, _)| !n.is_empty() && !n.contains(' '))
        {
            count += 1;
            assert!(
                page.contains(&format!(".B {name}")),
                "discoverd.conf.5 does not document {name}"
            );
        }
    }
    assert!(count > 40, "only {count} options found in example.conf");
    Ok(())
}

#[test]
fn make_install_lays_out_a_package_tree() -> anyhow::Result<()> {
    if !tool("make")? {
        return Ok(());
    }
    // The debug binaries stand in for release ones (no release build here).
    let bin = binary("ironic-discoverd")?;
    binary("ironic-discoverd-fw-helper")?;
    binary("ironic-discoverd-client")?;
    let bindir = bin.parent().ok_or_else(|| anyhow::anyhow!("no bin dir"))?;
    let dest = tempfile::tempdir()?;
    let out = Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("install")
        .arg("NO_BUILD=1")
        .arg(format!("BINDIR_SRC={}", bindir.display()))
        .arg(format!("DESTDIR={}", dest.path().display()))
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in [
        "usr/bin/ironic-discoverd",
        "usr/bin/ironic-discoverd-fw-helper",
        "usr/bin/ironic-discoverd-client",
        "usr/lib/systemd/system/ironic-discoverd.service",
        "usr/lib/systemd/system/ironic-discoverd-fw-helper.service",
        "usr/lib/systemd/system/ironic-discoverd-fw-helper.socket",
        "usr/lib/sysusers.d/ironic-discoverd.conf",
        "usr/lib/tmpfiles.d/ironic-discoverd.conf",
        "etc/ironic-discoverd/discoverd.conf",
        "usr/share/man/man8/ironic-discoverd.8.gz",
        "usr/share/man/man8/ironic-discoverd-fw-helper.8.gz",
        "usr/share/man/man5/discoverd.conf.5.gz",
        "usr/share/man/man1/ironic-discoverd-client.1.gz",
    ] {
        assert!(dest.path().join(f).is_file(), "missing {f}");
    }
    // A second install keeps the operator's configuration.
    std::fs::write(
        dest.path().join("etc/ironic-discoverd/discoverd.conf"),
        "[discoverd]\ndatabase = /x\n",
    )?;
    let again = Command::new("make")
        .arg("-C")
        .arg(repo())
        .args(["install-files", "NO_BUILD=1"])
        .arg(format!("BINDIR_SRC={}", bindir.display()))
        .arg(format!("DESTDIR={}", dest.path().display()))
        .output()?;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let kept = std::fs::read_to_string(dest.path().join("etc/ironic-discoverd/discoverd.conf"))?;
    assert_eq!(kept, "[discoverd]\ndatabase = /x\n");
    assert!(
        dest.path()
            .join("etc/ironic-discoverd/discoverd.conf.example")
            .is_file()
    );
    Ok(())
}
