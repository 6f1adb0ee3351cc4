//! Support code for the end-to-end tests in `tests/tests/`: finding the
//! real binaries, the privileged-test policy, network namespaces and child
//! processes that clean up after themselves.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod dhcp;
pub mod ironic_rest;
pub mod services;
pub mod stack;

/// True when the environment demands that privileged tests run
/// (`DISCOVERD_REQUIRE_PRIVILEGED=1`, as CI sets it).
pub fn privileged_required() -> bool {
    std::env::var("DISCOVERD_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// Checks that this process can run privileged tests (root, and able to
/// create a network namespace). Returns `Ok(false)` when the test should
/// be skipped, and an error when skipping is not allowed.
pub fn privileged_available(test: &str) -> anyhow::Result<bool> {
    let reason = if !nix::unistd::Uid::effective().is_root() {
        Some("not running as root".to_owned())
    } else {
        match Command::new("unshare").args(["--net", "true"]).status() {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("cannot create a network namespace (unshare exited {s})")),
            Err(e) => Some(format!("cannot run unshare: {e}")),
        }
    };
    match reason {
        None => Ok(true),
        Some(r) if privileged_required() => {
            bail!("{test}: privileged test cannot run ({r}) and DISCOVERD_REQUIRE_PRIVILEGED=1")
        }
        Some(r) => {
            skipped(
                test,
                &format!("{r} (set DISCOVERD_REQUIRE_PRIVILEGED=1 to make this a failure)"),
            );
            Ok(false)
        }
    }
}

/// The target directory the test binary was built into (`target/debug`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("failed to find the test executable")?;
    // target/debug/deps/<test> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("test executable has no target directory")
}

/// Path of a workspace binary, building it first if it is missing (when a
/// single test crate is run on its own, cargo does not build other
/// packages' binaries).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir()?.join(name);
    if !path.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--bin", name])
            .status()
            .with_context(|| format!("failed to run cargo build --bin {name}"))?;
        if !status.success() || !path.exists() {
            bail!("binary {name} is not built and cargo build failed ({status})");
        }
    }
    Ok(path)
}

/// A network namespace created with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

static NS_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// Creates a namespace with a unique name (`dd-<tag>-<pid>-<n>`) and
    /// brings its loopback up.
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let n = NS_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("dd-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace and returns its stdout; a
    /// non-zero exit is an error carrying stderr.
    pub fn exec(&self, argv: &[&str]) -> anyhow::Result<String> {
        let (prog, args) = argv.split_first().context("empty command")?;
        let mut c = self.command(prog);
        c.args(args);
        run(&mut c)
    }

    /// Our table as `nft -j` JSON, or `None` when it does not exist.
    pub fn nft_table(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let out = self
            .command("nft")
            .args(["-j", "list", "table", "inet", "ironic_discoverd"])
            .output()
            .context("failed to run nft")?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_slice(&out.stdout).context("nft printed invalid JSON")?,
        ))
    }

    /// The name of the table's set: `denied` (deny mode) or `allowed`
    /// (allow mode, also deny mode closed while nothing is introspected).
    pub fn nft_set_name(&self) -> anyhow::Result<Option<String>> {
        let Some(table) = self.nft_table()? else {
            return Ok(None);
        };
        let items = table["nftables"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .find_map(|i| i.get("set"))
            .and_then(|s| s["name"].as_str())
            .map(str::to_owned))
    }

    /// The MACs in the table's set (`denied` or `allowed`), sorted.
    ///
    /// Right after a large set was filled the kernel is still growing its
    /// hash table, and a listing taken then repeats some elements and
    /// misses as many (fw-helper/src/backend/nft.rs, `read_set`): such a
    /// listing is taken again, up to 20 times 50 ms apart; the last one is
    /// returned whatever it holds, for the caller's assertion to show.
    pub fn nft_set_macs(&self) -> anyhow::Result<Option<Vec<String>>> {
        let mut last = None;
        for _ in 0..20 {
            let Some(table) = self.nft_table()? else {
                return Ok(None);
            };
            let items = table["nftables"].as_array().cloned().unwrap_or_default();
            let mut macs: Vec<String> = items
                .iter()
                .filter_map(|i| i.get("set"))
                .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect();
            macs.sort();
            if !macs.windows(2).any(|w| w[0] == w[1]) {
                return Ok(Some(macs));
            }
            last = Some(macs);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(last)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a command, returning stdout; errors carry the command and stderr.
pub fn run(c: &mut Command) -> anyhow::Result<String> {
    let out: Output = c.output().with_context(|| format!("failed to start {c:?}"))?;
    if !out.status.success() {
        bail!(
            "{c:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child process killed (SIGKILL, by its own PID) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    pub fn spawn(what: &str, cmd: &mut Command) -> anyhow::Result<Self> {
        let child = cmd.spawn().with_context(|| format!("failed to start {what}"))?;
        Ok(ChildGuard {
            child: Some(child),
            what: what.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits up to `grace` for the exit status.
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("process already reaped")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .with_context(|| format!("failed to signal {}", self.what))?;
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {grace:?} of SIGTERM", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills with SIGKILL now and reaps.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 20 ms until it returns `Ok(Some(v))` or `limit` passes.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    let mut last_err = None;
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => bail!("timed out after {limit:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {limit:?} waiting for {what}"),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a `/proc/<pid>/status` field such as `CapEff` or `Uid`.
pub fn proc_status_field(pid: u32, field: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Makes `cmd` (the daemon binary) run unprivileged when this process is
/// root, as the daemon refuses uid 0 and capabilities: uid/gid
/// [`stack::DAEMON_ID`], no supplementary groups (std clears them when a
/// root parent sets the uid), so no capabilities; `dirs` it writes to
/// become that user's. Not root: nothing to change.
pub fn unprivileged(cmd: &mut Command, dirs: &[&Path]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    give_to_daemon_user(dirs)?;
    cmd.uid(stack::DAEMON_ID).gid(stack::DAEMON_ID);
    Ok(())
}

/// When root: `dirs` become [`stack::DAEMON_ID`]'s, for a daemon started
/// by [`unprivileged`] to write in them.
pub fn give_to_daemon_user(dirs: &[&Path]) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let id = stack::DAEMON_ID;
    for d in dirs {
        nix::unistd::chown(*d, Some(id.into()), Some(id.into()))
            .with_context(|| format!("failed to chown {} to {id}", d.display()))?;
    }
    Ok(())
}

/// Marks a test as skipped at run time: prints `SKIPPED: <test>: <reason>`
/// and appends that line to the file `DISCOVERD_SKIP_REPORT` names, so
/// `scripts/test.sh` counts it as skipped, not passed (cargo counts a test
/// that returns early as passed and hides its output).
pub fn skipped(test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("SKIPPED: {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("DISCOVERD_SKIP_REPORT") {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "{line}");
        }
    }
}
