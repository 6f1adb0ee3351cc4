//! Processing hooks (spec §10): named steps that check and enrich the
//! ramdisk's data before lookup (`before_processing`) and propose node and
//! port patches before the update (`before_update`), run in the order of
//! `processing_hooks`.
//!
//! One file per hook; [`REGISTRY`] maps each name to its constructor. To
//! add a hook: write `hooks/<name>.rs` implementing [`ProcessingHook`],
//! and add one line to [`REGISTRY`].

mod capabilities;
pub mod device_hints;
#[cfg(test)]
mod device_hints_table;
mod example;
mod extra_hardware;
mod lldp_basic;
mod lldp_tlvs;
mod local_link_connection;
mod pci_devices;
mod physnet_cidr_map;
pub mod port_options;
mod ramdisk_error;
mod root_disk_selection;
mod scheduler;
mod validate_interfaces;

use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::config::processing::PciAlias;
use crate::ironic::{Node, PatchOp, Port};
use crate::processing::payload::Data;
use port_options::{AddPorts, KeepPorts, PortPolicy};

/// A hook's refusal; the message is what the ramdisk and status show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// An unknown name in `processing_hooks`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown processing hook {name:?} in processing_hooks; known hooks: {}", known().join(", "))]
pub struct UnknownHook {
    pub name: String,
}

/// Patches one hook proposes: for the node, per MAC (Ironic's
/// lower-case form) for that node's port, and top-level keys of the
/// processed data to set (later hooks, the rules and the stored data see
/// them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookPatches {
    pub node: Vec<PatchOp>,
    pub ports: BTreeMap<String, Vec<PatchOp>>,
    pub data: Vec<(String, serde_json::Value)>,
}

/// Options the hooks read.
#[derive(Debug, Clone)]
pub struct HookSettings {
    pub overwrite_existing: bool,
    pub ports_for_inactive_interfaces: bool,
    /// `[processing] disk_partitioning_spacing`: leave 1 GiB of the root
    /// disk out of `local_gb`.
    pub disk_partitioning_spacing: bool,
    /// `[processing] add_ports`; unset: 1.0's choice (`active`, or `all`
    /// with `ports_for_inactive_interfaces`).
    pub add_ports: Option<AddPorts>,
    pub keep_ports: KeepPorts,
    pub update_pxe_enabled: bool,
    /// `[pci_devices] alias`.
    pub pci_aliases: Vec<PciAlias>,
    /// `[port_physnet] cidr_map`.
    pub cidr_map: Vec<(ipnet::IpNet, String)>,
    /// `[capabilities] boot_mode`.
    pub boot_mode: bool,
    /// `[capabilities] cpu_flags`: flag -> capability, in order.
    pub cpu_flags: Vec<(String, String)>,
    /// `[extra_hardware] strict`.
    pub extra_hardware_strict: bool,
    /// `root_disk_selection` is in the chain (set by [`HookChain::from_names`]).
    pub root_disk_selection: bool,
}

impl HookSettings {
    /// The port options in force.
    pub fn port_policy(&self) -> PortPolicy {
        PortPolicy {
            add_ports: self.add_ports.unwrap_or(if self.ports_for_inactive_interfaces {
                AddPorts::All
            } else {
                AddPorts::Active
            }),
            keep_ports: self.keep_ports,
            update_pxe_enabled: self.update_pxe_enabled,
            overwrite_existing: self.overwrite_existing,
        }
    }
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            overwrite_existing: false,
            ports_for_inactive_interfaces: false,
            disk_partitioning_spacing: true,
            add_ports: None,
            keep_ports: KeepPorts::All,
            update_pxe_enabled: true,
            pci_aliases: Vec::new(),
            cidr_map: Vec::new(),
            boot_mode: false,
            cpu_flags: crate::config::processing::default_cpu_flags(),
            extra_hardware_strict: false,
            root_disk_selection: false,
        }
    }
}

/// What a hook sees before the update: the node as Ironic has it, every
/// port of the node (those created in this run included), and the data.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    pub node: &'a Node,
    pub ports: &'a [Port],
    pub data: &'a Data,
}

/// An inventory interface that validation kept (`all_interfaces`) and
/// that Ironic has a port for: what the port hooks work on.
#[derive(Debug)]
pub struct InterfacePort<'a> {
    pub name: &'a str,
    pub iface: &'a serde_json::Value,
    pub port: &'a Port,
}

impl<'a> HookContext<'a> {
    /// The report's [`InterfacePort`]s, in inventory order; `None` when the
    /// report has no inventory.
    pub fn interface_ports(&self) -> Option<Vec<InterfacePort<'a>>> {
        use serde_json::Value;
        let data: &'a Data = self.data;
        let ports: &'a [Port] = self.ports;
        let ifaces = data
            .get("inventory")
            .and_then(|i| i.get("interfaces"))
            .and_then(Value::as_array)?;
        let known = data.get("all_interfaces").and_then(Value::as_object);
        Some(
            ifaces
                .iter()
                .filter_map(|iface| {
                    let name = iface.get("name").and_then(Value::as_str)?;
                    let mac = iface.get("mac_address").and_then(Value::as_str)?;
                    known.is_some_and(|k| k.contains_key(name)).then_some(())?;
                    let port = ports.iter().find(|p| p.address.eq_ignore_ascii_case(mac))?;
                    Some(InterfacePort { name, iface, port })
                })
                .collect(),
        )
    }
}

/// One processing hook. Both steps are optional.
pub trait ProcessingHook: Send + Sync + Debug {
    fn name(&self) -> &'static str;
    fn before_processing(&self, _data: &mut Data) -> Result<(), HookError> {
        Ok(())
    }
    fn before_update(&self, _ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        Ok(None)
    }
}

type Constructor = fn(&HookSettings) -> Box<dyn ProcessingHook>;

/// Every hook this build knows, by name.
pub const REGISTRY: &[(&str, Constructor)] = &[
    ("ramdisk_error", |_| Box::new(ramdisk_error::RamdiskError)),
    ("scheduler", |s| {
        Box::new(scheduler::Scheduler {
            overwrite: s.overwrite_existing,
            root_disk_selection: s.root_disk_selection,
        })
    }),
    ("validate_interfaces", |s| {
        Box::new(validate_interfaces::ValidateInterfaces {
            add_ports: s.port_policy().add_ports,
        })
    }),
    ("example", |_| Box::new(example::Example)),
    ("capabilities", |s| {
        Box::new(capabilities::Capabilities {
            boot_mode: s.boot_mode,
            cpu_flags: s.cpu_flags.clone(),
        })
    }),
    ("extra_hardware", |s| {
        Box::new(extra_hardware::ExtraHardware {
            strict: s.extra_hardware_strict,
        })
    }),
    ("root_disk_selection", |s| {
        Box::new(root_disk_selection::RootDiskSelection {
            overwrite: s.overwrite_existing,
            partitioning_spacing: s.disk_partitioning_spacing,
        })
    }),
    ("pci_devices", |s| {
        Box::new(pci_devices::PciDevices {
            aliases: s.pci_aliases.clone(),
        })
    }),
    ("lldp_basic", |_| Box::new(lldp_basic::LldpBasic)),
    ("local_link_connection", |s| {
        Box::new(local_link_connection::LocalLinkConnection {
            overwrite: s.overwrite_existing,
        })
    }),
    ("physnet_cidr_map", |s| {
        Box::new(physnet_cidr_map::PhysnetCidrMap {
            cidr_map: s.cidr_map.clone(),
            overwrite: s.overwrite_existing,
        })
    }),
];

/// The names in [`REGISTRY`].
pub fn known() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

/// The configured hooks, in order.
#[derive(Debug)]
pub struct HookChain {
    hooks: Vec<Box<dyn ProcessingHook>>,
    ports: PortPolicy,
}

impl HookChain {
    pub fn from_names(names: &[String], settings: HookSettings) -> Result<Self, UnknownHook> {
        let settings = HookSettings {
            root_disk_selection: names.iter().any(|n| n == "root_disk_selection"),
            ..settings
        };
        let hooks = names
            .iter()
            .map(|n| {
                REGISTRY
                    .iter()
                    .find(|(name, _)| name == n)
                    .map(|(_, make)| make(&settings))
                    .ok_or_else(|| UnknownHook { name: n.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(HookChain {
            hooks,
            ports: settings.port_policy(),
        })
    }

    /// The port options the processing flow applies.
    pub fn port_policy(&self) -> &PortPolicy {
        &self.ports
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.hooks.iter().map(|h| h.name()).collect()
    }

    /// Every hook's `before_processing`, in order; the first error stops.
    pub fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        self.hooks.iter().try_for_each(|h| h.before_processing(data))
    }

    /// Every hook's `before_processing`, in order, all of them whatever
    /// fails (as ironic-inspector runs them): the failures, by hook.
    pub fn before_processing_all(&self, data: &mut Data) -> Vec<(&'static str, HookError)> {
        self.hooks
            .iter()
            .filter_map(|h| h.before_processing(data).err().map(|e| (h.name(), e)))
            .collect()
    }

    /// Every hook's `before_update`, merged as 1.0 does (spec §5.3 step 2):
    /// node patches concatenated; port patches merged per MAC, a later
    /// hook's operation replacing an earlier one on the same path; then patches for MACs that are not ports of the node, and
    /// empty ones, dropped. Each hook's data changes are made to `data`
    /// before the next hook runs.
    pub fn before_update(
        &self,
        node: &Node,
        ports: &[Port],
        data: &mut Data,
    ) -> Result<HookPatches, HookError> {
        let mut merged = HookPatches::default();
        // Later hooks see the node as the earlier ones' patches leave it
        // (two hooks adding capabilities keep both, as in the inspector).
        let mut current = node.clone();
        for h in &self.hooks {
            let ctx = HookContext {
                node: &current,
                ports,
                data,
            };
            if let Some(p) = h.before_update(&ctx)? {
                if !p.node.is_empty()
                    && let Ok(v) = serde_json::to_value(&current)
                    && let Ok(n) = serde_json::from_value(crate::rules::patched(&v, &p.node))
                {
                    current = n;
                }
                merged.node.extend(p.node);
                // Per port, a later hook's operation on a path replaces an
                // earlier one's; operations on other paths are kept.
                for (mac, ops) in p.ports {
                    let have = merged.ports.entry(mac).or_default();
                    for op in ops {
                        have.retain(|o| o.path() != op.path());
                        have.push(op);
                    }
                }
                for (k, v) in p.data {
                    data.insert(k, v);
                }
            }
        }
        merged
            .ports
            .retain(|mac, ops| !ops.is_empty() && ports.iter().any(|p| p.address.eq_ignore_ascii_case(mac)));
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn chain(names: &[&str], settings: HookSettings) -> HookChain {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        HookChain::from_names(&names, settings).unwrap_or_else(|e| panic!("{e}"))
    }

    fn port(mac: &str) -> Port {
        serde_json::from_value(json!({"uuid": format!("p-{mac}"), "address": mac, "node_uuid": "u"}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn update(c: &HookChain, node: &Node, ports: &[Port], data: &Data) -> Result<HookPatches, HookError> {
        c.before_update(node, ports, &mut data.clone())
    }

    fn node(props: Value) -> Node {
        serde_json::from_value(json!({"uuid": "u", "properties": props})).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The payload of the 1.0 functional test (spec §12).
    fn functest_payload() -> Data {
        match json!({
            "interfaces": {"em1": {"mac": "11:22:33:44:55:66", "ip": "192.168.0.15"},
                           "em2": {"mac": "66:55:44:33:22:11", "ip": ""}},
            "ipmi_address": "1.2.3.4", "cpu_arch": "x86_64", "memory_mb": 12288, "cpus": 4, "local_gb": 464
        }) {
            Value::Object(m) => m,
            _ => Data::new(),
        }
    }

    #[test]
    fn functional_test_payload_gives_1_0_results() -> Result<(), HookError> {
        let c = chain(
            &["ramdisk_error", "scheduler", "validate_interfaces"],
            HookSettings::default(),
        );
        let mut d = functest_payload();
        c.before_processing(&mut d)?;
        assert_eq!(d["macs"], json!(["11:22:33:44:55:66"]));
        let p = update(&c, &node(json!({})), &[port("11:22:33:44:55:66")], &d)?;
        assert_eq!(
            serde_json::to_value(&p.node).unwrap_or_default(),
            json!([
                {"op": "add", "path": "/properties/cpus", "value": "4"},
                {"op": "add", "path": "/properties/cpu_arch", "value": "x86_64"},
                {"op": "add", "path": "/properties/memory_mb", "value": "12288"},
                {"op": "add", "path": "/properties/local_gb", "value": "464"}
            ])
        );
        Ok(())
    }

    #[test]
    fn scheduler_treats_zero_as_missing_and_respects_existing() -> Result<(), HookError> {
        let c = chain(&["scheduler"], HookSettings::default());
        let mut d = functest_payload();
        d.insert("cpus".into(), json!(0));
        d.remove("local_gb");
        let e = c.before_processing(&mut d).err();
        assert_eq!(
            e,
            Some(HookError(
                "The following required parameters are missing: ['cpus', 'local_gb']".into()
            ))
        );
        let d = functest_payload();
        // cpus present (kept), memory_mb 0 (falsy: overwritten).
        let p = update(&c, &node(json!({"cpus": "2", "memory_mb": 0})), &[], &d)?;
        let paths: Vec<&str> = p.node.iter().map(PatchOp::path).collect();
        assert_eq!(
            paths,
            [
                "/properties/cpu_arch",
                "/properties/memory_mb",
                "/properties/local_gb"
            ]
        );
        let c = chain(
            &["scheduler"],
            HookSettings {
                overwrite_existing: true,
                ..HookSettings::default()
            },
        );
        assert_eq!(update(&c, &node(json!({"cpus": "2"})), &[], &d)?.node.len(), 4);
        Ok(())
    }

    #[test]
    fn diskless_ipa_node_gets_local_gb_0_from_root_disk_selection() -> Result<(), HookError> {
        let ipa = || -> Data {
            serde_json::from_value(json!({
                "inventory": {"cpu": {"count": 2, "architecture": "x86_64"}, "memory": {"physical_mb": 2048},
                              "disks": [{"name": "/dev/sr0", "size": 1024}]},
                "cpus": 2, "cpu_arch": "x86_64", "memory_mb": 2048
            }))
            .unwrap_or_default()
        };
        let c = chain(&["root_disk_selection", "scheduler"], HookSettings::default());
        let mut d = ipa();
        c.before_processing(&mut d)?;
        let p = c.before_update(&node(json!({})), &[], &mut d)?;
        assert_eq!(d["local_gb"], json!(0));
        let local: Vec<&PatchOp> = p
            .node
            .iter()
            .filter(|o| o.path() == "/properties/local_gb")
            .collect();
        assert_eq!(local, [&PatchOp::add("/properties/local_gb", "0")]);
        // Without root_disk_selection, or for a 1.0 payload, 1.0's rule holds.
        let alone = chain(&["scheduler"], HookSettings::default());
        assert!(alone.before_processing(&mut ipa()).is_err());
        let mut flat = functest_payload();
        flat.remove("local_gb");
        assert!(c.before_processing(&mut flat).is_err());
        Ok(())
    }

    #[test]
    fn validate_interfaces_rules() -> Result<(), HookError> {
        let c = chain(&["validate_interfaces"], HookSettings::default());
        let mut d: Data = serde_json::from_value(json!({"interfaces": {
            "a": {"mac": "AA:BB:CC:DD:EE:FF", "ip": "10.0.0.1"},
            "b": {"mac": "aa-bb-cc-dd-ee-00", "ip": "10.0.0.2"},
            "c": {"mac": 5, "ip": "10.0.0.3"},
            "d": {"mac": "aa:bb:cc:dd:ee:01"}
        }}))
        .unwrap_or_default();
        c.before_processing(&mut d)?;
        // Case kept; dashes, non-strings and IP-less interfaces dropped.
        assert_eq!(d["macs"], json!(["AA:BB:CC:DD:EE:FF"]));
        let compat = chain(
            &["validate_interfaces"],
            HookSettings {
                ports_for_inactive_interfaces: true,
                ..HookSettings::default()
            },
        );
        let mut legacy: Data =
            serde_json::from_value(json!({"macs": ["aa:bb:cc:dd:ee:01", "bogus"]})).unwrap_or_default();
        compat.before_processing(&mut legacy)?;
        assert_eq!(legacy["macs"], json!(["aa:bb:cc:dd:ee:01"]));
        assert!(legacy["interfaces"].get("dummy0").is_some());
        let mut neither = Data::new();
        assert!(c.before_processing(&mut neither).is_err());
        Ok(())
    }

    #[test]
    fn add_ports_chooses_the_interfaces() -> Result<(), HookError> {
        let data = || -> Data {
            serde_json::from_value(json!({
                "boot_interface": "01-aa-00-00-00-00-02",
                "interfaces": {
                    "lo": {"mac": "00:00:00:00:00:00", "ip": "127.0.0.1"},
                    "eth0": {"mac": "aa:00:00:00:00:01", "ip": "10.0.0.1"},
                    "eth1": {"mac": "AA:00:00:00:00:02", "ip": "10.0.0.2"},
                    "eth2": {"mac": "aa:00:00:00:00:03", "ip": null}}
            }))
            .unwrap_or_default()
        };
        let chosen = |add: Option<AddPorts>| -> Result<Value, HookError> {
            let c = chain(
                &["validate_interfaces"],
                HookSettings {
                    add_ports: add,
                    ..HookSettings::default()
                },
            );
            let mut d = data();
            c.before_processing(&mut d)?;
            assert_eq!(d["all_interfaces"].as_object().map(|m| m.len()), Some(4));
            assert_eq!(d["all_interfaces"]["eth1"]["pxe"], json!(true));
            assert_eq!(d["all_interfaces"]["eth0"]["pxe"], json!(false));
            Ok(d["macs"].clone())
        };
        assert_eq!(chosen(Some(AddPorts::Pxe))?, json!(["AA:00:00:00:00:02"]));
        assert_eq!(chosen(None)?, json!(["aa:00:00:00:00:01", "AA:00:00:00:00:02"]));
        assert_eq!(
            chosen(Some(AddPorts::All))?,
            json!(["aa:00:00:00:00:01", "AA:00:00:00:00:02", "aa:00:00:00:00:03"])
        );
        Ok(())
    }

    #[test]
    fn every_registered_hook_constructs_and_names_itself() {
        let names: Vec<String> = known().iter().map(|n| (*n).to_owned()).collect();
        let c = HookChain::from_names(&names, HookSettings::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.names(), known());
    }

    #[test]
    fn ramdisk_error_and_unknown_hooks() {
        let c = chain(&["ramdisk_error"], HookSettings::default());
        let mut d: Data = serde_json::from_value(json!({"error": "disk on fire"})).unwrap_or_default();
        assert_eq!(
            c.before_processing(&mut d).err(),
            Some(HookError("Ramdisk reported error: disk on fire".into()))
        );
        let mut ok: Data = serde_json::from_value(json!({"error": null})).unwrap_or_default();
        assert!(c.before_processing(&mut ok).is_ok());
        let e = HookChain::from_names(&["scheduler".into(), "edeploy".into()], HookSettings::default()).err();
        assert_eq!(
            e,
            Some(UnknownHook {
                name: "edeploy".into()
            })
        );
    }

    #[derive(Debug)]
    struct PortHook(&'static str, &'static str);
    impl ProcessingHook for PortHook {
        fn name(&self) -> &'static str {
            "port"
        }
        fn before_update(&self, _: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
            let mut p = HookPatches::default();
            p.ports
                .insert(self.0.into(), vec![PatchOp::add("/extra/by", self.1)]);
            p.ports
                .insert("66:55:44:33:22:11".into(), vec![PatchOp::add("/extra/x", "y")]);
            p.node.push(PatchOp::add("/extra/empty", ""));
            Ok(Some(p))
        }
    }

    #[test]
    fn port_patches_are_replaced_per_mac_and_kept_for_any_port_of_the_node() -> Result<(), HookError> {
        let c = HookChain {
            hooks: vec![
                Box::new(PortHook("11:22:33:44:55:66", "first")),
                Box::new(PortHook("11:22:33:44:55:66", "second")),
            ],
            ports: PortPolicy::default(),
        };
        // Existing ports are patched too (not only those created in this
        // run); a MAC that is no port of the node is dropped.
        let p = update(&c, &node(json!({})), &[port("11:22:33:44:55:66")], &Data::new())?;
        assert_eq!(p.ports.len(), 1);
        assert_eq!(
            p.ports["11:22:33:44:55:66"],
            vec![PatchOp::add("/extra/by", "second")]
        );
        // An operation with an empty value is a real patch, kept as 1.0 keeps it.
        assert_eq!(p.node.len(), 2);
        Ok(())
    }
}
