//! The `dnsmasq` backend: no kernel filter at all, but a `dhcp-hostsdir`
//! directory that the operator's own dnsmasq reads (`--dhcp-hostsdir=DIR`).
//!
//! One file per MAC, named after the MAC, holding one `dhcp-host` line:
//! `aa:bb:cc:dd:ee:ff,ignore` (dnsmasq ignores that host) or
//! `aa:bb:cc:dd:ee:ff` (served); and one wildcard file, [`WILDCARD_FILE`],
//! for hosts with no file of their own: `*:*:*:*:*:*` in deny mode,
//! `*:*:*:*:*:*,ignore` in allow mode. An exact MAC beats a wildcard in
//! dnsmasq's lookup, whatever the order the files were read in.
//!
//! What dnsmasq (2.89, 2.90) does with the directory shapes everything
//! here: it watches it with inotify for `IN_CLOSE_WRITE` and
//! `IN_MOVED_TO` only, and on each event parses that file and *prepends*
//! its lines to its host list; it never forgets a line, not when the file
//! changes and not when it is deleted (only SIGHUP or a restart re-reads
//! the directory from scratch). Lookups take the first exact match, so
//! the newest line for a MAC wins. Hence:
//!
//! * A file is never deleted: dnsmasq would keep serving (or ignoring) the
//!   MAC as its last content said. A MAC that leaves the state gets the
//!   verdict the state now gives it, written in its file.
//! * A file is never truncated: dnsmasq reads whole files at start and on
//!   SIGHUP, and could catch one empty. Both contents of a file have the
//!   same length (the served line is padded with spaces, which dnsmasq
//!   strips), so a change is one `pwrite` at offset 0 of an open that
//!   does not truncate, then a close, which is what makes dnsmasq look.
//! * Only files whose content changes are written: each write costs
//!   dnsmasq a parse and a few bytes of memory until its next SIGHUP.
//! * Denials are written before allowances, so while a change is being
//!   written, dnsmasq serves less than either state, never more.
//!
//! The directory must be the helper's alone (a file we did not write would
//! be overwritten or misread); a dotfile, [`META_FILE`], which dnsmasq
//! skips, holds an exclusive lock for the helper's lifetime and the
//! interfaces of the applied state (empty after a teardown).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{FilterMode, FilterState, InterfaceName, MacAddr};

use super::{Applied, Backend, BackendError, Change};

/// The file for hosts that have no file of their own.
pub const WILDCARD_FILE: &str = "unknown-hosts";
/// The helper's lock and record; dnsmasq skips dotfiles.
pub const META_FILE: &str = ".ironic-discoverd-fw-helper";
const WILDCARD: &str = "*:*:*:*:*:*";
const IGNORE: &str = ",ignore";
/// No file of ours is longer than this; a longer one is not ours.
const MAX_FILE_LEN: u64 = 64;

/// What dnsmasq is told about a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    Ignore,
}

/// The exact content of a file for `host`: the same length for both
/// verdicts.
pub fn content(host: &str, verdict: Verdict) -> String {
    match verdict {
        Verdict::Ignore => format!("{host}{IGNORE}\n"),
        Verdict::Serve => format!("{host}{:1$}\n", "", IGNORE.len()),
    }
}

/// Reads a file's content back: `Ok(None)` for an empty file (a create
/// that crashed before its write), `Err` for anything we do not write.
pub fn parse(host: &str, text: &str) -> Result<Option<Verdict>, String> {
    let line = text.trim_end();
    if text.is_empty() {
        return Ok(None);
    }
    if line == host && text.len() == content(host, Verdict::Serve).len() {
        return Ok(Some(Verdict::Serve));
    }
    if text == content(host, Verdict::Ignore) {
        return Ok(Some(Verdict::Ignore));
    }
    Err(format!(
        "unexpected content {:?}",
        text.chars().take(40).collect::<String>()
    ))
}

/// The verdict of `state` for a MAC that is (`listed`) or is not in its set.
pub fn verdict(mode: FilterMode, listed: bool) -> Verdict {
    match (mode, listed) {
        (FilterMode::Deny, true) | (FilterMode::Allow, false) => Verdict::Ignore,
        (FilterMode::Deny, false) | (FilterMode::Allow, true) => Verdict::Serve,
    }
}

/// The wildcard file's verdict in `mode`: hosts without a file are served
/// in deny mode and ignored in allow mode.
pub fn wildcard_verdict(mode: FilterMode) -> Verdict {
    verdict(mode, false)
}

/// A file name in the directory: a MAC's or the wildcard's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Host {
    Wildcard,
    Mac(MacAddr),
}

impl Host {
    fn name(&self) -> String {
        match self {
            Host::Wildcard => WILDCARD_FILE.to_owned(),
            Host::Mac(m) => m.to_string(),
        }
    }

    fn line_host(&self) -> String {
        match self {
            Host::Wildcard => WILDCARD.to_owned(),
            Host::Mac(m) => m.to_string(),
        }
    }
}

/// What the directory holds: each file's verdict (`None`: empty file).
pub type Files = BTreeMap<Host, Option<Verdict>>;

/// Pure: the files to write so that the directory holds `state`, given
/// what it holds (`files`); with `only`, just those MACs are considered
/// (an incremental change). Denials come first.
pub fn plan(files: &Files, state: &Applied, only: Option<&[MacAddr]>) -> Vec<(Host, Verdict)> {
    let mut wanted: Vec<(Host, Verdict)> = Vec::new();
    let mut want = |host: Host, v: Verdict| {
        if files.get(&host).copied().flatten() != Some(v) {
            wanted.push((host, v));
        }
    };
    match only {
        Some(macs) => {
            for m in macs {
                want(Host::Mac(*m), verdict(state.mode, state.macs.contains(m)));
            }
        }
        None => {
            want(Host::Wildcard, wildcard_verdict(state.mode));
            for host in files.keys() {
                if let Host::Mac(m) = host {
                    want(*host, verdict(state.mode, state.macs.contains(m)));
                }
            }
            for m in &state.macs {
                if !files.contains_key(&Host::Mac(*m)) {
                    want(Host::Mac(*m), verdict(state.mode, true));
                }
            }
        }
    }
    // Stable: denials first, then allowances, each in name order.
    wanted.sort_by_key(|(h, v)| (*v == Verdict::Serve, *h));
    wanted
}

/// Pure: the state the files describe, or `None` without a wildcard file.
pub fn state_of(files: &Files, interfaces: Vec<InterfaceName>) -> Result<Option<FilterState>, String> {
    let Some(wildcard) = files.get(&Host::Wildcard) else {
        return Ok(None);
    };
    let mode = match wildcard {
        Some(Verdict::Serve) => FilterMode::Deny,
        Some(Verdict::Ignore) => FilterMode::Allow,
        None => return Err(format!("{WILDCARD_FILE} is empty")),
    };
    let mut macs = Vec::new();
    for (host, v) in files {
        if let Host::Mac(m) = host {
            match v {
                None => return Err(format!("{m} is empty")),
                Some(v) if *v != wildcard_verdict(mode) => macs.push(*m),
                Some(_) => {}
            }
        }
    }
    Ok(Some(FilterState {
        interfaces,
        mode,
        macs,
    }))
}

/// The backend: the directory, its lock, and what its files hold.
#[derive(Debug)]
pub struct Hostsdir {
    dir: PathBuf,
    /// The meta file, locked (`flock`, exclusive) for our lifetime.
    meta: nix::fcntl::Flock<File>,
    files: Files,
}

fn bad(dir: &Path, message: impl Into<String>) -> BackendError {
    BackendError::Hostsdir {
        path: dir.to_owned(),
        message: message.into(),
    }
}

impl Hostsdir {
    /// Checks and locks `dir` and reads what it holds. Refuses a directory
    /// that is missing, not a directory, not writable by this process,
    /// locked by another helper, or holding files we did not write.
    pub fn open(dir: &Path) -> Result<Self, BackendError> {
        let md = std::fs::metadata(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad(
                dir,
                "does not exist: create it (writable by the helper's user, readable by dnsmasq) and point dnsmasq's --dhcp-hostsdir at it",
            ),
            _ => bad(dir, e.to_string()),
        })?;
        if !md.is_dir() {
            return Err(bad(dir, "is not a directory"));
        }
        nix::unistd::access(
            dir,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .map_err(|e| {
            bad(
                dir,
                format!(
                    "is not writable by uid {} ({e}): the helper writes one file per MAC there",
                    nix::unistd::Uid::effective()
                ),
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(dir.join(META_FILE))
            .map_err(|e| bad(dir, format!("failed to open {META_FILE}: {e}")))?;
        let meta = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
            |(_, e)| {
                bad(
                    dir,
                    format!("is in use by another helper ({META_FILE} is locked: {e})"),
                )
            },
        )?;
        let files = scan(dir)?;
        Ok(Hostsdir {
            dir: dir.to_owned(),
            meta,
            files,
        })
    }

    fn interfaces(&self) -> Result<Option<Vec<InterfaceName>>, BackendError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self
            .meta
            .read_at(&mut buf, 0)
            .map_err(|e| bad(&self.dir, format!("failed to read {META_FILE}: {e}")))?;
        let text = String::from_utf8_lossy(&buf[..n]);
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.split(',')
            .map(|i| InterfaceName::new(i.trim()).map_err(|e| bad(&self.dir, format!("{META_FILE}: {e}"))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Records the interfaces of the applied state; `None` after a teardown.
    fn set_interfaces(&mut self, interfaces: Option<&[InterfaceName]>) -> Result<(), BackendError> {
        let text = interfaces
            .map(|i| i.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let err = |e: std::io::Error| bad(&self.dir, format!("failed to write {META_FILE}: {e}"));
        self.meta.set_len(0).map_err(err)?;
        self.meta
            .write_all_at(format!("{text}\n").as_bytes(), 0)
            .map_err(err)
    }

    /// Writes `v` into `host`'s file in place and closes it (the close is
    /// what dnsmasq's inotify watch reacts to).
    fn write(&mut self, host: Host, v: Verdict) -> Result<(), BackendError> {
        let name = host.name();
        let err = |e: std::io::Error| BackendError::Hostsdir {
            path: self.dir.join(&name),
            message: e.to_string(),
        };
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.dir.join(&name))
            .map_err(err)?;
        if !self.files.contains_key(&host) {
            // dnsmasq runs as its own user: the file must be readable
            // whatever our umask (the shipped unit sets 0077).
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(err)?;
        }
        f.write_all_at(content(&host.line_host(), v).as_bytes(), 0)
            .map_err(err)?;
        drop(f);
        self.files.insert(host, Some(v));
        Ok(())
    }

    fn write_all(&mut self, writes: Vec<(Host, Verdict)>) -> Result<(), BackendError> {
        for (host, v) in writes {
            self.write(host, v)?;
        }
        Ok(())
    }
}

/// Reads every file of `dir`; any file we would not have written is an
/// error naming it.
pub fn scan(dir: &Path) -> Result<Files, BackendError> {
    let mut files = Files::new();
    let mut foreign = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| bad(dir, format!("failed to list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(dir, format!("failed to list: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == META_FILE {
            continue;
        }
        let host = if name == WILDCARD_FILE {
            Some(Host::Wildcard)
        } else {
            MacAddr::parse(&name)
                .ok()
                .filter(|m| m.to_string() == name)
                .map(Host::Mac)
        };
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        let Some(host) = host.filter(|_| regular) else {
            foreign.push(name);
            continue;
        };
        let mut text = String::new();
        let read = File::open(entry.path())
            .and_then(|f| f.take(MAX_FILE_LEN + 1).read_to_string(&mut text))
            .map_err(|e| e.to_string())
            .and_then(|_| parse(&host.line_host(), &text));
        match read {
            Ok(v) => {
                files.insert(host, v);
            }
            Err(why) => foreign.push(format!("{name} ({why})")),
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        let n = foreign.len();
        foreign.truncate(5);
        return Err(bad(
            dir,
            format!(
                "holds {n} file(s) the helper did not write, e.g. {}: the directory must be the helper's alone",
                foreign.join(", ")
            ),
        ));
    }
    Ok(files)
}

impl Backend for Hostsdir {
    fn name(&self) -> &'static str {
        "dnsmasq"
    }

    fn apply(&mut self, state: &Applied, change: Change<'_>) -> Result<u64, BackendError> {
        let started = Instant::now();
        let writes = match change {
            Change::Full { .. } => plan(&self.files, state, None),
            Change::Delta { added, removed } => {
                let touched: Vec<MacAddr> = added.iter().chain(removed).copied().collect();
                plan(&self.files, state, Some(&touched))
            }
        };
        self.set_interfaces(Some(&state.interfaces))?;
        self.write_all(writes)?;
        Ok(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn read(&self) -> Result<Option<FilterState>, BackendError> {
        let Some(interfaces) = self.interfaces()? else {
            return Ok(None);
        };
        let files = scan(&self.dir)?;
        state_of(&files, interfaces).map_err(|e| BackendError::Query(format!("{}: {e}", self.dir.display())))
    }

    /// Serves everyone: every file says "serve" (none is deleted, see the
    /// module docs) and the record says no filter is applied.
    fn teardown(&mut self) -> Result<(), BackendError> {
        let writes: Vec<(Host, Verdict)> = self
            .files
            .iter()
            .filter(|(_, v)| **v != Some(Verdict::Serve))
            .map(|(h, _)| (*h, Verdict::Serve))
            .collect();
        self.write_all(writes)?;
        self.set_interfaces(None)
    }
}

#[cfg(test)]
mod tests;
