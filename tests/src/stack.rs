//! The real binaries together: the helper inside a given network namespace
//! and the daemon as an unprivileged user with no capabilities, sharing
//! one config file in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ChildGuard, Netns, binary};

/// The daemon's uid/gid (setpriv needs no passwd entry for it).
pub const DAEMON_ID: u32 = 64050;

#[derive(Debug)]
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub port: u16,
    pub http: reqwest::Client,
    helper: Option<ChildGuard>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Stack {
    /// Writes the config (the daemon's `[discoverd]` lines in `extra`
    /// are appended) and starts the helper in `ns`, filtering `iface`.
    /// Config lines (last in `extra`: they open `[processing]`) that
    /// turn auto-discovery on. Deny mode then always lets unknown MACs
    /// through and keeps every known, idle MAC in the deny set; without
    /// it deny mode drops all DHCP while nothing is introspected, so tests
    /// of the deny set's contents use it.
    pub const DENY_OPEN: &'static str = "\n[processing]\nnode_not_found_hook = enroll\n";

    pub fn new(ironic_url: &str, ns: &Netns, iface: &str, extra: &str) -> anyhow::Result<Self> {
        Self::with_helper_config(ironic_url, ns, iface, extra, "")
    }

    /// The same, with `helper_extra` lines in `[fw_helper]` (a backend).
    pub fn with_helper_config(
        ironic_url: &str,
        ns: &Netns,
        iface: &str,
        extra: &str,
        helper_extra: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let db = dir.path().join("db");
        std::fs::create_dir(&db)?;
        let id = Some(nix::unistd::Uid::from_raw(DAEMON_ID));
        nix::unistd::chown(&db, id, Some(nix::unistd::Gid::from_raw(DAEMON_ID)))?;
        let port = free_port()?;
        let conf = dir.path().join("discoverd.conf");
        let sock = dir.path().join("fw.sock");
        std::fs::write(
            &conf,
            format!(
                "[discoverd]\ndatabase = {db}/discoverd.sqlite\nauth_strategy = noauth\nironic_url = {ironic_url}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\ndnsmasq_interface = {iface}\n\
firewall_helper_socket = {sock}\nfirewall_update_period = 1\nironic_retry_period = 0.2\n{extra}\n\
[fw_helper]\nsocket_path = {sock}\nsocket_group = {DAEMON_ID}\nallowed_uid = {DAEMON_ID}\nuser = nobody\ninterfaces = {iface}\n{helper_extra}\n",
                db = db.display(),
                sock = sock.display(),
            ),
        )?;
        let mut stack = Stack {
            dir,
            conf,
            port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            helper: None,
        };
        stack.start_helper(ns)?;
        Ok(stack)
    }

    /// (Re)starts the helper in `ns` and waits for its socket.
    pub fn start_helper(&mut self, ns: &Netns) -> anyhow::Result<()> {
        let sock = self.dir.path().join("fw.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("helper.log"))?;
        let mut cmd = ns.command(binary("ironic-discoverd-fw-helper")?);
        cmd.arg("--config-file")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log);
        self.helper = Some(ChildGuard::spawn("fw-helper", &mut cmd)?);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if Instant::now() > deadline {
                anyhow::bail!("the helper did not create its socket");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILLs the helper.
    pub fn kill_helper(&mut self) {
        if let Some(mut h) = self.helper.take() {
            h.kill();
        }
    }

    /// Starts the daemon as uid/gid 64050, no capabilities, no_new_privs.
    pub fn daemon(&self) -> anyhow::Result<ChildGuard> {
        self.daemon_with_env(&[])
    }

    /// Like [`Stack::daemon`], with extra environment variables (systemd's).
    pub fn daemon_with_env(&self, env: &[(&str, String)]) -> anyhow::Result<ChildGuard> {
        self.spawn_daemon(Command::new("setpriv"), env)
    }

    /// Like [`Stack::daemon`], with the database directory on a tmpfs of
    /// `size` (e.g. `2m`) mounted in a mount namespace of the daemon's own:
    /// nothing outside sees it and it goes away with the daemon. Reach
    /// its files through `/proc/<pid>/root` + [`Stack::db_dir`].
    pub fn daemon_on_tmpfs(&self, size: &str) -> anyhow::Result<ChildGuard> {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size},mode=0755,uid={DAEMON_ID},gid={DAEMON_ID} discoverd-test \"$0\" && exec \"$@\""
            ))
            .arg(self.db_dir())
            .arg("setpriv");
        self.spawn_daemon(cmd, &[])
    }

    /// The directory holding the daemon's SQLite file.
    pub fn db_dir(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// `cmd` is `setpriv` or a wrapper ending in it.
    fn spawn_daemon(&self, mut cmd: Command, env: &[(&str, String)]) -> anyhow::Result<ChildGuard> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))?;
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
        for (k, v) in env {
            cmd.env(k, v);
        }
        ChildGuard::spawn("ironic-discoverd", &mut cmd)
    }

    /// Waits until the daemon answers `GET /`.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        eventually("the daemon to answer", Duration::from_secs(30), async || {
            Ok(self
                .http
                .get(self.url("/"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success()))
        })
        .await
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `POST /v1/introspection/<uuid>`; returns the status code.
    pub async fn introspect(&self, uuid: &str) -> anyhow::Result<u16> {
        Ok(self
            .http
            .post(self.url(&format!("/v1/introspection/{uuid}")))
            .send()
            .await?
            .status()
            .as_u16())
    }

    /// Starts every node in `uuids` at once; the status codes, in no order.
    pub async fn introspect_all<'a>(
        &self,
        uuids: impl IntoIterator<Item = &'a String>,
    ) -> anyhow::Result<Vec<u16>> {
        let mut starts = tokio::task::JoinSet::new();
        for uuid in uuids {
            let (http, url) = (self.http.clone(), self.url(&format!("/v1/introspection/{uuid}")));
            starts.spawn(async move { http.post(url).send().await.map(|r| r.status().as_u16()) });
        }
        let mut codes = Vec::new();
        while let Some(code) = starts.join_next().await {
            codes.push(code??);
        }
        Ok(codes)
    }

    /// `GET /v1/introspection/<uuid>`.
    pub async fn status(&self, uuid: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(self.url(&format!("/v1/introspection/{uuid}")))
            .send()
            .await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /v1/continue`.
    pub async fn post_continue(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self.http.post(self.url("/v1/continue")).json(body).send().await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    /// Waits until the node's status satisfies `f`.
    pub async fn wait_status(
        &self,
        uuid: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        eventually(&format!("status of {uuid}"), limit, async || {
            let (code, st) = self.status(uuid).await?;
            Ok((code == 200 && f(&st)).then_some(st))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log()))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut h) = self.helper.take() {
            h.kill();
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, up to `limit`.
pub async fn eventually<T>(
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
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sorted owned strings, for comparing MAC sets.
pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}
