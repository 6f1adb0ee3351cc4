//! `local_link_connection` (ironic-inspector
//! `plugins/local_link_connection.py`): the raw LLDP TLVs IPA reports per
//! interface (`lldp_raw[name]`, else `inventory.interfaces[].lldp`, as
//! `[type, "hex"]` pairs) give the interface's port its
//! `local_link_connection`: the Chassis ID TLV (1) with the MAC subtype
//! (4) is `switch_id`, the Port ID TLV (2) is `port_id` (the string
//! subtypes as text, the MAC subtype as `aa:bb:…`, the network-address
//! subtype as the address). Values already on the port are kept unless
//! `overwrite_existing`. When `lldp_basic` ran before it, the
//! interface's `lldp_processed` is used first, as the inspector does
//! (`switch_chassis_id` only when it is a MAC, `switch_port_id`); the raw
//! TLVs are read only when that gives nothing. A TLV that is not hex, is too short, is not
//! UTF-8 or has an unknown subtype is skipped with a debug log (the
//! inspector failed on some of these with an internal error).

use serde_json::Value;

use super::lldp_tlvs::{MAX_TLVS, hex, id_value};
use super::{HookContext, HookError, HookPatches, InterfacePort, ProcessingHook};
use crate::ironic::PatchOp;

#[derive(Debug)]
pub(super) struct LocalLinkConnection {
    pub overwrite: bool,
}

/// `(item, value)` of one TLV, when it is one this hook uses.
pub(super) fn link_item(tlv_type: u64, value: &[u8]) -> Option<(&'static str, String)> {
    let item = match (tlv_type, value.first()) {
        (1, Some(4)) => "switch_id",
        (2, _) => "port_id",
        _ => return None,
    };
    match id_value(tlv_type, value)? {
        Value::String(v) if !v.is_empty() => Some((item, v)),
        _ => None,
    }
}

/// oslo.utils' `is_valid_mac`: six hex pairs joined by `:` or `-`.
fn is_mac(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 17
        && b.chunks(3)
            .all(|c| c[0].is_ascii_hexdigit() && c[1].is_ascii_hexdigit())
        && b.iter().skip(2).step_by(3).all(|c| *c == b[2])
        && (b[2] == b':' || b[2] == b'-')
}

/// `(item, value)`s from what `lldp_basic` stored for the interface
/// (the inspector's first choice): the chassis id only when it is a MAC.
fn processed_items(processed: &Value) -> Vec<(&'static str, String)> {
    [("switch_chassis_id", "switch_id"), ("switch_port_id", "port_id")]
        .into_iter()
        .filter_map(|(name, item)| match processed.get(name) {
            Some(Value::String(v)) if !v.is_empty() => {
                (item != "switch_id" || is_mac(v)).then(|| (item, v.clone()))
            }
            _ => None,
        })
        .collect()
}

impl ProcessingHook for LocalLinkConnection {
    fn name(&self) -> &'static str {
        "local_link_connection"
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let Some(interfaces) = ctx.interface_ports() else {
            return Ok(None);
        };
        let raw = ctx.data.get("lldp_raw").and_then(Value::as_object);
        let mut patches = HookPatches::default();
        for InterfacePort { name, iface, port } in interfaces {
            let tlvs = raw
                .and_then(|r| r.get(name))
                .filter(|v| crate::processing::payload::truthy(Some(v)))
                .or_else(|| iface.get("lldp"))
                .and_then(Value::as_array);
            let Some(tlvs) = tlvs else {
                tracing::debug!(interface = name, "no LLDP data");
                continue;
            };
            let mut ops: Vec<PatchOp> = Vec::new();
            let add = |ops: &mut Vec<PatchOp>, item: &str, value: String| {
                if !self.overwrite && port.local_link_connection.contains_key(item) {
                    return;
                }
                let path = format!("/local_link_connection/{item}");
                ops.retain(|o| o.path() != path);
                ops.push(PatchOp::add(path, value));
            };
            let processed = ctx
                .data
                .get("all_interfaces")
                .and_then(|a| a.get(name))
                .and_then(|i| i.get("lldp_processed"));
            for (item, value) in processed.map(processed_items).unwrap_or_default() {
                add(&mut ops, item, value);
            }
            if ops.is_empty() {
                for tlv in tlvs.iter().take(MAX_TLVS) {
                    let parsed = tlv.as_array().and_then(|t| match t.as_slice() {
                        [ty, v] => Some((ty.as_u64()?, hex(v.as_str()?)?)),
                        _ => None,
                    });
                    let Some((ty, bytes)) = parsed else {
                        tracing::debug!(interface = name, "malformed LLDP TLV skipped");
                        continue;
                    };
                    if let Some((item, value)) = link_item(ty, &bytes) {
                        add(&mut ops, item, value);
                    }
                }
            }
            if !ops.is_empty() {
                patches.ports.insert(port.address.to_ascii_lowercase(), ops);
            }
        }
        Ok(Some(patches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLVs as IPA sends them (captured from real switches' LLDP frames).
    #[test]
    fn tlvs_as_ipa_sends_them() {
        let t = |ty: u64, h: &str| hex(h).and_then(|b| link_item(ty, &b));
        let s = |item: &'static str, v: &str| Some((item, v.to_owned()));
        // Chassis ID, MAC subtype.
        assert_eq!(t(1, "04885a92ec5459"), s("switch_id", "88:5a:92:ec:54:59"));
        // Chassis ID, locally assigned (7): not a switch_id.
        assert_eq!(t(1, "0773772d31"), None);
        // Port ID: interface name (5), "Ethernet1/18"; local (7), "gi0/1".
        assert_eq!(t(2, "0545746865726e6574312f3138"), s("port_id", "Ethernet1/18"));
        assert_eq!(t(2, "076769302f31"), s("port_id", "gi0/1"));
        // Port ID: MAC (3) and IPv4 network address (4).
        assert_eq!(t(2, "03885a92ec5460"), s("port_id", "88:5a:92:ec:54:60"));
        assert_eq!(t(2, "04010a000001"), s("port_id", "10.0.0.1"));
        // Odd ones: truncated MAC, bad UTF-8, unknown subtype, empty, not hex.
        assert_eq!(t(1, "04885a92"), None);
        assert_eq!(t(2, "05ff"), None);
        assert_eq!(t(2, "09aa"), None);
        assert_eq!(t(2, "05"), None);
        assert_eq!(t(2, ""), None);
        assert_eq!(hex("0g"), None);
        assert_eq!(hex("abc"), None);
        assert!(is_mac("88:5A:92:ec:54:59") && is_mac("88-5a-92-ec-54-59"));
        assert!(!is_mac("88:5a-92:ec:54:59") && !is_mac("sw-1") && !is_mac("88:5a:92:ec:54:5"));
        // Other TLVs (TTL, system name) are not used.
        assert_eq!(t(3, "0078"), None);
    }

    #[test]
    fn ports_get_switch_and_port_ids() -> Result<(), HookError> {
        use crate::ironic::{Node, Port};
        use crate::processing::Data;
        use serde_json::json;
        let e = |e: serde_json::Error| HookError(e.to_string());
        let node: Node = serde_json::from_value(json!({"uuid": "u"})).map_err(e)?;
        let ports: Vec<Port> = serde_json::from_value(json!([
            {"uuid": "p1", "address": "3c:fd:fe:9c:87:60", "local_link_connection": {"port_id": "old"}},
            {"uuid": "p2", "address": "3c:fd:fe:9c:87:61"}]))
        .map_err(e)?;
        let data: Data = serde_json::from_value(json!({
            "inventory": {"interfaces": [
                {"name": "eno1", "mac_address": "3c:fd:fe:9c:87:60",
                 "lldp": [[1, "04885a92ec5459"], [2, "0545746865726e6574312f3132"]]},
                {"name": "eno2", "mac_address": "3c:fd:fe:9c:87:61", "lldp": [[1, "zz"], "junk", [2]]}]},
            "lldp_raw": {"eno2": [[2, "076769302f31"], [5, "7377"]]},
            "all_interfaces": {"eno1": {}, "eno2": {}}}))
        .map_err(e)?;
        let ctx = HookContext {
            node: &node,
            ports: &ports,
            data: &data,
        };
        let p = LocalLinkConnection { overwrite: false }
            .before_update(&ctx)?
            .unwrap_or_default();
        assert_eq!(
            p.ports["3c:fd:fe:9c:87:60"],
            [PatchOp::add(
                "/local_link_connection/switch_id",
                "88:5a:92:ec:54:59"
            )]
        );
        // lldp_raw wins over the inventory's lldp.
        assert_eq!(
            p.ports["3c:fd:fe:9c:87:61"],
            [PatchOp::add("/local_link_connection/port_id", "gi0/1")]
        );
        let p = LocalLinkConnection { overwrite: true }
            .before_update(&ctx)?
            .unwrap_or_default();
        assert_eq!(p.ports["3c:fd:fe:9c:87:60"].len(), 2);
        Ok(())
    }
}
