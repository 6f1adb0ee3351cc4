//! Filter backends behind one trait, and [`Filter`], which owns the mirror
//! of what is applied and turns protocol requests into backend changes.
//!
//! Compute, then apply: each backend builds its whole change with a pure
//! function and hands the kernel one atomic transaction.

pub mod iptables;
pub mod netlink;
pub mod nft;
pub mod noop;

use std::collections::BTreeSet;
use std::fmt;

use common::protocol::{AppliedSummary, ErrorCode, ProtocolError};
use common::{FilterMode, FilterState, InterfaceName, MacAddr};

/// The state a backend is asked to hold: a normalised [`FilterState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub interfaces: Vec<InterfaceName>,
    pub mode: FilterMode,
    pub macs: BTreeSet<MacAddr>,
}

impl Applied {
    fn from_state(s: &FilterState) -> Self {
        let mut interfaces = s.interfaces.clone();
        interfaces.sort();
        interfaces.dedup();
        Applied {
            interfaces,
            mode: s.mode,
            macs: s.macs.iter().copied().collect(),
        }
    }

    fn to_state(&self) -> FilterState {
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
}

/// A way of making the kernel drop DHCP by source MAC.
pub trait Backend: Send + fmt::Debug {
    /// `nftables`, `iptables` or `none`.
    fn name(&self) -> &'static str;
    /// Makes the kernel hold `state`, atomically. Returns microseconds spent
    /// in the kernel transaction.
    fn apply(&mut self, state: &Applied, change: Change<'_>) -> Result<u64, BackendError>;
    /// What is in the kernel now, or `None` when our objects do not exist.
    fn read(&self) -> Result<Option<FilterState>, BackendError>;
    /// Removes our objects (and only ours).
    fn teardown(&mut self) -> Result<(), BackendError>;
}

/// Which backend to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    Nftables,
    Iptables { restore: String },
    None,
}

impl BackendKind {
    pub fn build(&self) -> Box<dyn Backend> {
        match self {
            BackendKind::Nftables => Box::new(nft::Nftables),
            BackendKind::Iptables { restore } => Box::new(iptables::Iptables::new(restore.clone())),
            BackendKind::None => Box::new(noop::Noop::default()),
        }
    }
}

/// The helper's filter: a backend plus the mirror of what it applied.
#[derive(Debug)]
pub struct Filter {
    backend: Box<dyn Backend>,
    allowed_interfaces: BTreeSet<InterfaceName>,
    mirror: Option<Applied>,
    generation: u64,
}

fn kernel_error(e: BackendError) -> ProtocolError {
    ProtocolError::new(ErrorCode::Kernel, e.to_string())
}

impl Filter {
    /// Wraps `backend`; the mirror starts from what the kernel holds now,
    /// so a restarted helper can apply incremental changes at once.
    pub fn new(
        backend: Box<dyn Backend>,
        allowed_interfaces: impl IntoIterator<Item = InterfaceName>,
    ) -> Self {
        let mirror = match backend.read() {
            Ok(found) => found.map(|s| Applied::from_state(&s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the applied filter; the first sync will replace it");
                None
            }
        };
        if let Some(m) = &mirror {
            tracing::info!(mode = %m.mode, interfaces = ?m.interfaces, macs = m.macs.len(), "found an applied filter, keeping it");
        }
        Filter {
            backend,
            allowed_interfaces: allowed_interfaces.into_iter().collect(),
            mirror,
            generation: 0,
        }
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
        Ok(self.summary(micros))
    }

    /// Adds MACs to the synced set; ones already there are skipped.
    pub fn add(&mut self, macs: &[MacAddr]) -> Result<AppliedSummary, ProtocolError> {
        let mirror = self.mirror.as_ref().ok_or_else(not_synced)?;
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
        Ok(self.summary(micros))
    }

    /// Removes MACs from the synced set; absent ones are ignored.
    pub fn remove(&mut self, macs: &[MacAddr]) -> Result<AppliedSummary, ProtocolError> {
        let mirror = self.mirror.as_ref().ok_or_else(not_synced)?;
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
        Filter::new(Box::new(noop::Noop::default()), [iface("br0"), iface("br1")])
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
        let mut s = state(&[1]);
        s.interfaces = vec![iface("eth9")];
        assert_eq!(
            f.sync(&s).map_err(|e| e.code),
            Err(ErrorCode::InterfaceNotAllowed)
        );
        assert_eq!(f.mirror(), None);
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
