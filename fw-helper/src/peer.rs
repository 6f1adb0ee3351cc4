//! Who may talk to the helper: the daemon's uid (and gid, if configured),
//! read from the kernel with SO_PEERCRED on every accepted connection.

use nix::unistd::{Gid, Uid};
use tokio::net::UnixStream;

/// The configured peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedPeer {
    pub uid: Uid,
    pub gid: Option<Gid>,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("failed to read the peer's credentials: {0}")]
    Credentials(#[source] std::io::Error),
    #[error("peer uid {uid} gid {gid} pid {pid:?} is not the allowed uid {allowed_uid}{}", .allowed_gid.map(|g| format!(" gid {g}")).unwrap_or_default())]
    NotAllowed {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        allowed_uid: Uid,
        allowed_gid: Option<Gid>,
    },
}

impl AllowedPeer {
    /// Checks the connected peer; returns its pid for the log.
    pub fn check(&self, stream: &UnixStream) -> Result<Option<i32>, PeerError> {
        let cred = stream.peer_cred().map_err(PeerError::Credentials)?;
        self.check_ids(cred.uid(), cred.gid(), cred.pid())
    }

    /// The decision itself, separated so it can be tested without sockets.
    pub fn check_ids(&self, uid: u32, gid: u32, pid: Option<i32>) -> Result<Option<i32>, PeerError> {
        let uid_ok = uid == self.uid.as_raw();
        let gid_ok = self.gid.is_none_or(|g| g.as_raw() == gid);
        if uid_ok && gid_ok {
            Ok(pid)
        } else {
            Err(PeerError::NotAllowed {
                uid,
                gid,
                pid,
                allowed_uid: self.uid,
                allowed_gid: self.gid,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_optional_gid_must_match() {
        let p = AllowedPeer {
            uid: Uid::from_raw(1000),
            gid: None,
        };
        assert!(p.check_ids(1000, 5, Some(1)).is_ok());
        assert!(p.check_ids(0, 0, Some(1)).is_err());
        let p = AllowedPeer {
            uid: Uid::from_raw(1000),
            gid: Some(Gid::from_raw(1000)),
        };
        assert!(p.check_ids(1000, 1000, None).is_ok());
        let e = p.check_ids(1000, 1001, Some(7)).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("peer uid 1000 gid 1001 pid Some(7) is not the allowed uid 1000 gid 1000")
        );
    }
}
