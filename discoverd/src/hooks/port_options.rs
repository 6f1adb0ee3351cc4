//! The port options of ironic-inspector's `validate_interfaces`
//! (`[processing] add_ports`, `keep_ports`, `update_pxe_enabled`), and the
//! pure plan of the port changes they call for: which ports to create
//! (and whether the node boots from them), which to delete, whose
//! `pxe_enabled` to correct. `processing/ports.rs` carries the plan out.

use std::str::FromStr;

use serde_json::Value;

use crate::ironic::{Node, Port};
use crate::processing::payload::Data;

/// Which interfaces get ports (`add_ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddPorts {
    /// Only the one the node PXE-booted from (every one with an IP
    /// address when the ramdisk did not say which).
    Pxe,
    /// Those with an IP address (discoverd 1.0).
    Active,
    /// All (1.0's `ports_for_inactive_interfaces`).
    All,
    /// None: ports are enrolled by the operator; lookup still uses the MACs.
    Disabled,
}

impl FromStr for AddPorts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pxe" => Ok(AddPorts::Pxe),
            "active" => Ok(AddPorts::Active),
            "all" => Ok(AddPorts::All),
            "disabled" => Ok(AddPorts::Disabled),
            other => Err(format!(
                "unknown add_ports {other:?}: expected pxe, active, all or disabled"
            )),
        }
    }
}

/// Which of the node's ports survive (`keep_ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepPorts {
    /// Every port (discoverd 1.0, the inspector's default).
    All,
    /// Those whose MAC the ramdisk reported.
    Present,
    /// Those of the interfaces `add_ports` chose.
    Added,
}

impl FromStr for KeepPorts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(KeepPorts::All),
            "present" => Ok(KeepPorts::Present),
            "added" => Ok(KeepPorts::Added),
            other => Err(format!(
                "unknown keep_ports {other:?}: expected all, present or added"
            )),
        }
    }
}

/// The port options, as the processing flow applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPolicy {
    pub add_ports: AddPorts,
    pub keep_ports: KeepPorts,
    /// Create ports with the interface's PXE flag, and (with
    /// `overwrite_existing`) correct existing ports' `pxe_enabled`.
    pub update_pxe_enabled: bool,
    pub overwrite_existing: bool,
}

impl Default for PortPolicy {
    fn default() -> Self {
        PortPolicy {
            add_ports: AddPorts::Active,
            keep_ports: KeepPorts::All,
            update_pxe_enabled: true,
            overwrite_existing: false,
        }
    }
}

/// Ironic provision states in which a node's ports are left alone.
const ACTIVE_STATES: [&str; 2] = ["active", "rescue"];

/// What to do with the node's ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// MAC, and `pxe_enabled` when it must be sent (`false`).
    pub create: Vec<(String, Option<bool>)>,
    /// Port UUIDs.
    pub delete: Vec<String>,
    /// Port UUID and the `pxe_enabled` it must have (ports whose
    /// `pxe_enabled` Ironic did not list are left alone).
    pub set_pxe: Vec<(String, bool)>,
}

/// `(mac, pxe)` of each interface of a `validate_interfaces` map.
fn iface_macs(data: &Data, key: &str) -> Vec<(String, bool)> {
    data.get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(|i| {
                    let mac = i.get("mac")?.as_str()?.to_ascii_lowercase();
                    Some((mac, i.get("pxe").and_then(Value::as_bool).unwrap_or(true)))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl PortPolicy {
    /// The ports to create for the MACs in `macs` (lookup order kept)
    /// that the node lacks.
    pub fn creations(&self, data: &Data, existing: &[Port]) -> Vec<(String, Option<bool>)> {
        if self.add_ports == AddPorts::Disabled {
            return Vec::new();
        }
        let ifaces = iface_macs(data, "interfaces");
        crate::processing::payload::lookup_attributes(data)
            .macs
            .into_iter()
            .filter(|m| !existing.iter().any(|p| p.address.eq_ignore_ascii_case(m)))
            .map(|m| {
                let pxe = ifaces
                    .iter()
                    .find(|(mac, _)| mac.eq_ignore_ascii_case(&m))
                    .is_none_or(|(_, pxe)| *pxe);
                (m, (self.update_pxe_enabled && !pxe).then_some(false))
            })
            .collect()
    }

    /// Deletions (`keep_ports`) and `pxe_enabled` corrections for the
    /// node's ports after creation; none for an active node.
    pub fn cleanup(&self, node: &Node, ports: &[Port], data: &Data) -> PortPlan {
        let mut plan = PortPlan::default();
        if node
            .provision_state
            .as_deref()
            .is_some_and(|s| ACTIVE_STATES.contains(&s))
        {
            tracing::debug!("node is active: its ports are not changed");
            return plan;
        }
        let expected: Option<Vec<String>> = match self.keep_ports {
            KeepPorts::All => None,
            KeepPorts::Present => Some(
                iface_macs(data, "all_interfaces")
                    .into_iter()
                    .map(|m| m.0)
                    .collect(),
            ),
            KeepPorts::Added => Some(
                crate::processing::payload::lookup_attributes(data)
                    .macs
                    .iter()
                    .map(|m| m.to_ascii_lowercase())
                    .collect(),
            ),
        };
        if let Some(expected) = expected {
            for p in ports {
                if !expected.contains(&p.address.to_ascii_lowercase()) {
                    tracing::info!(port = %p.uuid, mac = %p.address, "deleting a port whose MAC was not reported");
                    plan.delete.push(p.uuid.clone());
                }
            }
        }
        if self.overwrite_existing && self.update_pxe_enabled {
            for (mac, pxe) in iface_macs(data, "interfaces") {
                if let Some(p) = ports.iter().find(|p| p.address.eq_ignore_ascii_case(&mac))
                    && !plan.delete.contains(&p.uuid)
                    && p.pxe_enabled.is_some_and(|have| have != pxe)
                {
                    plan.set_pxe.push((p.uuid.clone(), pxe));
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn port(uuid: &str, mac: &str, pxe: bool) -> Port {
        serde_json::from_value(json!({"uuid": uuid, "address": mac, "pxe_enabled": pxe}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn data() -> Data {
        serde_json::from_value(json!({
            "all_interfaces": {"eth0": {"mac": "aa:00:00:00:00:01", "pxe": true},
                               "eth1": {"mac": "AA:00:00:00:00:02", "pxe": false},
                               "eth2": {"mac": "aa:00:00:00:00:03", "pxe": false}},
            "interfaces": {"eth0": {"mac": "aa:00:00:00:00:01", "pxe": true},
                           "eth1": {"mac": "AA:00:00:00:00:02", "pxe": false}},
            "macs": ["aa:00:00:00:00:01", "AA:00:00:00:00:02"]
        }))
        .unwrap_or_default()
    }

    fn node(state: &str) -> Node {
        serde_json::from_value(json!({"uuid": "n", "provision_state": state}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn add_ports_decides_creation_and_pxe_flag() {
        let p = PortPolicy::default();
        let existing = [port("p1", "aa:00:00:00:00:01", true)];
        assert_eq!(
            p.creations(&data(), &existing),
            vec![("AA:00:00:00:00:02".to_owned(), Some(false))]
        );
        let no_pxe = PortPolicy {
            update_pxe_enabled: false,
            ..p
        };
        assert_eq!(no_pxe.creations(&data(), &existing)[0].1, None);
        let disabled = PortPolicy {
            add_ports: AddPorts::Disabled,
            ..p
        };
        assert!(disabled.creations(&data(), &[]).is_empty());
    }

    #[test]
    fn keep_ports_and_pxe_corrections() {
        let ports = [
            port("p1", "aa:00:00:00:00:01", false),
            port("p2", "aa:00:00:00:00:02", true),
            port("p3", "aa:00:00:00:00:03", true),
            port("p4", "bb:00:00:00:00:04", true),
        ];
        let all = PortPolicy::default();
        assert_eq!(all.cleanup(&node("enroll"), &ports, &data()), PortPlan::default());
        let present = PortPolicy {
            keep_ports: KeepPorts::Present,
            ..all
        };
        assert_eq!(
            present.cleanup(&node("inspecting"), &ports, &data()).delete,
            ["p4"]
        );
        let added = PortPolicy {
            keep_ports: KeepPorts::Added,
            overwrite_existing: true,
            ..all
        };
        let plan = added.cleanup(&node("manageable"), &ports, &data());
        assert_eq!(plan.delete, ["p3", "p4"]);
        assert_eq!(plan.set_pxe, [("p1".to_owned(), true), ("p2".to_owned(), false)]);
        // Active nodes keep their ports as they are.
        assert_eq!(
            added.cleanup(&node("active"), &ports, &data()),
            PortPlan::default()
        );
    }
}
