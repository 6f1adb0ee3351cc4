//! The helper's own nfnetlink socket: one `sendmsg` per batch, buffers
//! sized to the batch, ACKs read back and failures mapped to the message
//! that caused them, and the one dump we need (set elements) parsed here.
//!
//! rustables builds the messages; its own `Batch::send()` uses the default
//! socket buffers (EMSGSIZE above ~10 k MACs) and asks for an ACK per
//! message (ENOBUFS on large batches although the kernel committed), see
//! shared/spec/nftables.md §4. This module avoids both.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
/// Batch begin/end carry no nftables object.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
const NFPROTO_INET: u8 = 1;
// nf_tables.h attribute numbers (kernel ABI, stable).
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// How long we wait for the kernel's answer to one transaction.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// A netlink failure, with the sequence number of the message the kernel
/// rejected when there is one.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("failed to open a netfilter netlink socket: {0}")]
    Open(#[source] Errno),
    #[error("failed to send a {len}-byte batch: {source}")]
    Send {
        len: usize,
        #[source]
        source: Errno,
    },
    #[error("failed to read the kernel's answer: {0}")]
    Recv(#[source] Errno),
    #[error("the kernel rejected message {seq}: {errno}")]
    Rejected { seq: u32, errno: Errno },
    #[error("malformed netlink message from the kernel: {0}")]
    Malformed(&'static str),
}

/// One parsed netlink message header and its payload.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// The port id of the socket the message came from (for a change
    /// notification: the socket that sent the transaction).
    pub pid: u32,
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a buffer into netlink messages.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Message<'_>, NetlinkError>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let parsed = (|| {
            let len = u32_at(buf, at)? as usize;
            let kind = u16_at(buf, at + 4)?;
            let flags = u16_at(buf, at + 6)?;
            let seq = u32_at(buf, at + 8)?;
            let pid = u32_at(buf, at + 12)?;
            let payload = buf.get(at + NLMSG_HDRLEN..at + len)?;
            Some((
                len,
                Message {
                    kind,
                    flags,
                    seq,
                    pid,
                    payload,
                },
            ))
        })();
        match parsed {
            Some((len, m)) if len >= NLMSG_HDRLEN => {
                at += align4(len);
                Some(Ok(m))
            }
            _ => {
                at = buf.len();
                Some(Err(NetlinkError::Malformed("truncated message")))
            }
        }
    })
}

/// Netlink attributes of a payload: `(type without flags, value)`.
pub fn attributes(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = u16_at(buf, at)? as usize;
        let kind = u16_at(buf, at + 2)? & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        let value = buf.get(at + 4..at + len)?;
        at += align4(len);
        Some((kind, value))
    })
}

/// A bound netfilter netlink socket.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    pub fn open() -> Result<Self, NetlinkError> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(NetlinkError::Open)?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(NetlinkError::Open)?;
        let tv = TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(NetlinkError::Open)?;
        Ok(Socket { fd })
    }

    /// The netlink port id the kernel bound this socket to.
    pub fn portid(&self) -> Result<u32, NetlinkError> {
        socket::getsockname::<NetlinkAddr>(self.fd.as_raw_fd())
            .map(|a| a.pid())
            .map_err(NetlinkError::Open)
    }

    /// Sizes the buffers for a batch of `len` bytes. `*BUFFORCE` needs
    /// CAP_NET_ADMIN in the initial user namespace; where it is refused
    /// (rootless namespaces) the capped `SO_SNDBUF`/`SO_RCVBUF` are tried.
    fn size_for(&self, len: usize) {
        let snd = len + 64 * 1024;
        // Only the last message asks for an ACK, but errors come one per
        // failing message; leave room for a few.
        let rcv = 1024 * 1024;
        let snd_i = snd.min(i32::MAX as usize);
        if socket::setsockopt(&self.fd, sockopt::SndBufForce, &snd_i).is_err() {
            let _ = socket::setsockopt(&self.fd, sockopt::SndBuf, &snd_i);
        }
        if socket::setsockopt(&self.fd, sockopt::RcvBufForce, &rcv).is_err() {
            let _ = socket::setsockopt(&self.fd, sockopt::RcvBuf, &rcv);
        }
    }

    /// Sends a finalized rustables batch and waits for the kernel's verdict.
    ///
    /// The ACK flag is cleared on every message but the last object, so
    /// the kernel answers once on success; errors are reported regardless.
    /// Returns the first rejected message's sequence number on failure.
    pub fn transact(&self, mut batch: Vec<u8>) -> Result<(), NetlinkError> {
        let last_seq = only_ack_last(&mut batch)?;
        self.size_for(batch.len());
        let sent = socket::send(self.fd.as_raw_fd(), &batch, MsgFlags::empty()).map_err(|source| {
            NetlinkError::Send {
                len: batch.len(),
                source,
            }
        })?;
        if sent != batch.len() {
            return Err(NetlinkError::Send {
                len: batch.len(),
                source: Errno::EMSGSIZE,
            });
        }
        let mut buf = vec![0u8; 256 * 1024];
        let mut first_error: Option<(u32, Errno)> = None;
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                // After an error, stop waiting once the kernel has gone quiet.
                Err(Errno::EAGAIN) if first_error.is_some() => break,
                Err(e) => return Err(NetlinkError::Recv(e)),
            };
            for m in messages(&buf[..n]) {
                let m = m?;
                if m.kind != NLMSG_ERROR {
                    continue;
                }
                let code = m
                    .payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                let code = code.ok_or(NetlinkError::Malformed("short error message"))?;
                if code != 0 && first_error.is_none() {
                    first_error = Some((m.seq, Errno::from_raw(code.abs())));
                    // Drain what else the kernel reports, without blocking long.
                    let tv = TimeVal::new(0, 200_000);
                    let _ = socket::setsockopt(&self.fd, sockopt::ReceiveTimeout, &tv);
                }
                if m.seq == last_seq {
                    return match first_error {
                        None => Ok(()),
                        Some((seq, errno)) => Err(NetlinkError::Rejected { seq, errno }),
                    };
                }
            }
        }
        match first_error {
            Some((seq, errno)) => Err(NetlinkError::Rejected { seq, errno }),
            None => Err(NetlinkError::Malformed("no answer for the last message")),
        }
    }

    /// The nf_tables generation of this network namespace: it grows by one
    /// with every committed transaction, whoever sent it.
    pub fn generation(&self) -> Result<u32, NetlinkError> {
        let mut req = Vec::with_capacity(NLMSG_HDRLEN + NFGENMSG_LEN);
        req.extend_from_slice(&((NLMSG_HDRLEN + NFGENMSG_LEN) as u32).to_ne_bytes());
        req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
        req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        req.extend_from_slice(&1u32.to_ne_bytes()); // seq
        req.extend_from_slice(&0u32.to_ne_bytes()); // pid
        req.extend_from_slice(&[0u8; NFGENMSG_LEN]);
        socket::send(self.fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(|source| NetlinkError::Send {
            len: req.len(),
            source,
        })?;
        let mut buf = vec![0u8; 4096];
        let n = socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(NetlinkError::Recv)?;
        for m in messages(&buf[..n]) {
            let m = m?;
            if m.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
                let attrs = m.payload.get(NFGENMSG_LEN..).unwrap_or_default();
                if let Some((_, v)) = attributes(attrs).find(|(k, _)| *k == NFTA_GEN_ID)
                    && let Ok(id) = <[u8; 4]>::try_from(v)
                {
                    return Ok(u32::from_be_bytes(id));
                }
            }
        }
        Err(NetlinkError::Malformed("no generation in the answer"))
    }

    /// Reads every element key of `table`/`set` in the inet family.
    pub fn dump_set_keys(&self, table: &str, set: &str) -> Result<Vec<Vec<u8>>, NetlinkError> {
        let mut req = Vec::with_capacity(64);
        req.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
        req.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // nfgenmsg: family, version, res_id
        push_str_attr(&mut req, NFTA_SET_ELEM_LIST_TABLE, table);
        push_str_attr(&mut req, NFTA_SET_ELEM_LIST_SET, set);
        let len = u32::try_from(req.len()).map_err(|_| NetlinkError::Malformed("request too long"))?;
        req[0..4].copy_from_slice(&len.to_ne_bytes());
        req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM).to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        let _ = socket::setsockopt(&self.fd, sockopt::RcvBuf, &(4 * 1024 * 1024));
        socket::send(self.fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(|source| NetlinkError::Send {
            len: req.len(),
            source,
        })?;
        let mut keys = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n =
                socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(NetlinkError::Recv)?;
            if n == 0 {
                return Ok(keys);
            }
            for m in messages(&buf[..n]) {
                let m = m?;
                match m.kind {
                    NLMSG_DONE => return Ok(keys),
                    NLMSG_ERROR => {
                        let code = m
                            .payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or(NetlinkError::Malformed("short error message"))?;
                        if code != 0 {
                            return Err(NetlinkError::Rejected {
                                seq: m.seq,
                                errno: Errno::from_raw(code.abs()),
                            });
                        }
                    }
                    _ => collect_keys(m.payload.get(NFGENMSG_LEN..).unwrap_or_default(), &mut keys),
                }
            }
        }
    }
}

fn push_str_attr(buf: &mut Vec<u8>, kind: u16, value: &str) {
    let len = 4 + value.len() + 1;
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value.as_bytes());
    buf.push(0);
    buf.resize(align4(buf.len()), 0);
}

fn collect_keys(attrs: &[u8], keys: &mut Vec<Vec<u8>>) {
    for (kind, list) in attributes(attrs) {
        if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (kind, elem) in attributes(list) {
            if kind != NFTA_LIST_ELEM {
                continue;
            }
            for (kind, key) in attributes(elem) {
                if kind != NFTA_SET_ELEM_KEY {
                    continue;
                }
                for (kind, value) in attributes(key) {
                    if kind == NFTA_DATA_VALUE {
                        keys.push(value.to_vec());
                    }
                }
            }
        }
    }
}

/// Clears `NLM_F_ACK` on every message of a finalized batch except the
/// last nftables object, and returns that object's sequence number.
fn only_ack_last(batch: &mut [u8]) -> Result<u32, NetlinkError> {
    let mut offsets = Vec::new();
    let mut last = None;
    for (i, m) in messages(batch).enumerate() {
        let m = m?;
        if m.kind != NFNL_MSG_BATCH_BEGIN && m.kind != NFNL_MSG_BATCH_END {
            last = Some((i, m.seq));
        }
        offsets.push(i);
    }
    let (last_index, last_seq) = last.ok_or(NetlinkError::Malformed("empty batch"))?;
    let mut at = 0;
    let mut index = 0;
    while at + NLMSG_HDRLEN <= batch.len() {
        let len = u32_at(batch, at).ok_or(NetlinkError::Malformed("truncated batch"))? as usize;
        let flags = u16_at(batch, at + 6).ok_or(NetlinkError::Malformed("truncated batch"))?;
        let flags = if index == last_index {
            flags | NLM_F_ACK
        } else {
            flags & !NLM_F_ACK
        };
        batch[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
        at += align4(len.max(NLMSG_HDRLEN));
        index += 1;
    }
    Ok(last_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    #[test]
    fn only_the_last_object_asks_for_an_ack() -> Result<(), NetlinkError> {
        let mut batch = msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST | NLM_F_ACK, 0, &[0; 4]);
        batch.extend(msg(0xa00, NLM_F_REQUEST | NLM_F_ACK, 1, &[0; 4]));
        batch.extend(msg(0xa01, NLM_F_REQUEST | NLM_F_ACK, 2, &[0; 8]));
        batch.extend(msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 3, &[0; 4]));
        assert_eq!(only_ack_last(&mut batch)?, 2);
        let flags: Vec<u16> = messages(&batch).filter_map(Result::ok).map(|m| m.flags).collect();
        assert_eq!(
            flags,
            vec![
                NLM_F_REQUEST,
                NLM_F_REQUEST,
                NLM_F_REQUEST | NLM_F_ACK,
                NLM_F_REQUEST
            ]
        );
        Ok(())
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let mut m = msg(0xa00, 0, 1, &[1, 2, 3, 4]);
        m.truncate(18);
        m[0..4].copy_from_slice(&100u32.to_ne_bytes());
        assert!(messages(&m).any(|r| r.is_err()));
        assert!(only_ack_last(&mut m).is_err());
    }

    #[test]
    fn nested_set_element_keys_are_collected() {
        fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
            let mut a = Vec::new();
            a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            a.extend_from_slice(&kind.to_ne_bytes());
            a.extend_from_slice(value);
            a.resize(align4(a.len()), 0);
            a
        }
        let key = |mac: [u8; 6]| {
            attr(
                NFTA_LIST_ELEM,
                &attr(NFTA_SET_ELEM_KEY, &attr(NFTA_DATA_VALUE, &mac)),
            )
        };
        let mut elems = key([2, 0, 0, 0, 0, 1]);
        elems.extend(key([2, 0, 0, 0, 0, 2]));
        let mut payload = attr(NFTA_SET_ELEM_LIST_TABLE, b"t\0");
        payload.extend(attr(NFTA_SET_ELEM_LIST_ELEMENTS | 0x8000, &elems));
        let mut keys = Vec::new();
        collect_keys(&payload, &mut keys);
        assert_eq!(keys, vec![vec![2, 0, 0, 0, 0, 1], vec![2, 0, 0, 0, 0, 2]]);
    }
}
