//! Holding CAP_NET_ADMIN and nothing else.
//!
//! Started as root, the helper binds its socket first and then drops, in
//! the order that was verified on this machine kind (shared/spec/
//! nftables.md §7): keep caps across setuid, shrink the bounding set while
//! CAP_SETPCAP is still there, switch groups and ids, set permitted and
//! effective to {NET_ADMIN}, clear inheritable and ambient, forbid new
//! privileges. Started without root (systemd `AmbientCapabilities=`), it
//! checks that it has CAP_NET_ADMIN and refuses to run with more.
//!
//! The dnsmasq backend only writes files in a directory the helper's user
//! owns: with it the helper keeps no capability at all ([`Keep::Nothing`]).

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

/// What the helper keeps after the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// CAP_NET_ADMIN, permitted and effective (the nftables backend).
    NetAdmin,
    /// CAP_NET_ADMIN, also inheritable and ambient, so that the programs
    /// the iptables backend runs have it.
    NetAdminAmbient,
    /// No capability (the dnsmasq backend).
    Nothing,
}

impl Keep {
    fn net_admin(self) -> bool {
        self != Keep::Nothing
    }

    fn kept(self) -> CapsHashSet {
        if self.net_admin() {
            only_net_admin()
        } else {
            HashSet::new()
        }
    }
}

/// What the process kept, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub uid: Uid,
    pub gid: Gid,
    pub effective: Vec<String>,
    pub ambient: bool,
}

/// One failed step of the drop, named after the step.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("failed to find user {user:?} to drop to: {message}")]
    User { user: String, message: String },
    #[error("failed to keep capabilities across the uid change: {0}")]
    KeepCaps(#[source] nix::Error),
    #[error("failed to shrink the capability bounding set: {0}")]
    Bounding(#[source] caps::errors::CapsError),
    #[error("failed to drop supplementary groups: {0}")]
    Groups(#[source] nix::Error),
    #[error("failed to switch to gid {gid}: {source}")]
    SetGid {
        gid: Gid,
        #[source]
        source: nix::Error,
    },
    #[error("failed to switch to uid {uid}: {source}")]
    SetUid {
        uid: Uid,
        #[source]
        source: nix::Error,
    },
    #[error("failed to set the {set} capability set: {source}")]
    Caps {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("failed to set no_new_privs: {0}")]
    NoNewPrivs(#[source] nix::Error),
    #[error(
        "CAP_NET_ADMIN is not in the effective set: start as root or grant it (AmbientCapabilities=CAP_NET_ADMIN)"
    )]
    MissingNetAdmin,
    #[error(
        "running with capabilities this backend does not need ({0}); drop them (CapabilityBoundingSet=, CAP_NET_ADMIN for a kernel backend) or set allow_extra_capabilities = true"
    )]
    TooMany(String),
}

fn only_net_admin() -> CapsHashSet {
    let mut s = HashSet::new();
    s.insert(Capability::CAP_NET_ADMIN);
    s
}

fn names(set: &CapsHashSet) -> Vec<String> {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

fn caps_step(set: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError::Caps { set, source }
}

/// Drops from root to `user`, keeping only what `keep` says.
pub fn drop_root(user: &str, keep: Keep) -> Result<Kept, PrivilegeError> {
    let ambient = keep == Keep::NetAdminAmbient;
    let target = match user.parse::<u32>() {
        Ok(n) => (Uid::from_raw(n), Gid::from_raw(n)),
        Err(_) => match User::from_name(user) {
            Ok(Some(u)) => (u.uid, u.gid),
            Ok(None) => {
                return Err(PrivilegeError::User {
                    user: user.into(),
                    message: "no such user".into(),
                });
            }
            Err(e) => {
                return Err(PrivilegeError::User {
                    user: user.into(),
                    message: e.to_string(),
                });
            }
        },
    };
    let (uid, gid) = target;
    // 1. Keep permitted caps across setresuid.
    nix::sys::prctl::set_keepcaps(true).map_err(PrivilegeError::KeepCaps)?;
    // 2. Shrink the bounding set while CAP_SETPCAP is still effective.
    for cap in caps::runtime::thread_all_supported() {
        if !(keep.net_admin() && cap == Capability::CAP_NET_ADMIN) {
            caps::drop(None, CapSet::Bounding, cap).map_err(PrivilegeError::Bounding)?;
        }
    }
    // 3. Groups, then gid, then uid (after setuid we could not change gid).
    nix::unistd::setgroups(&[]).map_err(PrivilegeError::Groups)?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|source| PrivilegeError::SetGid { gid, source })?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|source| PrivilegeError::SetUid { uid, source })?;
    // 4. Exactly NET_ADMIN (or nothing), permitted and effective.
    caps::set(None, CapSet::Effective, &keep.kept()).map_err(caps_step("effective"))?;
    caps::set(None, CapSet::Permitted, &keep.kept()).map_err(caps_step("permitted"))?;
    // 5. Nothing inherited by children, unless the backend runs programs.
    if ambient {
        caps::set(None, CapSet::Inheritable, &only_net_admin()).map_err(caps_step("inheritable"))?;
        caps::raise(None, CapSet::Ambient, Capability::CAP_NET_ADMIN).map_err(caps_step("ambient"))?;
    } else {
        caps::clear(None, CapSet::Ambient).map_err(caps_step("ambient"))?;
        caps::clear(None, CapSet::Inheritable).map_err(caps_step("inheritable"))?;
    }
    nix::sys::prctl::set_keepcaps(false).map_err(PrivilegeError::KeepCaps)?;
    // 6. No way back up through setuid binaries or file capabilities.
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)?;
    verify(false, keep.net_admin())?;
    current(ambient)
}

/// What the process holds after the drop or the check: CAP_NET_ADMIN
/// effective when `net_admin`, and (unless `allow_extra`) nothing else
/// effective, permitted or ambient. Run at start, whichever way the helper
/// was started.
pub fn verify(allow_extra: bool, net_admin: bool) -> Result<(), PrivilegeError> {
    let read = |set, name| caps::read(None, set).map_err(caps_step(name));
    judge(
        &read(CapSet::Effective, "effective")?,
        &read(CapSet::Permitted, "permitted")?,
        &read(CapSet::Ambient, "ambient")?,
        allow_extra,
        net_admin,
    )
}

/// The rule of [`verify`] on given sets.
pub fn judge(
    effective: &CapsHashSet,
    permitted: &CapsHashSet,
    ambient: &CapsHashSet,
    allow_extra: bool,
    net_admin: bool,
) -> Result<(), PrivilegeError> {
    if net_admin && !effective.contains(&Capability::CAP_NET_ADMIN) {
        return Err(PrivilegeError::MissingNetAdmin);
    }
    let extra: CapsHashSet = effective
        .iter()
        .chain(permitted)
        .chain(ambient)
        .filter(|c| !(net_admin && **c == Capability::CAP_NET_ADMIN))
        .copied()
        .collect();
    if !extra.is_empty() && !allow_extra {
        return Err(PrivilegeError::TooMany(names(&extra).join(", ")));
    }
    Ok(())
}

/// For a helper started unprivileged: checks it has CAP_NET_ADMIN (when
/// `keep` needs it) and, unless `allow_extra`, nothing more; then sets
/// no_new_privs.
pub fn check_unprivileged(allow_extra: bool, keep: Keep) -> Result<Kept, PrivilegeError> {
    let ambient = keep == Keep::NetAdminAmbient;
    verify(allow_extra, keep.net_admin())?;
    if ambient {
        // Children need NET_ADMIN ambient; systemd's AmbientCapabilities=
        // already put it there, raise it in case we were started otherwise.
        let _ = caps::set(None, CapSet::Inheritable, &only_net_admin());
        let _ = caps::raise(None, CapSet::Ambient, Capability::CAP_NET_ADMIN);
    }
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)?;
    current(ambient)
}

fn current(ambient: bool) -> Result<Kept, PrivilegeError> {
    let eff = caps::read(None, CapSet::Effective).map_err(caps_step("effective"))?;
    Ok(Kept {
        uid: Uid::current(),
        gid: Gid::current(),
        effective: names(&eff),
        ambient,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[Capability]) -> CapsHashSet {
        caps.iter().copied().collect()
    }

    #[test]
    fn net_admin_alone_passes_anything_more_anywhere_or_less_does_not() {
        let na = set(&[Capability::CAP_NET_ADMIN]);
        let empty = set(&[]);
        assert!(judge(&na, &na, &empty, false, true).is_ok());
        assert!(judge(&na, &na, &na, false, true).is_ok());
        assert!(matches!(
            judge(&empty, &na, &empty, false, true),
            Err(PrivilegeError::MissingNetAdmin)
        ));
        let more = set(&[Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN]);
        for (e, p, a) in [(&more, &na, &empty), (&na, &more, &empty), (&na, &na, &more)] {
            assert!(
                matches!(judge(e, p, a, false, true), Err(PrivilegeError::TooMany(m)) if m.contains("CAP_SYS_ADMIN"))
            );
            assert!(judge(e, p, a, true, true).is_ok());
        }
    }

    #[test]
    fn without_net_admin_needed_any_capability_is_extra() {
        let na = set(&[Capability::CAP_NET_ADMIN]);
        let empty = set(&[]);
        assert!(judge(&empty, &empty, &empty, false, false).is_ok());
        for (e, p, a) in [
            (&na, &empty, &empty),
            (&empty, &na, &empty),
            (&empty, &empty, &na),
        ] {
            assert!(
                matches!(judge(e, p, a, false, false), Err(PrivilegeError::TooMany(m)) if m.contains("CAP_NET_ADMIN"))
            );
        }
    }
}
