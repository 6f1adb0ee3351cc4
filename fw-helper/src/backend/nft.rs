//! The nftables filter as one table, and the pure functions that build the
//! netlink batches changing it (rustables messages); `nft_backend.rs` sends
//! them and reads the table back.
//!
//! ```text
//! table inet ironic_discoverd {            # userdata: {"mode":..,"interfaces":[..]}
//!     set denied { type ether_addr; size 4096; }   # or "allowed"; size: set_size.rs
//!     chain dhcp_filter {
//!         type filter hook input priority filter; policy accept;
//!         iifname "IF" udp dport 67 ether saddr @denied counter drop          # deny mode
//!         iifname "IF" udp dport 67 @th,72,16 0x0106 @th,288,48 @denied counter drop
//!         iifname "IF" udp dport 67 ether saddr @allowed counter accept       # allow mode
//!         iifname "IF" udp dport 67 @th,72,16 0x0106 @th,288,48 @allowed counter accept
//!         iifname "IF" udp dport 67 counter drop
//!     }
//! }
//! ```
//! The `@th` rules match the client hardware address inside the BOOTP
//! header (`chaddr`, 36 bytes into the UDP datagram, when `htype` is 1 =
//! Ethernet and `hlen` is 6), so a request a DHCP relay forwarded — whose
//! Ethernet source is the relay's — is filtered by the node's MAC too. The
//! kernel's payload expression reads at most what the packet holds: a
//! datagram too short for the header does not match (it never reads past
//! the end). They can be turned off (`match_chaddr = false`).
//! The expressions are the ones `nft` itself emits for that text, so
//! `nft list` shows the rules as written (shared/spec/nftables.md §3).
//! With `match_dhcpv6` (the default) each interface also gets the DHCPv6
//! rules of [`super::dhcpv6`], after the DHCPv4 ones, on the same set.

use common::{FilterMode, InterfaceName, MacAddr};
use rustables::expr::{
    Cmp, CmpOp, Counter, HighLevelPayload, Immediate, LLHeaderField, Lookup, Meta, MetaType, VerdictKind,
};
use rustables::set::SetElementList;
use rustables::{Batch, Chain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily, Set, Table};
use serde::{Deserialize, Serialize};

pub use super::nft_backend::Nftables;
use super::nft_expr::{rule_prefix, transport_payload};
use super::set_size;
use super::{Applied, BackendError};

pub const TABLE: &str = super::NFT_TABLE;
pub const CHAIN: &str = "dhcp_filter";
/// Elements per NEWSETELEM message. One message holds at most 3276 MACs
/// before the u16 attribute length silently wraps (nftables.md §4.1).
pub const CHUNK: usize = 2048;
const DHCP_SERVER_PORT: u16 = 67;
const ARPHRD_ETHER: u16 = 1;
/// Offset in the UDP datagram of the BOOTP `htype`,`hlen` pair (8-byte UDP
/// header + 1, after `op`), and the value that means a 6-byte Ethernet
/// address.
const BOOTP_HTYPE_HLEN_AT: u32 = 8 + 1;
const BOOTP_HTYPE_HLEN_ETHER: u16 = 0x0106;
/// Offset of `chaddr` (8-byte UDP header + 28).
const BOOTP_CHADDR_AT: u32 = 8 + 28;
/// nft's `ether_addr` data type.
const TYPE_ETHER_ADDR: u32 = 9;

/// What a batch message was, so a kernel error can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Table,
    Chain,
    Set,
    Rule(InterfaceName),
    Elements { first: usize, count: usize },
    Flush,
}

/// A finalized batch and the object behind each sequence number.
#[derive(Debug)]
pub struct PlannedBatch {
    pub bytes: Vec<u8>,
    /// `objects[seq - 1]` is the object sent with sequence number `seq`.
    pub objects: Vec<Object>,
}

impl PlannedBatch {
    pub(super) fn object_for(&self, seq: u32) -> Option<&Object> {
        (seq as usize).checked_sub(1).and_then(|i| self.objects.get(i))
    }
}

struct Mac(MacAddr);

impl rustables::data_type::DataType for Mac {
    const TYPE: u32 = TYPE_ETHER_ADDR;
    const LEN: u32 = 6;
    fn data(&self) -> Vec<u8> {
        self.0.octets().to_vec()
    }
}

/// Table metadata kept in the kernel (table userdata), so a restarted
/// helper can report exactly what is applied.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Meta0 {
    pub(super) mode: FilterMode,
    pub(super) interfaces: Vec<InterfaceName>,
}

pub(super) fn set_name(mode: FilterMode) -> &'static str {
    match mode {
        FilterMode::Deny => "denied",
        FilterMode::Allow => "allowed",
    }
}

pub(super) fn table(userdata: Option<Vec<u8>>) -> Table {
    let t = Table::new(ProtocolFamily::Inet).with_name(TABLE);
    match userdata {
        Some(u) => t.with_userdata(u),
        None => t,
    }
}

fn set_for(t: &Table, mode: FilterMode) -> Result<Set, BackendError> {
    let (mut set, _) = rustables::set::SetBuilder::<Mac>::new(set_name(mode), t)
        .map_err(|e| BackendError::Build(e.to_string()))?
        .finish();
    // SetBuilder leaves the family unset (kernel: ENOENT) and no id (EINVAL).
    set.family = ProtocolFamily::Inet;
    set.set_id(1u32);
    Ok(set)
}

/// The messages adding `macs` to the set, `CHUNK` per message.
fn add_elements(
    batch: &mut Batch,
    objects: &mut Vec<Object>,
    t: &Table,
    mode: FilterMode,
    macs: &[MacAddr],
    kind: MsgType,
) -> Result<(), BackendError> {
    for (i, chunk) in macs.chunks(CHUNK).enumerate() {
        let mut b = rustables::set::SetBuilder::<Mac>::new(set_name(mode), t)
            .map_err(|e| BackendError::Build(e.to_string()))?;
        for m in chunk {
            b.add(&Mac(*m));
        }
        let (_, mut list) = b.finish();
        list.family = ProtocolFamily::Inet;
        batch.add(&list, kind);
        objects.push(Object::Elements {
            first: i * CHUNK,
            count: chunk.len(),
        });
    }
    Ok(())
}

/// What the rules match besides the Ethernet source of DHCPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matching {
    /// The client's MAC inside relayed requests (BOOTP `chaddr`; for
    /// DHCPv6 the RFC 6939 option or a DUID-LL/LLT at a fixed place).
    pub chaddr: bool,
    /// DHCPv6 (UDP 547) too.
    pub dhcpv6: bool,
}

impl Default for Matching {
    fn default() -> Self {
        Matching {
            chaddr: true,
            dhcpv6: true,
        }
    }
}

/// Pure: the batch that replaces the whole table with `state`, its set
/// created for `capacity` elements ([`super::set_size`]).
///
/// `NEWTABLE, DELTABLE` first makes the delete safe when nothing exists;
/// everything after re-creates the table, so the kernel swaps old for new
/// in one transaction and no half-built filter is ever visible.
pub fn replace_batch(
    state: &Applied,
    matching: Matching,
    capacity: u32,
) -> Result<PlannedBatch, BackendError> {
    let meta = serde_json::to_vec(&Meta0 {
        mode: state.mode,
        interfaces: state.interfaces.clone(),
    })
    .map_err(|e| BackendError::Build(e.to_string()))?;
    let mut batch = Batch::new();
    let mut objects = Vec::new();
    let bare = table(None);
    batch.add(&bare, MsgType::Add);
    objects.push(Object::Table);
    batch.add(&bare, MsgType::Del);
    objects.push(Object::Table);
    let t = table(Some(meta));
    batch.add(&t, MsgType::Add);
    objects.push(Object::Table);
    let chain = Chain::new(&t)
        .with_name(CHAIN)
        .with_hook(Hook::new(HookClass::In, 0))
        .with_policy(ChainPolicy::Accept)
        .with_type(ChainType::Filter);
    batch.add(&chain, MsgType::Add);
    objects.push(Object::Chain);
    let set = set_for(&t, state.mode)?;
    batch.add(&set, MsgType::Add);
    objects.push(Object::Set);
    let lookup = Lookup::new(&set).map_err(|e| BackendError::Build(e.to_string()))?;
    for iface in &state.interfaces {
        let (verdict, with_set) = match state.mode {
            FilterMode::Deny => (VerdictKind::Drop, true),
            FilterMode::Allow => (VerdictKind::Accept, true),
        };
        let rule = rule_prefix(&chain, iface, DHCP_SERVER_PORT)?
            .with_expr(Meta::new(MetaType::IifType))
            .with_expr(Cmp::new(CmpOp::Eq, ARPHRD_ETHER.to_ne_bytes().to_vec()))
            .with_expr(HighLevelPayload::LinkLayer(LLHeaderField::Saddr).build())
            .with_expr(lookup.clone())
            .with_expr(Counter::default())
            .with_expr(Immediate::new_verdict(verdict.clone()));
        debug_assert!(with_set);
        batch.add(&rule, MsgType::Add);
        objects.push(Object::Rule(iface.clone()));
        if matching.chaddr {
            let rule = rule_prefix(&chain, iface, DHCP_SERVER_PORT)?
                .with_expr(transport_payload(BOOTP_HTYPE_HLEN_AT, 2))
                .with_expr(Cmp::new(CmpOp::Eq, BOOTP_HTYPE_HLEN_ETHER.to_be_bytes().to_vec()))
                .with_expr(transport_payload(BOOTP_CHADDR_AT, 6))
                .with_expr(lookup.clone())
                .with_expr(Counter::default())
                .with_expr(Immediate::new_verdict(verdict));
            batch.add(&rule, MsgType::Add);
            objects.push(Object::Rule(iface.clone()));
        }
        if state.mode == FilterMode::Allow {
            // rustables has no inverted lookup, so "everything else" is a
            // second rule after the accept.
            let rest = rule_prefix(&chain, iface, DHCP_SERVER_PORT)?
                .with_expr(Counter::default())
                .with_expr(Immediate::new_verdict(VerdictKind::Drop));
            batch.add(&rest, MsgType::Add);
            objects.push(Object::Rule(iface.clone()));
        }
        if matching.dhcpv6 {
            for rule in super::dhcpv6::rules(&chain, iface, &lookup, state.mode, matching.chaddr)? {
                batch.add(&rule, MsgType::Add);
                objects.push(Object::Rule(iface.clone()));
            }
        }
    }
    let macs: Vec<MacAddr> = state.macs.iter().copied().collect();
    add_elements(&mut batch, &mut objects, &t, state.mode, &macs, MsgType::Add)?;
    Ok(PlannedBatch {
        bytes: set_size::with_capacity(&batch.finalize(), capacity),
        objects,
    })
}

/// Pure: flush the set and refill it, keeping the rules and their counters.
pub fn refill_batch(state: &Applied) -> Result<PlannedBatch, BackendError> {
    let mut batch = Batch::new();
    let mut objects = Vec::new();
    let t = table(None);
    let flush = SetElementList {
        family: ProtocolFamily::Inet,
        table: Some(TABLE.to_owned()),
        set: Some(set_name(state.mode).to_owned()),
        elements: None,
    };
    batch.add(&flush, MsgType::Del);
    objects.push(Object::Flush);
    let macs: Vec<MacAddr> = state.macs.iter().copied().collect();
    add_elements(&mut batch, &mut objects, &t, state.mode, &macs, MsgType::Add)?;
    Ok(PlannedBatch {
        bytes: batch.finalize(),
        objects,
    })
}

/// Pure: add and remove elements in one transaction. `removed` must hold
/// only elements present in the kernel (deleting an absent one rejects
/// the whole batch), which the caller guarantees from its mirror.
pub fn delta_batch(
    mode: FilterMode,
    added: &[MacAddr],
    removed: &[MacAddr],
) -> Result<PlannedBatch, BackendError> {
    let mut batch = Batch::new();
    let mut objects = Vec::new();
    let t = table(None);
    add_elements(&mut batch, &mut objects, &t, mode, removed, MsgType::Del)?;
    add_elements(&mut batch, &mut objects, &t, mode, added, MsgType::Add)?;
    Ok(PlannedBatch {
        bytes: batch.finalize(),
        objects,
    })
}

pub(super) fn teardown_batch() -> PlannedBatch {
    let mut batch = Batch::new();
    let t = table(None);
    batch.add(&t, MsgType::Add);
    batch.add(&t, MsgType::Del);
    PlannedBatch {
        bytes: batch.finalize(),
        objects: vec![Object::Table, Object::Table],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::netlink::messages;

    const V4_DIRECT: Matching = Matching {
        chaddr: false,
        dhcpv6: false,
    };

    fn state(mode: FilterMode, n: u32, ifaces: &[&str]) -> Applied {
        Applied {
            interfaces: ifaces.iter().filter_map(|i| InterfaceName::new(i).ok()).collect(),
            mode,
            macs: (0..n)
                .map(|i| {
                    let b = i.to_be_bytes();
                    MacAddr::new([2, 0, b[0], b[1], b[2], b[3]])
                })
                .collect(),
        }
    }

    #[test]
    fn replace_batch_has_one_message_per_object_and_chunks_elements() -> Result<(), BackendError> {
        let plan = replace_batch(&state(FilterMode::Deny, 2049, &["veth0", "br0"]), V4_DIRECT, 4096)?;
        // table add/del/add, chain, set, 2 rules, 2 element chunks
        assert_eq!(plan.objects.len(), 9);
        assert_eq!(
            plan.objects[7],
            Object::Elements {
                first: 0,
                count: 2048
            }
        );
        assert_eq!(
            plan.objects[8],
            Object::Elements {
                first: 2048,
                count: 1
            }
        );
        let msgs: Vec<_> = messages(&plan.bytes)
            .collect::<Result<_, _>>()
            .map_err(BackendError::Netlink)?;
        // + batch begin and end
        assert_eq!(msgs.len(), plan.objects.len() + 2);
        assert_eq!(plan.object_for(1), Some(&Object::Table));
        assert_eq!(
            plan.object_for(6),
            Some(&Object::Rule(
                InterfaceName::new("veth0").map_err(|e| BackendError::Build(e.to_string()))?
            ))
        );
        Ok(())
    }

    #[test]
    fn allow_mode_adds_a_catch_all_drop_per_interface() -> Result<(), BackendError> {
        let plan = replace_batch(&state(FilterMode::Allow, 0, &["veth0"]), V4_DIRECT, 4096)?;
        let rules = plan
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Rule(_)))
            .count();
        assert_eq!(rules, 2);
        let plan = replace_batch(
            &state(FilterMode::Allow, 0, &["veth0"]),
            Matching {
                chaddr: true,
                dhcpv6: false,
            },
            4096,
        )?;
        let rules = plan
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Rule(_)))
            .count();
        assert_eq!(rules, 3);
        assert!(!plan.objects.iter().any(|o| matches!(o, Object::Elements { .. })));
        Ok(())
    }

    #[test]
    fn no_element_message_exceeds_the_u16_attribute_limit() -> Result<(), BackendError> {
        let plan = refill_batch(&state(FilterMode::Deny, 100_000, &["veth0"]))?;
        for m in messages(&plan.bytes) {
            let m = m.map_err(BackendError::Netlink)?;
            assert!(m.payload.len() < 65_535, "message of {} bytes", m.payload.len());
        }
        assert_eq!(plan.objects.len(), 1 + 100_000usize.div_ceil(CHUNK));
        Ok(())
    }

    #[test]
    fn delta_removes_before_adding() -> Result<(), BackendError> {
        let a = [MacAddr::new([2, 0, 0, 0, 0, 1])];
        let r = [MacAddr::new([2, 0, 0, 0, 0, 2])];
        let plan = delta_batch(FilterMode::Deny, &a, &r)?;
        assert_eq!(plan.objects.len(), 2);
        Ok(())
    }
}
