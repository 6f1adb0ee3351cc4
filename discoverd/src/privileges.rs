//! The daemon refuses to run privileged: as uid 0 (real or effective) or
//! holding any capability (effective, permitted or ambient). Everything
//! that needs privilege is the helper's job; a daemon started as root by
//! mistake would parse Ironic's and the ramdisks' input with it.

use caps::{CapSet, CapsHashSet};

/// Why the daemon will not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivilegeError {
    #[error(
        "refusing to run as root (uid {real}, effective uid {effective}): run ironic-discoverd as its own \
         unprivileged user (the shipped unit uses User=ironic-discoverd); only ironic-discoverd-fw-helper \
         needs privilege"
    )]
    Root { real: u32, effective: u32 },
    #[error(
        "refusing to run with capabilities ({0}): the daemon needs none; start it without them \
         (CapabilityBoundingSet= and AmbientCapabilities= empty in the unit)"
    )]
    Capabilities(String),
    #[error("cannot read this process's capabilities: {0}")]
    Read(String),
}

/// The process's capability sets that matter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl Held {
    /// This process's sets.
    pub fn current() -> Result<Self, PrivilegeError> {
        let read = |set| caps::read(None, set).map_err(|e| PrivilegeError::Read(e.to_string()));
        Ok(Held {
            effective: read(CapSet::Effective)?,
            permitted: read(CapSet::Permitted)?,
            ambient: read(CapSet::Ambient)?,
        })
    }
}

/// The rule, on given ids and sets.
pub fn judge(real_uid: u32, effective_uid: u32, held: &Held) -> Result<(), PrivilegeError> {
    if real_uid == 0 || effective_uid == 0 {
        return Err(PrivilegeError::Root {
            real: real_uid,
            effective: effective_uid,
        });
    }
    let mut listed: Vec<String> = [
        ("effective", &held.effective),
        ("permitted", &held.permitted),
        ("ambient", &held.ambient),
    ]
    .iter()
    .filter(|(_, set)| !set.is_empty())
    .map(|(name, set)| {
        let mut caps: Vec<String> = set.iter().map(ToString::to_string).collect();
        caps.sort();
        format!("{name}: {}", caps.join(" "))
    })
    .collect();
    if listed.is_empty() {
        return Ok(());
    }
    listed.sort();
    Err(PrivilegeError::Capabilities(listed.join("; ")))
}

/// Checks this process.
pub fn check() -> Result<(), PrivilegeError> {
    judge(
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
        &Held::current()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use caps::Capability;

    #[test]
    fn root_and_any_capability_are_refused_an_unprivileged_user_is_not() {
        let none = Held::default();
        assert_eq!(judge(1000, 1000, &none), Ok(()));
        assert!(matches!(judge(0, 1000, &none), Err(PrivilegeError::Root { .. })));
        assert!(matches!(judge(1000, 0, &none), Err(PrivilegeError::Root { .. })));
        for which in 0..3 {
            let mut held = Held::default();
            let set = [&mut held.effective, &mut held.permitted, &mut held.ambient][which]
                .insert(Capability::CAP_NET_BIND_SERVICE);
            assert!(set);
            let err = judge(1000, 1000, &held)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("CAP_NET_BIND_SERVICE"), "{err}");
        }
    }
}
