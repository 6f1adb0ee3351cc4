//! The listening socket: inherited from systemd (`LISTEN_FDS`) or bound
//! here, with the configured mode and group.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;

use anyhow::{Context, bail};

use crate::config::HelperConfig;

/// First fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// The socket systemd passed us, if it passed exactly one for this pid.
fn inherited() -> anyhow::Result<Option<UnixListener>> {
    let (Ok(pid), Ok(fds)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(None);
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let n: u32 = fds
        .parse()
        .with_context(|| format!("LISTEN_FDS={fds:?} is not a number"))?;
    if n != 1 {
        bail!("expected exactly one socket from systemd, got LISTEN_FDS={n}");
    }
    // Not for our children.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called during start-up, before the runtime or any other
        // thread exists, so nothing reads the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(var)
        };
    }
    if nix::fcntl::fcntl(
        // SAFETY: only used for this F_GETFD probe of whether fd 3 is open.
        #[allow(unsafe_code)]
        unsafe {
            std::os::fd::BorrowedFd::borrow_raw(LISTEN_FDS_START)
        },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_err()
    {
        bail!("LISTEN_FDS=1 but fd 3 is not open");
    }
    // SAFETY: systemd's protocol hands us fd 3 as an open socket owned by
    // this process (checked open above); nothing else in this process
    // refers to it, so taking ownership is sound.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let st = nix::sys::stat::fstat(&fd).context("failed to stat fd 3 from systemd")?;
    if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
        != nix::sys::stat::SFlag::S_IFSOCK
    {
        bail!("fd 3 from systemd is not a socket");
    }
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
        .context("failed to set FD_CLOEXEC on the inherited socket")?;
    Ok(Some(UnixListener::from(fd)))
}

/// Returns the listening socket, inherited or freshly bound.
pub fn listen(cfg: &HelperConfig) -> anyhow::Result<UnixListener> {
    if let Some(l) = inherited()? {
        tracing::info!("using the socket passed by systemd");
        return Ok(l);
    }
    let path = &cfg.socket_path;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("failed to remove stale socket {}", path.display()))?,
        Ok(_) => bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).with_context(|| format!("failed to bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .with_context(|| format!("failed to chmod {}", path.display()))?;
    if let Some(gid) = cfg.socket_group {
        nix::unistd::chown(path, None, Some(gid))
            .with_context(|| format!("failed to chgrp {}", path.display()))?;
    }
    tracing::info!(path = %path.display(), mode = format!("{:o}", cfg.socket_mode), "listening");
    Ok(listener)
}
