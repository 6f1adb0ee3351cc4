//! The nftables rules for DHCPv6 (UDP 547): the same set, matched where
//! a DHCPv6 packet carries the client's MAC at a fixed place.
//!
//! ```text
//! iifname "IF" udp dport 547 ether saddr @set VERDICT                       # direct clients
//! iifname "IF" udp dport 547 @th,64,8 12 @th,336,48 0x004f00080001 @th,384,48 @set VERDICT
//! iifname "IF" udp dport 547 @th,64,8 12 @th,336,16 9 @th,400,64 0x0001000a00030001 @th,464,48 @set VERDICT
//! iifname "IF" udp dport 547 @th,64,8 12 @th,336,16 9 @th,400,64 0x0001000e00010001 @th,496,48 @set VERDICT
//! iifname "IF" udp dport 547 counter drop                                   # allow mode
//! ```
//!
//! A relayed request is a Relay-Forward (message type 12): a 34-byte
//! header (type, hop count, link and peer addresses), then options in any
//! order. nftables can only compare bytes at fixed offsets, so a relayed
//! request is matched only when:
//!
//! * its **first option is the Client Link-Layer Address** (RFC 6939,
//!   option 79, length 8, type 1 = Ethernet, then the MAC). dnsmasq's relay
//!   puts it first when it knows the client's MAC; or
//! * its **first option is the Relay Message** (option 9) and the relayed
//!   client message's **first option is the Client Identifier** (option 1)
//!   holding a DUID-LL (type 3, hardware type 1: the MAC) or a DUID-LLT
//!   (type 1, hardware type 1, a 4-byte time, then the MAC).
//!
//! Anything else relayed is not matched: option 79 after another option
//! (e.g. an Interface-ID first), a DUID-EN or DUID-UUID (no MAC in it), a
//! DUID-LL/LLT whose MAC is another NIC's (a DUID names the client, not
//! the interface it boots from), a Client Identifier that is not the
//! client's first option, and relays of relays (the outer relay's
//! option 79, if any, names the inner relay). In deny mode such a request
//! passes; in allow mode it is dropped by the last rule, as an unlisted one.

use common::{FilterMode, InterfaceName};
use rustables::expr::{
    Cmp, CmpOp, Counter, HighLevelPayload, Immediate, LLHeaderField, Lookup, Meta, MetaType, VerdictKind,
};
use rustables::{Chain, Rule};

use super::BackendError;
use super::nft_expr::{rule_prefix, transport_payload};

/// The DHCPv6 server port.
pub const DHCPV6_SERVER_PORT: u16 = 547;
const ARPHRD_ETHER: u16 = 1;
/// Offsets into the UDP datagram (8-byte UDP header first).
const MSG_TYPE_AT: u32 = 8;
const RELAY_FORW: u8 = 12;
/// The first option of a Relay-Forward (after its 34-byte header).
const RELAY_FIRST_OPTION_AT: u32 = 8 + 34;
/// Option 79, length 8, link-layer type 1.
const CLIENT_LINKLAYER_ETHER: [u8; 6] = [0x00, 0x4f, 0x00, 0x08, 0x00, 0x01];
const CLIENT_LINKLAYER_MAC_AT: u32 = RELAY_FIRST_OPTION_AT + 6;
const RELAY_MSG_OPTION: [u8; 2] = [0x00, 0x09];
/// The relayed message's first option: after the Relay Message option's
/// code and length (4) and the message's type and transaction id (4).
const INNER_FIRST_OPTION_AT: u32 = RELAY_FIRST_OPTION_AT + 4 + 4;
/// Client Identifier (1), length 10, DUID-LL (3), hardware type 1.
const CLIENT_ID_DUID_LL: [u8; 8] = [0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01];
/// Client Identifier (1), length 14, DUID-LLT (1), hardware type 1.
const CLIENT_ID_DUID_LLT: [u8; 8] = [0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01];
const DUID_LL_MAC_AT: u32 = INNER_FIRST_OPTION_AT + 8;
const DUID_LLT_MAC_AT: u32 = INNER_FIRST_OPTION_AT + 8 + 4;

/// The DHCPv6 rules of one interface, in order. `relayed` adds the rules
/// that read the MAC from inside relayed requests.
pub fn rules(
    chain: &Chain,
    iface: &InterfaceName,
    lookup: &Lookup,
    mode: FilterMode,
    relayed: bool,
) -> Result<Vec<Rule>, BackendError> {
    let verdict = match mode {
        FilterMode::Deny => VerdictKind::Drop,
        FilterMode::Allow => VerdictKind::Accept,
    };
    let prefix = || rule_prefix(chain, iface, DHCPV6_SERVER_PORT);
    let mut out = vec![
        prefix()?
            .with_expr(Meta::new(MetaType::IifType))
            .with_expr(Cmp::new(CmpOp::Eq, ARPHRD_ETHER.to_ne_bytes().to_vec()))
            .with_expr(HighLevelPayload::LinkLayer(LLHeaderField::Saddr).build())
            .with_expr(lookup.clone())
            .with_expr(Counter::default())
            .with_expr(Immediate::new_verdict(verdict.clone())),
    ];
    if relayed {
        let relay_forw = || -> Result<Rule, BackendError> {
            Ok(prefix()?
                .with_expr(transport_payload(MSG_TYPE_AT, 1))
                .with_expr(Cmp::new(CmpOp::Eq, vec![RELAY_FORW])))
        };
        out.push(
            relay_forw()?
                .with_expr(transport_payload(RELAY_FIRST_OPTION_AT, 6))
                .with_expr(Cmp::new(CmpOp::Eq, CLIENT_LINKLAYER_ETHER.to_vec()))
                .with_expr(transport_payload(CLIENT_LINKLAYER_MAC_AT, 6))
                .with_expr(lookup.clone())
                .with_expr(Counter::default())
                .with_expr(Immediate::new_verdict(verdict.clone())),
        );
        for (client_id, mac_at) in [
            (CLIENT_ID_DUID_LL, DUID_LL_MAC_AT),
            (CLIENT_ID_DUID_LLT, DUID_LLT_MAC_AT),
        ] {
            out.push(
                relay_forw()?
                    .with_expr(transport_payload(RELAY_FIRST_OPTION_AT, 2))
                    .with_expr(Cmp::new(CmpOp::Eq, RELAY_MSG_OPTION.to_vec()))
                    .with_expr(transport_payload(INNER_FIRST_OPTION_AT, 8))
                    .with_expr(Cmp::new(CmpOp::Eq, client_id.to_vec()))
                    .with_expr(transport_payload(mac_at, 6))
                    .with_expr(lookup.clone())
                    .with_expr(Counter::default())
                    .with_expr(Immediate::new_verdict(verdict.clone())),
            );
        }
    }
    if mode == FilterMode::Allow {
        out.push(
            prefix()?
                .with_expr(Counter::default())
                .with_expr(Immediate::new_verdict(VerdictKind::Drop)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_rfc_8415_and_6939() {
        // Relay-Forward: type(1) hop(1) link(16) peer(16), after UDP's 8.
        assert_eq!(RELAY_FIRST_OPTION_AT, 42);
        assert_eq!(CLIENT_LINKLAYER_MAC_AT, 48);
        // Relay Message option (4), client type + xid (4), Client Id
        // option header (4), DUID type (2), hardware type (2).
        assert_eq!(DUID_LL_MAC_AT, 58);
        assert_eq!(DUID_LLT_MAC_AT, 62);
        assert_eq!(
            u16::from_be_bytes([CLIENT_LINKLAYER_ETHER[0], CLIENT_LINKLAYER_ETHER[1]]),
            79
        );
        // DUID-LL: type + hw type + 6; DUID-LLT: + 4-byte time.
        assert_eq!(CLIENT_ID_DUID_LL[3], 2 + 2 + 6);
        assert_eq!(CLIENT_ID_DUID_LLT[3], 2 + 2 + 4 + 6);
    }
}
