//! The filter defends itself: a socket subscribed to nf_tables' change
//! notifications (the ones `nft monitor` prints), and a thread that puts
//! the helper's last state back as soon as anybody else's transaction
//! touched its table — `nft flush ruleset` (what a reload of
//! nftables.service or firewalld does), `nft delete table`, a hand edit of
//! the set or of a rule.
//!
//! Each notification names the table of the object it is about and
//! carries the port id of the socket that sent the transaction; the
//! transaction ends with a NEWGEN message. The helper's own transactions
//! come from sockets whose port ids it notes ([`note_own_portid`]), so it
//! never takes its own changes for tampering. When the kernel had to drop
//! notifications (ENOBUFS: a big transaction overflowed the socket) the
//! thread reads the table back and compares it with the mirror instead.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;

use super::Filter;
use super::NFT_TABLE as TABLE;
use super::netlink::{Message, NetlinkError, Socket, attributes, messages};

/// nfnetlink multicast group of nf_tables changes (NFNLGRP_NFTABLES).
const NFNLGRP_NFTABLES: u32 = 7;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_INET: u8 = 1;
const NFGENMSG_LEN: usize = 4;
/// NFT_MSG_NEWGEN: the last notification of every transaction.
const NFT_MSG_NEWGEN: u16 = 15;
/// Attribute 1 is the table name in table, chain, rule, set and
/// set-element messages alike (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, ...).
const ATTR_TABLE: u16 = 1;
/// How many of our own recent port ids are remembered; sockets are opened
/// per transaction and their notifications are read within milliseconds.
const OWN_PORTIDS: usize = 64;
/// Receive buffer: notifications of a 100 k-element sync of our own fit.
const RCVBUF: usize = 32 * 1024 * 1024;
/// Pause before trying again after a failed restore.
const RETRY: Duration = Duration::from_millis(200);

static OWN: Mutex<VecDeque<u32>> = Mutex::new(VecDeque::new());
/// The watch socket (a duplicate), for [`Quiet`].
static WATCH_FD: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Records the port id of a socket the helper sends transactions on.
pub fn note_own_portid(portid: u32) {
    if let Ok(mut own) = OWN.lock() {
        if own.len() == OWN_PORTIDS {
            own.pop_front();
        }
        own.push_back(portid);
    }
}

fn is_own(portid: u32) -> bool {
    OWN.lock().is_ok_and(|own| own.contains(&portid))
}

fn membership(fd: &OwnedFd, join: bool) -> Result<(), Errno> {
    let group = libc::c_int::try_from(NFNLGRP_NFTABLES).unwrap_or(libc::c_int::MAX);
    let option = if join {
        libc::NETLINK_ADD_MEMBERSHIP
    } else {
        libc::NETLINK_DROP_MEMBERSHIP
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(0);
    // SAFETY: `fd` is an open socket for the duration of the call, and the
    // option value points to a live c_int of the length given.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            option,
            std::ptr::from_ref(&group).cast(),
            len,
        )
    };
    if r == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// The helper's own big transaction, with its watch deaf meanwhile.
///
/// The kernel writes one change notification per set element for every
/// socket that listens (so `nft monitor` shows each): for a refill of
/// 100 000 MACs that doubles the commit's time, which a restore waits for.
/// The watch does not need to hear the helper's own change, so it leaves
/// the notification group for the transaction and joins again after.
/// Whatever anybody else committed in that window went unheard; the
/// nf_tables generation (one per committed transaction) tells: if it moved
/// by more than the helper's own commit, [`Quiet::end`] says so and the
/// caller writes its whole state again, listening.
#[derive(Debug)]
pub struct Quiet {
    fd: OwnedFd,
    socket: Socket,
    before: u32,
}

impl Quiet {
    /// `None` when there is no watch (or it cannot leave the group): the
    /// transaction is then sent with the watch listening, as any other.
    pub fn begin() -> Option<Quiet> {
        let fd = WATCH_FD.lock().ok()?.as_ref()?.try_clone().ok()?;
        let socket = Socket::open().ok()?;
        membership(&fd, false).ok()?;
        match socket.generation() {
            Ok(before) => Some(Quiet { fd, socket, before }),
            Err(e) => {
                tracing::debug!(error = %e, "no nf_tables generation; transaction sent with the watch listening");
                let _ = membership(&fd, true);
                None
            }
        }
    }

    /// Joins the group again. True when nobody else committed a transaction
    /// since [`Quiet::begin`] (`committed`: whether the helper's own did).
    pub fn end(self, committed: bool) -> bool {
        if let Err(e) = membership(&self.fd, true) {
            tracing::error!(error = %e, "the nf_tables watch could not listen again; the filter is no longer defended");
            return false;
        }
        let expected = self.before.wrapping_add(u32::from(committed));
        match self.socket.generation() {
            Ok(now) if now == expected => true,
            Ok(now) => {
                tracing::info!(
                    transactions = now.wrapping_sub(expected),
                    "nf_tables changed by someone else during the helper's own transaction"
                );
                false
            }
            Err(_) => false,
        }
    }
}

/// What a notification is about, as far as the watch cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A change to an object of our table: the nf_tables message name.
    Ours(&'static str),
    /// The end of a transaction.
    EndOfTransaction,
    /// Anything else (other tables, other families, other subsystems).
    Other,
}

fn message_name(msg: u16) -> &'static str {
    match msg {
        0 => "NEWTABLE",
        2 => "DELTABLE",
        3 => "NEWCHAIN",
        5 => "DELCHAIN",
        6 => "NEWRULE",
        8 => "DELRULE",
        9 => "NEWSET",
        11 => "DELSET",
        12 => "NEWSETELEM",
        14 => "DELSETELEM",
        _ => "another change",
    }
}

/// Pure: classifies one notification. Never panics on short or odd input.
pub fn classify(kind: u16, payload: &[u8]) -> Notice {
    if kind >> 8 != NFNL_SUBSYS_NFTABLES {
        return Notice::Other;
    }
    let msg = kind & 0xff;
    if msg == NFT_MSG_NEWGEN {
        return Notice::EndOfTransaction;
    }
    if payload.first() != Some(&NFPROTO_INET) {
        return Notice::Other;
    }
    let attrs = payload.get(NFGENMSG_LEN..).unwrap_or_default();
    let ours = attributes(attrs)
        .any(|(k, v)| k == ATTR_TABLE && v.strip_suffix(&[0]).unwrap_or(v) == TABLE.as_bytes());
    if ours {
        Notice::Ours(message_name(msg))
    } else {
        Notice::Other
    }
}

/// A socket subscribed to nf_tables change notifications.
#[derive(Debug)]
pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    pub fn open() -> Result<Self, NetlinkError> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(NetlinkError::Open)?;
        if socket::setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
            let _ = socket::setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
        }
        let groups = 1u32 << (NFNLGRP_NFTABLES - 1);
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(NetlinkError::Open)?;
        Ok(Watch { fd })
    }

    /// Lets the helper's own big transactions mute this watch ([`Quiet`]).
    pub fn serve_quiet(&self) -> Result<(), NetlinkError> {
        let dup = self
            .fd
            .try_clone()
            .map_err(|e| NetlinkError::Open(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        if let Ok(mut slot) = WATCH_FD.lock() {
            *slot = Some(dup);
        }
        Ok(())
    }

    /// Blocks for the next batch of notifications and classifies them,
    /// each with the port id of the sender (for benchmarks and tools; the
    /// helper's own loop is [`run`]).
    pub fn recv_notices(&self) -> Result<Vec<(Notice, u32)>, NetlinkError> {
        let mut buf = vec![0u8; 256 * 1024];
        let n = socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(NetlinkError::Recv)?;
        messages(&buf[..n])
            .map(|m| m.map(|m| (classify(m.kind, m.payload), m.pid)))
            .collect()
    }

    fn set_timeout(&self, t: Option<Duration>) {
        let tv = match t {
            Some(t) => TimeVal::new(t.as_secs() as _, t.subsec_micros() as _),
            None => TimeVal::new(0, 0),
        };
        let _ = socket::setsockopt(&self.fd, sockopt::ReceiveTimeout, &tv);
    }
}

/// What to do after a batch of notifications.
enum Todo {
    Nothing,
    Restore(String),
    Check,
}

/// Watches forever (run it on its own thread), restoring `filter`'s
/// mirror after every foreign change to our table.
pub fn run(watch: Watch, filter: Arc<Mutex<Filter>>) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pending: Vec<&'static str> = Vec::new();
    let mut retry = false;
    loop {
        watch.set_timeout(retry.then_some(RETRY));
        let todo = match socket::recv(watch.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => {
                let mut todo = Todo::Nothing;
                for m in messages(&buf[..n]) {
                    let Ok(m): Result<Message<'_>, _> = m else {
                        todo = Todo::Check;
                        break;
                    };
                    match classify(m.kind, m.payload) {
                        Notice::Ours(what) if !is_own(m.pid) && !pending.contains(&what) => {
                            pending.push(what);
                        }
                        Notice::EndOfTransaction if !pending.is_empty() => {
                            todo = Todo::Restore(format!(
                                "{} on table inet {TABLE} from netlink port {}",
                                pending.join(", "),
                                m.pid
                            ));
                            pending.clear();
                        }
                        _ => {}
                    }
                }
                todo
            }
            Err(Errno::ENOBUFS) => {
                tracing::debug!("change notifications were lost; reading the filter back");
                pending.clear();
                Todo::Check
            }
            Err(Errno::EAGAIN | Errno::EINTR) if retry => Todo::Check,
            Err(Errno::EAGAIN | Errno::EINTR) => Todo::Nothing,
            Err(e) => {
                tracing::error!(error = %e, "the nf_tables watch failed; the filter is no longer defended");
                return;
            }
        };
        let result = match (&todo, filter.lock()) {
            (Todo::Nothing, _) => continue,
            (_, Err(_)) => {
                tracing::error!("filter lock poisoned; the watch stops");
                return;
            }
            (Todo::Restore(what), Ok(mut f)) => f.restore(what),
            (Todo::Check, Ok(mut f)) => f.check().map(|_| ()),
        };
        retry = match result {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(error = %e, "failed to restore the filter; trying again");
                true
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(family: u8, table: &[u8]) -> Vec<u8> {
        let mut p = vec![family, 0, 0, 0];
        let len = 4 + table.len();
        p.extend_from_slice(&(len as u16).to_ne_bytes());
        p.extend_from_slice(&ATTR_TABLE.to_ne_bytes());
        p.extend_from_slice(table);
        p.resize((p.len() + 3) & !3, 0);
        p
    }

    const K: u16 = NFNL_SUBSYS_NFTABLES << 8;

    #[test]
    fn notifications_about_our_table_are_recognised() {
        assert_eq!(
            classify(K | 2, &payload(NFPROTO_INET, b"ironic_discoverd\0")),
            Notice::Ours("DELTABLE")
        );
        assert_eq!(
            classify(K | 14, &payload(NFPROTO_INET, b"ironic_discoverd\0")),
            Notice::Ours("DELSETELEM")
        );
        assert_eq!(classify(K | NFT_MSG_NEWGEN, &[]), Notice::EndOfTransaction);
    }

    #[test]
    fn other_tables_families_and_subsystems_are_not_ours() {
        assert_eq!(
            classify(K | 2, &payload(NFPROTO_INET, b"firewalld\0")),
            Notice::Other
        );
        // A name that merely starts like ours.
        assert_eq!(
            classify(K | 2, &payload(NFPROTO_INET, b"ironic_discoverd2\0")),
            Notice::Other
        );
        assert_eq!(classify(K | 2, &payload(2, b"ironic_discoverd\0")), Notice::Other);
        assert_eq!(
            classify((11 << 8) | 2, &payload(NFPROTO_INET, b"ironic_discoverd\0")),
            Notice::Other
        );
    }

    #[test]
    fn truncated_and_odd_payloads_never_panic() {
        let full = payload(NFPROTO_INET, b"ironic_discoverd\0");
        for cut in 0..full.len() {
            let _ = classify(K | 2, &full[..cut]);
        }
        let mut odd = full.clone();
        odd[4..6].copy_from_slice(&0xffffu16.to_ne_bytes());
        assert_eq!(classify(K | 2, &odd), Notice::Other);
        odd[4..6].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(classify(K | 2, &odd), Notice::Other);
    }
}
