//! Filter backends behind one trait, and [`Filter`], which owns the mirror
//! of what is applied and turns protocol requests into backend changes.
//!
//! Compute, then apply: each backend builds its whole change with a pure
//! function and hands the kernel one atomic transaction.

pub mod check;
pub mod dhcpv6;
pub mod hostsdir;
pub mod iptables;
pub mod netlink;
pub mod nft;
mod nft_backend;
mod nft_expr;
pub mod noop;
pub mod set_size;
pub mod watch;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use common::protocol::{AppliedSummary, ErrorCode, ProtocolError};
use common::{FilterMode, FilterState, InterfaceName, MacAddr};

use crate::state::StateFile;

/// The nftables table the helper owns (the nft backend writes it, the
/// watch guards it).
pub const NFT_TABLE: &str = "ironic_discoverd";

/// The state a backend is asked to hold: a normalised [`FilterState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub interfaces: Vec<InterfaceName>,
    pub mode: FilterMode,
    pub macs: BTreeSet<MacAddr>,
}

impl Applied {
    pub fn from_state(s: &FilterState) -> Self {
        let mut interfaces = s.interfaces.clone();
        interfaces.sort();
        interfaces.dedup();
        Applied {
            interfaces,
            mode: s.mode,
            macs: s.macs.iter().copied().collect(),
        }
    }

    pub fn to_state(&self) -> FilterState {
        FilterState {
            interfaces: self.interfaces.clone(),
            mode: self.mode,
            macs: self.macs.iter().copied().collect(),
        }
    }
}

/// What changed since the backend's last successful apply.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Replace everything; `previous` is what this process applied last.
    Full { previous: Option<&'a Applied> },
    /// Only set elements changed. `removed` holds only present elements.
    Delta {
        added: &'a [MacAddr],
        removed: &'a [MacAddr],
    },
}

/// Why a backend could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("failed to build the ruleset: {0}")]
    Build(String),
    #[error("the kernel rejected the {object}: {errno}")]
    Rejected {
        object: String,
        errno: nix::errno::Errno,
    },
    #[error("failed to talk to nf_tables: {0}")]
    Netlink(#[source] netlink::NetlinkError),
    #[error("failed to read the applied filter: {0}")]
    Query(String),
    #[error("failed to run {program}: {message}")]
    Command { program: String, message: String },
    #[error("dnsmasq hostsdir {}: {message}", path.display())]
    Hostsdir { path: PathBuf, message: String },
}

/// A way of making the kernel drop DHCP by source MAC.
pub trait Backend: Send + fmt::Debug {
    /// `nftables`, `iptables`, `dnsmasq` or `none`.
    fn name(&self) -> &'static str;
    /// Makes the kernel hold `state`, atomically. Returns microseconds spent
    /// in the kernel transaction.
    fn apply(&mut self, state: &Applied, change: Change<'_>) -> Result<u64, BackendError>;
    /// What is in the kernel now, or `None` when our objects do not exist.
    fn read(&self) -> Result<Option<FilterState>, BackendError>;
    /// Removes our objects (and only ours).
    fn teardown(&mut self) -> Result<(), BackendError>;
    /// Compares the kernel with `wanted` (what this process applied last):
    /// `None` when it holds it, else what was found, in one line. By
    /// default the state read back is compared; a backend that can tell
    /// more (a hand-added rule) says more.
    fn drift(&mut self, wanted: &Applied) -> Result<Option<String>, BackendError> {
        let found = self.read()?.map(|s| Applied::from_state(&s));
        Ok((found.as_ref() != Some(wanted)).then(|| describe_state_drift(found.as_ref(), wanted)))
    }
}

/// What a read-back state looks like next to the applied one, for logs.
pub fn describe_state_drift(found: Option<&Applied>, wanted: &Applied) -> String {
    match found {
        None => "the table missing".to_owned(),
        Some(f) => format!(
            "{} MACs in {} mode where {} were applied",
            f.macs.len(),
            f.mode,
            wanted.macs.len()
        ),
    }
}

/// Which backend to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    Nftables {
        matching: nft::Matching,
    },
    Iptables {
        restore: String,
        /// How often the kernel is compared with the last applied state
        /// (zero: never).
        check_every: std::time::Duration,
    },
    /// A `dhcp-hostsdir` for the operator's dnsmasq; no kernel filter.
    Dnsmasq {
        hostsdir: PathBuf,
    },
    None,
}

impl BackendKind {
    /// Builds the backend; only the dnsmasq one can fail here (its
    /// directory is checked and locked at once).
    pub fn build(&self) -> Result<Box<dyn Backend>, BackendError> {
        Ok(match self {
            BackendKind::Nftables { matching } => Box::new(nft::Nftables::new(*matching)),
            BackendKind::Iptables { restore, .. } => Box::new(iptables::Iptables::new(restore.clone())),
            BackendKind::Dnsmasq { hostsdir } => Box::new(hostsdir::Hostsdir::open(hostsdir)?),
            BackendKind::None => Box::new(noop::Noop::default()),
        })
    }

    /// Whether the backend needs CAP_NET_ADMIN (the dnsmasq one only
    /// writes files).
    pub fn needs_net_admin(&self) -> bool {
        !matches!(self, BackendKind::Dnsmasq { .. })
    }
}

/// The helper's filter: a backend plus the mirror of what it applied.
#[derive(Debug)]
pub struct Filter {
    backend: Box<dyn Backend>,
    allowed_interfaces: BTreeSet<InterfaceName>,
    /// What this process last made the kernel hold (and restores when
    /// someone else changes it).
    mirror: Option<Applied>,
    /// Whether `mirror` is a state the daemon gave (now or before a
    /// restart), as opposed to the closed start-up filter.
    synced: bool,
    generation: u64,
    state_file: Option<StateFile>,
    /// Times the filter was put back after a foreign change.
    restores: u64,
}

fn kernel_error(e: BackendError) -> ProtocolError {
    ProtocolError::new(ErrorCode::Kernel, e.to_string())
}

impl Filter {
    /// Wraps `backend` and puts the kernel into the state to start from:
    /// the state file's (the last state the daemon gave), else the filter
    /// found in the kernel, else closed (every configured interface in
    /// allow mode with an empty set: all DHCP dropped until the daemon's
    /// first sync). Never open.
    pub fn new(
        backend: Box<dyn Backend>,
        allowed_interfaces: impl IntoIterator<Item = InterfaceName>,
        mut state_file: Option<StateFile>,
    ) -> Self {
        let allowed_interfaces: BTreeSet<InterfaceName> = allowed_interfaces.into_iter().collect();
        let saved = state_file.as_mut().and_then(|f| match f.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the state file; starting from the kernel or closed");
                None
            }
        });
        let saved = saved.filter(|s| {
            let ok = s.interfaces.iter().all(|i| allowed_interfaces.contains(i));
            if !ok {
                tracing::warn!(interfaces = ?s.interfaces, "the state file names interfaces this helper no longer manages; ignoring it");
            }
            ok
        });
        let mut filter = Filter {
            backend,
            allowed_interfaces,
            mirror: None,
            synced: false,
            generation: 0,
            state_file,
            restores: 0,
        };
        if let Some(s) = saved {
            let wanted = Applied::from_state(&s);
            match filter.backend.apply(&wanted, Change::Full { previous: None }) {
                Ok(_) => {
                    tracing::info!(mode = %wanted.mode, interfaces = ?wanted.interfaces, macs = wanted.macs.len(), "applied the state file's filter");
                    filter.mirror = Some(wanted);
                    filter.synced = true;
                    return filter;
                }
                Err(e) => tracing::error!(error = %e, "failed to apply the state file's filter"),
            }
        }
        match filter.backend.read() {
            Ok(Some(found)) => {
                let m = Applied::from_state(&found);
                tracing::info!(mode = %m.mode, interfaces = ?m.interfaces, macs = m.macs.len(), "found an applied filter, keeping it");
                filter.mirror = Some(m);
                filter.synced = true;
                return filter;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the applied filter; starting closed"),
        }
        let closed = filter.closed();
        match filter.backend.apply(&closed, Change::Full { previous: None }) {
            Ok(_) => {
                tracing::info!(interfaces = ?closed.interfaces, "no state yet: DHCP dropped on every configured interface until the daemon syncs");
                filter.mirror = Some(closed);
            }
            Err(e) => tracing::error!(error = %e, "failed to apply the closed start-up filter"),
        }
        filter
    }

    /// Every configured interface, allow mode, nobody allowed.
    fn closed(&self) -> Applied {
        Applied {
            interfaces: self.allowed_interfaces.iter().cloned().collect(),
            mode: FilterMode::Allow,
            macs: BTreeSet::new(),
        }
    }

    /// Writes the mirror to the state file; a failure is logged, not
    /// returned: the kernel already holds the state.
    fn save(&mut self) {
        let state = if self.synced {
            self.mirror.as_ref().map(Applied::to_state)
        } else {
            None
        };
        if let Some(f) = self.state_file.as_mut()
            && let Err(e) = f.save(state.as_ref())
        {
            tracing::error!(error = %e, "failed to save the state file; a restarted helper would start from an older state");
        }
    }

    /// Puts the mirror back into the kernel (a whole-table replace), after
    /// someone else changed our objects. `what` says what was seen.
    pub fn restore(&mut self, what: &str) -> Result<(), BackendError> {
        let Some(m) = self.mirror.clone() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        self.backend.apply(&m, Change::Full { previous: None })?;
        self.restores += 1;
        tracing::warn!(
            found = what,
            mode = %m.mode,
            macs = m.macs.len(),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "the filter was changed by someone else; restored"
        );
        Ok(())
    }

    /// Reads the kernel back and restores the mirror if they differ (for
    /// when change notifications were lost).
    pub fn check(&mut self) -> Result<bool, BackendError> {
        let Some(m) = self.mirror.as_ref() else {
            return Ok(false);
        };
        match self.backend.drift(m)? {
            None => Ok(false),
            Some(what) => {
                self.restore(&what)?;
                Ok(true)
            }
        }
    }

    /// How many times a foreign change was undone.
    pub fn restores(&self) -> u64 {
        self.restores
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    fn summary(&mut self, micros: u64) -> AppliedSummary {
        self.generation += 1;
        AppliedSummary {
            mac_count: self.mirror.as_ref().map_or(0, |m| m.macs.len()),
            generation: self.generation,
            apply_micros: micros,
        }
    }

    /// Replaces the whole filter.
    pub fn sync(&mut self, state: &FilterState) -> Result<AppliedSummary, ProtocolError> {
        if let Some(bad) = state
            .interfaces
            .iter()
            .find(|i| !self.allowed_interfaces.contains(*i))
        {
            return Err(ProtocolError::new(
                ErrorCode::InterfaceNotAllowed,
                format!("interface {bad} is not one this helper manages (see [fw_helper] interfaces)"),
            ));
        }
        let wanted = Applied::from_state(state);
        let micros = self
            .backend
            .apply(
                &wanted,
                Change::Full {
                    previous: self.mirror.as_ref(),
                },
            )
            .map_err(kernel_error)?;
        self.mirror = Some(wanted);
        self.synced = true;
        self.save();
        Ok(self.summary(micros))
    }

    /// Adds MACs to the synced set; ones already there are skipped.
    pub fn add(&mut self, macs: &[MacAddr]) -> Result<AppliedSummary, ProtocolError> {
        let mirror = self
            .mirror
            .as_ref()
            .filter(|_| self.synced)
            .ok_or_else(not_synced)?;
        let added: Vec<MacAddr> = macs
            .iter()
            .copied()
            .filter(|m| !mirror.macs.contains(m))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut next = mirror.clone();
        next.macs.extend(added.iter().copied());
        let micros = self
            .backend
            .apply(
                &next,
                Change::Delta {
                    added: &added,
                    removed: &[],
                },
            )
            .map_err(kernel_error)?;
        self.mirror = Some(next);
        self.save();
        Ok(self.summary(micros))
    }

    /// Removes MACs from the synced set; absent ones are ignored.
    pub fn remove(&mut self, macs: &[MacAddr]) -> Result<AppliedSummary, ProtocolError> {
        let mirror = self
            .mirror
            .as_ref()
            .filter(|_| self.synced)
            .ok_or_else(not_synced)?;
        let removed: Vec<MacAddr> = macs
            .iter()
            .copied()
            .filter(|m| mirror.macs.contains(m))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut next = mirror.clone();
        for m in &removed {
            next.macs.remove(m);
        }
        let micros = self
            .backend
            .apply(
                &next,
                Change::Delta {
                    added: &[],
                    removed: &removed,
                },
            )
            .map_err(kernel_error)?;
        self.mirror = Some(next);
        self.save();
        Ok(self.summary(micros))
    }

    /// What the kernel holds, read back (not the mirror).
    pub fn status(&self) -> Result<(Option<FilterState>, u64), ProtocolError> {
        let applied = self.backend.read().map_err(kernel_error)?;
        Ok((applied, self.generation))
    }

    /// Removes the filter from the kernel.
    pub fn teardown(&mut self) -> Result<(), ProtocolError> {
        self.backend.teardown().map_err(kernel_error)?;
        self.mirror = None;
        self.synced = false;
        self.save();
        self.generation += 1;
        Ok(())
    }

    /// The mirror as a protocol state, for logs.
    pub fn mirror(&self) -> Option<FilterState> {
        self.mirror.as_ref().map(Applied::to_state)
    }
}

fn not_synced() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotSynced,
        "no filter has been synced yet: send a full sync before add/remove",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(n: &str) -> InterfaceName {
        InterfaceName::new(n).unwrap_or_else(|e| panic!("{e}"))
    }

    fn mac(i: u8) -> MacAddr {
        MacAddr::new([2, 0, 0, 0, 0, i])
    }

    fn filter() -> Filter {
        Filter::new(
            Box::new(noop::Noop::default()),
            [iface("br0"), iface("br1")],
            None,
        )
    }

    fn state(macs: &[u8]) -> FilterState {
        FilterState {
            interfaces: vec![iface("br0")],
            mode: FilterMode::Deny,
            macs: macs.iter().map(|i| mac(*i)).collect(),
        }
    }

    #[test]
    fn incremental_changes_need_a_sync_first() {
        let mut f = filter();
        assert_eq!(f.add(&[mac(1)]).map_err(|e| e.code), Err(ErrorCode::NotSynced));
        assert_eq!(f.remove(&[mac(1)]).map_err(|e| e.code), Err(ErrorCode::NotSynced));
    }

    #[test]
    fn interfaces_outside_the_configured_ones_are_refused() {
        let mut f = filter();
        let before = f.mirror();
        let mut s = state(&[1]);
        s.interfaces = vec![iface("eth9")];
        assert_eq!(
            f.sync(&s).map_err(|e| e.code),
            Err(ErrorCode::InterfaceNotAllowed)
        );
        assert_eq!(f.mirror(), before);
    }

    #[test]
    fn a_filter_without_state_starts_closed_on_every_interface() {
        let f = filter();
        let closed = f.mirror().unwrap_or_else(|| panic!("no start-up filter"));
        assert_eq!(closed.mode, FilterMode::Allow);
        assert_eq!(closed.interfaces, vec![iface("br0"), iface("br1")]);
        assert!(closed.macs.is_empty());
    }

    #[test]
    fn mirror_follows_sync_add_remove_and_dedups() -> Result<(), ProtocolError> {
        let mut f = filter();
        let s = f.sync(&state(&[1, 2, 2]))?;
        assert_eq!((s.mac_count, s.generation), (2, 1));
        let s = f.add(&[mac(2), mac(3), mac(3)])?;
        assert_eq!(s.mac_count, 3);
        let s = f.remove(&[mac(1), mac(9)])?;
        assert_eq!(s.mac_count, 2);
        assert_eq!(f.mirror().map(|m| m.macs), Some(vec![mac(2), mac(3)]));
        f.teardown()?;
        assert_eq!(f.mirror(), None);
        Ok(())
    }
}
