//! LLDP TLVs as IPA reports them (`[type, "hex value"]`) read into the
//! inspector's name/value pairs (its `common/lldp_parsers.py` over
//! `common/lldp_tlvs.py`): the 802.1AB basic management set, the 802.1Q
//! and the 802.3 organisation-specific TLVs. The first TLV giving a name
//! wins; the list-valued names (management addresses, VLANs, protocol VLAN
//! ids, protocol identities) collect every TLV. A TLV that is not hex, is
//! truncated, has the wrong length, is not UTF-8 or has a subtype the
//! inspector does not know is skipped (the inspector skips most of these
//! and fails with an internal error on some).

use serde_json::{Map, Value, json};

/// Most TLVs read per interface: an LLDP frame fits in one Ethernet
/// frame (1500 bytes), and a TLV takes at least 2 of them.
pub(super) const MAX_TLVS: usize = 1024;

const OUI_802_1: [u8; 3] = [0x00, 0x80, 0xc2];
const OUI_802_3: [u8; 3] = [0x00, 0x12, 0x0f];

/// Strict hex (both cases, even length), as Python's `a2b_hex`.
pub(super) fn hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

/// `aa:bb:cc:dd:ee:ff` from the first 6 bytes.
pub(super) fn mac(b: &[u8]) -> Option<String> {
    let b = b.get(..6)?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"))
}

/// An IANA address (family byte, then the address): `Some(None)` for a
/// family the inspector does not know (it stores nothing then).
pub(super) fn iana(b: &[u8]) -> Option<Option<String>> {
    let (family, rest) = b.split_first()?;
    Some(match family {
        1 => {
            let a: [u8; 4] = rest.get(..4)?.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(a).to_string())
        }
        2 => {
            let a: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(a).to_string())
        }
        6 => Some(mac(rest)?),
        _ => None,
    })
}

fn text(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_owned)
}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(u64::from(u16::from_be_bytes(x)))
}

/// The Chassis ID (1) or Port ID (2) value by subtype; `None` for a
/// malformed or unknown one.
pub(super) fn id_value(tlv_type: u64, b: &[u8]) -> Option<Value> {
    let (subtype, rest) = b.split_first()?;
    let v = match (tlv_type, subtype) {
        (1, 1..=3 | 6 | 7) | (2, 1 | 2 | 5 | 7) => Value::from(text(rest)?),
        (1, 4) | (2, 3) => Value::from(mac(rest)?),
        (1, 5) | (2, 4) => iana(rest)?.map_or(Value::Null, Value::from),
        _ => return None,
    };
    Some(v)
}

/// The system capabilities bits, by name, in the inspector's order.
fn capabilities(bits: u16) -> Value {
    const NAMES: [&str; 10] = [
        "Repeater",
        "Bridge",
        "WLAN",
        "Router",
        "Telephone",
        "DOCSIS cable device",
        "Station only",
        "C-Vlan",
        "S-Vlan",
        "TPMR",
    ];
    let on: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << (i + 1)) != 0)
        .map(|(_, n)| *n)
        .collect();
    json!(on)
}

/// The 802.3 PMD auto-negotiation bits as the inspector names them,
/// sorted; like the inspector, "10BASE-T fdx" follows the hdx bit.
fn autoneg_caps(pmd: u16) -> Value {
    const BITS: [(u8, &str); 15] = [
        (14, "10BASE-T hdx"),
        (14, "10BASE-T fdx"),
        (12, "10BASE-T4"),
        (11, "100BASE-TX hdx"),
        (10, "100BASE-TX fdx"),
        (9, "100BASE-T2 hdx"),
        (8, "100BASE-T2 fdx"),
        (7, "PAUSE fdx"),
        (6, "Asym PAUSE fdx"),
        (5, "Sym PAUSE fdx"),
        (4, "Asym and Sym PAUSE fdx"),
        (3, "1000BASE-X hdx"),
        (2, "1000BASE-X fdx"),
        (1, "1000BASE-T hdx"),
        (0, "1000BASE-T fdx"),
    ];
    let mut on: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| pmd & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    on.sort_unstable();
    json!(on)
}

/// RFC 4836's operational MAU types the inspector knows (0..=53).
const MAU_TYPES: [&str; 54] = [
    "Unknown",
    "AUI",
    "10BASE-5",
    "FOIRL",
    "10BASE-2",
    "10BASE-T duplex mode unknown",
    "10BASE-FP",
    "10BASE-FB",
    "10BASE-FL duplex mode unknown",
    "10BROAD36",
    "10BASE-T half duplex",
    "10BASE-T full duplex",
    "10BASE-FL half duplex",
    "10BASE-FL full duplex",
    "100 BASE-T4",
    "100BASE-TX half duplex",
    "100BASE-TX full duplex",
    "100BASE-FX half duplex",
    "100BASE-FX full duplex",
    "100BASE-T2 half duplex",
    "100BASE-T2 full duplex",
    "1000BASE-X half duplex",
    "1000BASE-X full duplex",
    "1000BASE-LX half duplex",
    "1000BASE-LX full duplex",
    "1000BASE-SX half duplex",
    "1000BASE-SX full duplex",
    "1000BASE-CX half duplex",
    "1000BASE-CX full duplex",
    "1000BASE-T half duplex",
    "1000BASE-T full duplex",
    "10GBASE-X",
    "10GBASE-LX4",
    "10GBASE-R",
    "10GBASE-ER",
    "10GBASE-LR",
    "10GBASE-SR",
    "10GBASE-W",
    "10GBASE-EW",
    "10GBASE-LW",
    "10GBASE-SW",
    "10GBASE-CX4",
    "2BASE-TL",
    "10PASS-TS",
    "100BASE-BX10D",
    "100BASE-BX10U",
    "100BASE-LX10",
    "1000BASE-BX10D",
    "1000BASE-BX10U",
    "1000BASE-LX10",
    "1000BASE-PX10D",
    "1000BASE-PX10U",
    "1000BASE-PX20D",
    "1000BASE-PX20U",
];

/// The name/value pairs being collected for one interface.
#[derive(Debug, Default)]
pub(super) struct Parsed(pub Map<String, Value>);

impl Parsed {
    fn set(&mut self, name: &str, v: Value) {
        self.0.entry(name).or_insert(v);
    }

    fn append(&mut self, name: &str, v: Value) {
        let list = self.0.entry(name).or_insert_with(|| json!([]));
        if let Value::Array(a) = list {
            a.push(v);
        }
    }

    /// Reads one TLV; `false` when it was skipped (unknown or malformed).
    pub fn tlv(&mut self, tlv_type: u64, b: &[u8]) -> bool {
        self.try_tlv(tlv_type, b).is_some()
    }

    fn try_tlv(&mut self, tlv_type: u64, b: &[u8]) -> Option<()> {
        match tlv_type {
            0 | 3 => {}
            1 => self.set("switch_chassis_id", id_value(1, b)?),
            2 => self.set("switch_port_id", id_value(2, b)?),
            4 => self.set("switch_port_description", text(b)?.into()),
            5 => self.set("switch_system_name", text(b)?.into()),
            6 => self.set("switch_system_description", text(b)?.into()),
            7 => {
                let (Some(sys), Some(en), 4) = (u16_at(b, 0), u16_at(b, 2), b.len()) else {
                    return None;
                };
                let bits = |v: u64| u16::try_from(v).unwrap_or(0);
                self.set("switch_capabilities_support", capabilities(bits(sys)));
                self.set("switch_capabilities_enabled", capabilities(bits(en)));
            }
            8 => {
                // Address string length (ignored, as the inspector), family, address.
                let addr = iana(b.get(1..)?)?;
                if let Some(a) = addr {
                    self.append("switch_mgmt_addresses", a.into());
                }
            }
            127 => {
                let oui = b.get(..3)?;
                let subtype = *b.get(3)?;
                let rest = b.get(4..)?;
                if oui == OUI_802_1 {
                    self.dot1(subtype, rest)?;
                } else if oui == OUI_802_3 {
                    self.dot3(subtype, rest)?;
                } else {
                    return None;
                }
            }
            _ => return None,
        }
        Some(())
    }

    fn link_aggregation(&mut self, b: &[u8]) -> Option<()> {
        let status = *b.first()?;
        let id: [u8; 4] = b.get(1..5)?.try_into().ok()?;
        (b.len() == 5).then_some(())?;
        self.set("switch_port_link_aggregation_enabled", (status & 2 != 0).into());
        self.set("switch_port_link_aggregation_support", (status & 1 != 0).into());
        self.set("switch_port_link_aggregation_id", u32::from_be_bytes(id).into());
        Some(())
    }

    fn dot1(&mut self, subtype: u8, b: &[u8]) -> Option<()> {
        match subtype {
            1 => self.set("switch_port_untagged_vlan_id", u16_at(b, 0)?.into()),
            2 => {
                let flags = *b.first()?;
                let vlan = u16_at(b, 1)?;
                (b.len() == 3).then_some(())?;
                self.set("switch_port_protocol_vlan_enabled", (flags & 4 != 0).into());
                self.set("switch_port_protocol_vlan_support", (flags & 2 != 0).into());
                self.append("switch_port_protocol_vlan_ids", vlan.into());
            }
            3 => {
                let id = u16_at(b, 0)?;
                let len = usize::from(*b.get(2)?);
                let name = b.get(3..3 + len)?;
                let end = name.iter().rposition(|c| *c != 0).map_or(0, |i| i + 1);
                let name = text(&name[..end])?;
                self.append("switch_port_vlans", json!({"name": name, "id": id}));
            }
            4 => {
                let len = usize::from(*b.first()?);
                let proto = b.get(1..1 + len)?;
                let hex: String = proto.iter().map(|x| format!("{x:02x}")).collect();
                self.append("switch_protocol_identities", hex.into());
            }
            6 => self.set("switch_port_management_vlan_id", u16_at(b, 0)?.into()),
            7 => self.link_aggregation(b)?,
            _ => return None,
        }
        Some(())
    }

    fn dot3(&mut self, subtype: u8, b: &[u8]) -> Option<()> {
        match subtype {
            1 => {
                let (Some(&autoneg), Some(pmd), Some(mau), 5) =
                    (b.first(), u16_at(b, 1), u16_at(b, 3), b.len())
                else {
                    return None;
                };
                let mau = MAU_TYPES.get(usize::try_from(mau).ok()?)?;
                self.set("switch_port_autonegotiation_enabled", (autoneg & 2 != 0).into());
                self.set("switch_port_autonegotiation_support", (autoneg & 1 != 0).into());
                let pmd = u16::try_from(pmd).unwrap_or(0);
                self.set("switch_port_physical_capabilities", autoneg_caps(pmd));
                self.set("switch_port_mau_type", (*mau).into());
            }
            3 => self.link_aggregation(b)?,
            4 => self.set("switch_port_mtu", u16_at(b, 0)?.into()),
            _ => return None,
        }
        Some(())
    }
}

/// Reads a list of `[type, "hex"]` TLVs (at most [`MAX_TLVS`]); entries
/// that are not such pairs are skipped.
pub(super) fn parse(tlvs: &[Value]) -> Map<String, Value> {
    let mut p = Parsed::default();
    if tlvs.len() > MAX_TLVS {
        tracing::warn!(
            count = tlvs.len(),
            "more than {MAX_TLVS} LLDP TLVs: the rest ignored"
        );
    }
    for tlv in tlvs.iter().take(MAX_TLVS) {
        let parsed = tlv.as_array().and_then(|t| match t.as_slice() {
            [ty, v] => Some((ty.as_u64()?, hex(v.as_str()?)?)),
            _ => None,
        });
        match parsed {
            Some((ty, bytes)) => {
                if !p.tlv(ty, &bytes) {
                    tracing::debug!(tlv_type = ty, "LLDP TLV not handled");
                }
            }
            None => tracing::debug!("malformed LLDP TLV skipped"),
        }
    }
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `discoverd/testdata/lldp_tlvs.json`, checked against the
    /// inspector's parser by `scripts/check-lldp-tlvs.py`.
    const TABLE: &str = include_str!("../../testdata/lldp_tlvs.json");

    #[test]
    fn tlvs_read_as_the_inspector_reads_them() -> Result<(), serde_json::Error> {
        let table: Value = serde_json::from_str(TABLE)?;
        let cases = table["cases"].as_array().cloned().unwrap_or_default();
        assert!(cases.len() >= 25);
        for case in cases {
            let tlvs = case["tlvs"].as_array().cloned().unwrap_or_default();
            let got = Value::Object(parse(&tlvs));
            assert_eq!(got, case["expect"], "{}", case["case"]);
        }
        Ok(())
    }

    #[test]
    fn malformed_entries_and_huge_lists_never_panic() {
        let junk = json!([
            ["junk"],
            [1],
            [1, 2, 3],
            "x",
            null,
            [-1, "00"],
            [1, 5],
            [u64::MAX, "ff"]
        ]);
        assert!(parse(junk.as_array().map_or(&[][..], Vec::as_slice)).is_empty());
        let many: Vec<Value> = (0..5000).map(|_| json!([127, "0080c2030064017a"])).collect();
        let p = parse(&many);
        assert_eq!(p["switch_port_vlans"].as_array().map(Vec::len), Some(MAX_TLVS));
        assert_eq!(hex("+f"), None);
        assert_eq!(hex("0g"), None);
    }
}
