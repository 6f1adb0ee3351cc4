//! `physnet_cidr_map` (ironic-inspector `plugins/physnet_cidr_map.py` over
//! `base_physnet.py`): the port of each interface whose first IP address
//! (IPv4, else IPv6) lies in a network of `[port_physnet] cidr_map` gets
//! that network's `physical_network`. As in the inspector, only with
//! `overwrite_existing`, only for ports whose value differs, and only the
//! first address of an interface is looked at.

use ipnet::IpNet;
use serde_json::Value;

use super::{HookContext, HookError, HookPatches, InterfacePort, ProcessingHook};
use crate::ironic::PatchOp;

#[derive(Debug)]
pub(super) struct PhysnetCidrMap {
    pub cidr_map: Vec<(IpNet, String)>,
    pub overwrite: bool,
}

/// The interface's first address that parses (a `%scope` suffix dropped).
fn first_ip(iface: &Value) -> Option<std::net::IpAddr> {
    ["ipv4_address", "ipv6_address"].iter().find_map(|k| {
        let s = iface.get(*k)?.as_str()?;
        s.split('%').next()?.parse().ok()
    })
}

impl ProcessingHook for PhysnetCidrMap {
    fn name(&self) -> &'static str {
        "physnet_cidr_map"
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let Some(interfaces) = ctx.interface_ports() else {
            return Ok(None);
        };
        let mut patches = HookPatches::default();
        for InterfacePort { iface, port, .. } in interfaces {
            let Some(physnet) = first_ip(iface)
                .and_then(|ip| self.cidr_map.iter().find(|(net, _)| net.contains(&ip)))
                .map(|(_, p)| p)
            else {
                continue;
            };
            if !self.overwrite || port.physical_network.as_deref() == Some(physnet) {
                continue;
            }
            patches.ports.insert(
                port.address.to_ascii_lowercase(),
                vec![PatchOp::add("/physical_network", physnet.as_str())],
            );
        }
        Ok(Some(patches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ironic::{Node, Port};
    use crate::processing::Data;
    use serde_json::json;

    #[test]
    fn first_address_in_a_mapped_network_sets_the_physnet() -> Result<(), HookError> {
        let map = vec![
            (
                "10.10.0.0/24".parse().map_err(|_| HookError("net".into()))?,
                "physnet_a".to_owned(),
            ),
            (
                "fd00::/64".parse().map_err(|_| HookError("net".into()))?,
                "physnet_b".to_owned(),
            ),
        ];
        let node: Node =
            serde_json::from_value(json!({"uuid": "u"})).map_err(|e| HookError(e.to_string()))?;
        let ports: Vec<Port> = serde_json::from_value(json!([
            {"uuid": "p1", "address": "aa:00:00:00:00:01"},
            {"uuid": "p2", "address": "aa:00:00:00:00:02", "physical_network": "physnet_b"},
            {"uuid": "p3", "address": "aa:00:00:00:00:03"},
            {"uuid": "p4", "address": "aa:00:00:00:00:04"}]))
        .map_err(|e| HookError(e.to_string()))?;
        let data: Data = serde_json::from_value(json!({
            "inventory": {"interfaces": [
                {"name": "a", "mac_address": "aa:00:00:00:00:01", "ipv4_address": "10.10.0.5"},
                {"name": "b", "mac_address": "aa:00:00:00:00:02", "ipv4_address": null, "ipv6_address": "fd00::5%b"},
                {"name": "c", "mac_address": "aa:00:00:00:00:03", "ipv4_address": "192.168.0.5", "ipv6_address": "fd00::6"},
                {"name": "d", "mac_address": "aa:00:00:00:00:04", "ipv4_address": "10.10.0.9"}]},
            "all_interfaces": {"a": {}, "b": {}, "c": {}}}))
        .map_err(|e| HookError(e.to_string()))?;
        let ctx = HookContext {
            node: &node,
            ports: &ports,
            data: &data,
        };
        let hook = PhysnetCidrMap {
            cidr_map: map.clone(),
            overwrite: true,
        };
        let p = hook.before_update(&ctx)?.unwrap_or_default();
        // a: mapped; b: already set; c: its first address is unmapped;
        // d: not one of all_interfaces.
        let macs: Vec<&str> = p.ports.keys().map(String::as_str).collect();
        assert_eq!(macs, ["aa:00:00:00:00:01"]);
        assert_eq!(
            p.ports["aa:00:00:00:00:01"],
            [PatchOp::add("/physical_network", "physnet_a")]
        );
        // Without overwrite_existing the inspector sets nothing.
        let quiet = PhysnetCidrMap {
            cidr_map: map,
            overwrite: false,
        };
        assert!(quiet.before_update(&ctx)?.unwrap_or_default().ports.is_empty());
        Ok(())
    }
}
