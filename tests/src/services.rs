//! The real services `scripts/test.sh` starts once per run and the daemon
//! binary without a firewall, for the tests that talk to them over HTTP
//! only (python clients, the differential test against ironic-inspector).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::stack::eventually;
use crate::{ChildGuard, binary, privileged_required, skipped, unprivileged};

/// The value of `var`, or `None` to skip (with a message); an error when
/// skipping is not allowed (`DISCOVERD_REQUIRE_PRIVILEGED=1`).
pub fn required_env(test: &str, var: &str, what: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ if privileged_required() => anyhow::bail!(
            "{test}: {var} is not set ({what}; scripts/test.sh sets it) and DISCOVERD_REQUIRE_PRIVILEGED=1"
        ),
        _ => {
            skipped(
                test,
                &format!("{var} is not set: {what} (run through scripts/test.sh)"),
            );
            Ok(None)
        }
    }
}

/// The real Ironic's URL (`DISCOVERD_TEST_IRONIC_URL`), or `None` to skip.
pub fn ironic_url(test: &str) -> anyhow::Result<Option<String>> {
    required_env(test, "DISCOVERD_TEST_IRONIC_URL", "no real Ironic")
}

/// The real Ironic's URL for a test that also needs root (namespaces,
/// the helper): `None` to skip when either is missing, an error when
/// skipping is not allowed.
pub fn privileged_ironic_url(test: &str) -> anyhow::Result<Option<String>> {
    if !crate::privileged_available(test)? {
        return Ok(None);
    }
    ironic_url(test)
}

/// Per-run unique MAC and BMC prefixes (`tag` keeps tests apart), so
/// parallel tests and reruns against the same Ironic never collide.
pub fn unique_prefixes(tag: u8) -> (String, String) {
    let p = std::process::id();
    (
        format!("52:{tag:02x}:{:02x}:{:02x}", (p >> 8) & 0xff, p & 0xff),
        format!("198.51.{}.{}", tag, p % 200),
    )
}

/// The real ironic-inspector 12.5's URL (`DISCOVERD_TEST_INSPECTOR_URL`),
/// on the same Ironic, or `None` to skip.
pub fn inspector_url(test: &str) -> anyhow::Result<Option<String>> {
    required_env(test, "DISCOVERD_TEST_INSPECTOR_URL", "no real ironic-inspector")
}

/// The `openstack` command of the clients venv (`scripts/pyenv.sh
/// clients`): `DISCOVERD_TEST_OPENSTACK`, else the venv's default place;
/// `None` to skip.
pub fn openstack_cli(test: &str) -> anyhow::Result<Option<PathBuf>> {
    if let Ok(p) = std::env::var("DISCOVERD_TEST_OPENSTACK")
        && !p.is_empty()
    {
        return Ok(Some(PathBuf::from(p)));
    }
    let root = std::env::var("DISCOVERD_PYENV_DIR").unwrap_or_else(|_| "/opt/ironic-discoverd-dev".into());
    let default = PathBuf::from(root).join("clients-venv/bin/openstack");
    if default.exists() {
        return Ok(Some(default));
    }
    let what = format!(
        "no python-openstackclient ({} is missing; scripts/pyenv.sh clients makes it)",
        default.display()
    );
    if privileged_required() {
        anyhow::bail!("{test}: {what} and DISCOVERD_REQUIRE_PRIVILEGED=1");
    }
    skipped(test, &what);
    Ok(None)
}

/// The daemon binary on loopback, noauth, no firewall (`manage_firewall =
/// false`), its own SQLite file in a temporary directory; killed on drop.
#[derive(Debug)]
pub struct PlainDaemon {
    pub dir: tempfile::TempDir,
    pub url: String,
    _child: ChildGuard,
}

impl PlainDaemon {
    /// Starts it against `ironic_url` with the `[discoverd]` lines in
    /// `extra` and waits until it answers `GET /`.
    pub async fn start(ironic_url: &str, extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.path().join("discoverd.conf");
        std::fs::write(
            &conf,
            format!(
                "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {ironic_url}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\nironic_retry_period = 0.2\n{extra}\n",
                dir.path().join("discoverd.sqlite").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("daemon.log"))?;
        let mut cmd = Command::new(binary("ironic-discoverd")?);
        unprivileged(&mut cmd, &[dir.path()])?;
        cmd.arg("--config-file")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log);
        let child = ChildGuard::spawn("ironic-discoverd", &mut cmd)?;
        let d = PlainDaemon {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
        };
        let http = reqwest::Client::new();
        eventually("the daemon to answer", Duration::from_secs(30), async || {
            Ok(http
                .get(&d.url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success()))
        })
        .await
        .with_context(|| d.log())?;
        Ok(d)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}
