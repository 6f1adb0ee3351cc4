//! Expressions the nftables rules of both DHCP versions start with
//! (`nft.rs` for DHCPv4, `dhcpv6.rs` for DHCPv6).

use common::InterfaceName;
use rustables::expr::{
    Cmp, CmpOp, HighLevelPayload, Meta, MetaType, Payload, Register, TransportHeaderField, UDPHeaderField,
};
use rustables::{Chain, Rule};

use super::BackendError;

const IPPROTO_UDP: u8 = 17;

/// `@th,OFFSET*8,LEN*8` into register 1.
pub(super) fn transport_payload(offset: u32, len: u32) -> Payload {
    Payload::default()
        .with_base(rustables::sys::NFT_PAYLOAD_TRANSPORT_HEADER)
        .with_offset(offset)
        .with_len(len)
        .with_dreg(Register::Reg1)
}

/// `iifname IF udp dport PORT`.
pub(super) fn rule_prefix(chain: &Chain, iface: &InterfaceName, port: u16) -> Result<Rule, BackendError> {
    let rule = Rule::new(chain).map_err(|e| BackendError::Build(e.to_string()))?;
    Ok(rule
        .with_expr(Meta::new(MetaType::IifName))
        .with_expr(Cmp::new(CmpOp::Eq, iface.padded().to_vec()))
        .with_expr(Meta::new(MetaType::L4Proto))
        .with_expr(Cmp::new(CmpOp::Eq, vec![IPPROTO_UDP]))
        .with_expr(HighLevelPayload::Transport(TransportHeaderField::Udp(UDPHeaderField::Dport)).build())
        .with_expr(Cmp::new(CmpOp::Eq, port.to_be_bytes().to_vec())))
}
