//! ironic-discoverd-fw-helper: the one privileged piece of ironic-discoverd.
//!
//! It holds CAP_NET_ADMIN and nothing else, takes the desired DHCP filter
//! state from the daemon over a Unix socket, and makes the kernel match it
//! in one atomic transaction per change. It never runs a shell, touches
//! only its own table, and leaves the last filter in place when the daemon
//! goes away.

pub mod backend;
pub mod config;
pub mod ctl;
pub mod logging;
pub mod peer;
pub mod privileges;
pub mod server;
pub mod socket;
pub mod state;

use anyhow::Context;

use crate::backend::{BackendKind, Filter};
use crate::config::HelperConfig;
use crate::peer::AllowedPeer;

/// Binds (or inherits) the socket, drops privileges, and serves until
/// SIGTERM/SIGINT.
pub fn run(cfg: HelperConfig) -> anyhow::Result<()> {
    // 1. The socket, while we may still create files anywhere.
    let listener = socket::listen(&cfg).context("failed to set up the helper socket")?;
    // The state file too: after the drop we could not create it.
    let state_file = cfg
        .state_file
        .as_deref()
        .map(state::StateFile::open)
        .transpose()
        .context("failed to open the state file")?;
    // 2. Privileges: only CAP_NET_ADMIN from here on, or nothing at all
    //    for the dnsmasq backend (it writes files).
    let keep = match cfg.backend {
        BackendKind::Iptables { .. } => privileges::Keep::NetAdminAmbient,
        ref b if !b.needs_net_admin() => privileges::Keep::Nothing,
        _ => privileges::Keep::NetAdmin,
    };
    let kept = if nix::unistd::Uid::effective().is_root() {
        privileges::drop_root(&cfg.user, keep).context("failed to drop privileges")?
    } else {
        privileges::check_unprivileged(cfg.allow_extra_capabilities, keep)
            .context("failed to check privileges")?
    };
    tracing::info!(uid = %kept.uid, gid = %kept.gid, effective = ?kept.effective, ambient = kept.ambient, no_new_privs = true, "privileges dropped");
    // 3. The filter, starting from what the kernel (or the hostsdir)
    //    holds. Built after the drop: the hostsdir must be writable by the
    //    user the helper runs as.
    let backend = cfg
        .backend
        .build()
        .context("failed to set up the filter backend")?;
    if matches!(cfg.backend, BackendKind::Iptables { .. }) {
        tracing::warn!(
            "the iptables backend filters DHCPv4 from directly attached clients only: relayed DHCPv4 and all DHCPv6 pass it unfiltered (backend = nftables filters both)"
        );
    }
    let filter = Filter::new(backend, cfg.interfaces.iter().cloned(), state_file);
    let shared = server::Shared::new(
        filter,
        AllowedPeer {
            uid: cfg.allowed_uid,
            gid: cfg.allowed_gid,
        },
    );
    // 4. The watch that puts the filter back when someone else changes it.
    if matches!(cfg.backend, BackendKind::Nftables { .. }) {
        let watch = backend::watch::Watch::open().context("failed to watch nf_tables for changes")?;
        watch
            .serve_quiet()
            .context("failed to share the nf_tables watch")?;
        let filter = shared.filter();
        std::thread::Builder::new()
            .name("nft-watch".into())
            .spawn(move || backend::watch::run(watch, filter))
            .context("failed to start the nf_tables watch")?;
    }
    // iptables has no such notifications: a cheap periodic check instead.
    if let BackendKind::Iptables { check_every, .. } = cfg.backend
        && !check_every.is_zero()
    {
        let filter = shared.filter();
        std::thread::Builder::new()
            .name("ipt-check".into())
            .spawn(move || backend::check::run(filter, check_every))
            .context("failed to start the periodic iptables check")?;
    } else if matches!(cfg.backend, BackendKind::Iptables { .. }) {
        tracing::warn!(
            "iptables_check_interval = 0: the iptables filter is not defended against changes by others"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        listener.set_nonblocking(true).context("failed to make the socket non-blocking")?;
        let listener = tokio::net::UnixListener::from_std(listener).context("failed to register the socket")?;
        tracing::info!(backend = ?cfg.backend, interfaces = ?cfg.interfaces, allowed_uid = %cfg.allowed_uid, "serving");
        server::serve(listener, shared.clone(), shutdown_signal()).await;
        if cfg.teardown_on_stop {
            match shared.teardown().await {
                Ok(()) => tracing::info!("filter removed (teardown_on_stop)"),
                Err(e) => tracing::error!("failed to remove the filter on stop: {}", e.message),
            }
        } else {
            tracing::info!("stopping; the filter stays in place");
        }
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM received"),
                _ = i.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
