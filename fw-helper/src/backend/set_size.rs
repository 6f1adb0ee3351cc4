//! The size the MAC set is created with.
//!
//! A set created without a size is a resizable hash (rhashtable) that the
//! kernel grows in steps while a batch fills it; told its size up front
//! (`NFTA_SET_DESC_SIZE`, what `nft add set … { size N; }` sends) the kernel
//! picks a fixed-size hash sized for it once. Refilling 100 000 MACs then
//! costs about a third of the kernel time (BENCHMARKS.md, "DHCP filter
//! restore"), which is what a restore after `nft flush ruleset` waits for.
//!
//! The size is also a hard limit: the kernel refuses (`ENFILE`) an element
//! beyond it. So the set is created with room to grow ([`capacity_for`]) and
//! the backend recreates it, larger, when a change would not fit.
//!
//! rustables' `Set` has no field for the size, so [`with_capacity`] adds the
//! attributes to the finished batch's `NEWSET` messages.

use super::netlink::{Message, messages};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSET: u16 = 9;
// nf_tables.h attribute numbers (kernel ABI, stable).
const NFTA_SET_POLICY: u16 = 8;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// `NFT_SET_POL_PERFORMANCE`: lookups before memory (nft's default).
const POLICY_PERFORMANCE: u32 = 0;
const NLMSG_HDRLEN: usize = 16;

/// The smallest set created: a few KiB of kernel memory, and no recreation
/// while an install grows through its first thousands of nodes.
pub const MIN_CAPACITY: usize = 4096;

/// The size to create a set for `n` elements with: room for twice as many,
/// at least [`MIN_CAPACITY`], at most what the attribute holds.
pub fn capacity_for(n: usize) -> u32 {
    let wanted = n.saturating_mul(2).max(MIN_CAPACITY);
    u32::try_from(wanted.checked_next_power_of_two().unwrap_or(wanted)).unwrap_or(u32::MAX)
}

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Pure: `batch` with every `NEWSET` message told `capacity` elements and
/// the performance policy. Other messages are copied as they are.
pub fn with_capacity(batch: &[u8], capacity: u32) -> Vec<u8> {
    let mut desc = Vec::with_capacity(8);
    attribute(&mut desc, NFTA_SET_DESC_SIZE, &capacity.to_be_bytes());
    let mut extra = Vec::with_capacity(24);
    attribute(&mut extra, NFTA_SET_POLICY, &POLICY_PERFORMANCE.to_be_bytes());
    attribute(&mut extra, NFTA_SET_DESC | NLA_F_NESTED, &desc);

    let mut out = Vec::with_capacity(batch.len() + extra.len());
    for m in messages(batch) {
        let Ok(Message {
            kind,
            flags,
            seq,
            pid,
            payload,
        }) = m
        else {
            // Not a batch we built: leave it to the kernel to refuse.
            return batch.to_vec();
        };
        let is_newset = kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSET;
        let body_len = payload.len().next_multiple_of(4) + if is_newset { extra.len() } else { 0 };
        let len = u32::try_from(NLMSG_HDRLEN + body_len).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&pid.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(4), 0);
        if is_newset {
            out.extend_from_slice(&extra);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::netlink::attributes;

    #[test]
    fn capacity_leaves_room_and_has_a_floor() {
        assert_eq!(capacity_for(0), 4096);
        assert_eq!(capacity_for(2048), 4096);
        assert_eq!(capacity_for(2049), 8192);
        assert_eq!(capacity_for(100_000), 262_144);
        assert_eq!(capacity_for(usize::MAX), u32::MAX);
    }

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&u32::try_from(16 + payload.len()).unwrap_or(0).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[1, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(payload);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn only_newset_messages_get_the_size() {
        let newset = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSET;
        let newrule = (NFNL_SUBSYS_NFTABLES << 8) | 6;
        // nfgenmsg, then a name attribute of 3 bytes (padded).
        let body = [1u8, 0, 0, 0, 7, 0, 2, 0, b'a', b'b', b'c', 0];
        let mut batch = message(newrule, &body);
        batch.extend(message(newset, &body));
        batch.extend(message(newrule, &body));
        let out = with_capacity(&batch, 8192);
        let parsed: Vec<Message<'_>> = messages(&out).filter_map(Result::ok).collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].payload, &body[..]);
        assert_eq!(parsed[2].payload, &body[..]);
        assert_eq!(parsed[1].seq, 7);
        let attrs: Vec<(u16, Vec<u8>)> = attributes(&parsed[1].payload[4..])
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(attrs[0], (2, b"abc".to_vec()));
        assert_eq!(attrs[1], (NFTA_SET_POLICY, 0u32.to_be_bytes().to_vec()));
        assert_eq!(attrs[2].0, NFTA_SET_DESC);
        let inner: Vec<(u16, Vec<u8>)> = attributes(&attrs[2].1).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(inner, vec![(NFTA_SET_DESC_SIZE, 8192u32.to_be_bytes().to_vec())]);
    }

    #[test]
    fn a_truncated_batch_is_left_as_it_is() {
        let newset = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSET;
        let batch = message(newset, &[1, 0, 0, 0]);
        let cut = &batch[..batch.len() - 2];
        assert_eq!(with_capacity(cut, 4096), cut.to_vec());
    }
}
