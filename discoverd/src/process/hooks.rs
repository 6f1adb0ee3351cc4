//! Processing hooks (spec §10): named steps that check and enrich the
//! ramdisk's data before lookup (`before_processing`) and propose node and
//! port patches before the update (`before_update`), run in the order of
//! `processing_hooks`.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde_json::Value;

use super::payload::{Data, truthy};
use crate::ironic::{Node, PatchOp};

/// A hook's refusal; the message is what the ramdisk and status show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// An unknown name in `processing_hooks`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown processing hook {name:?} in processing_hooks; known hooks: {}", KNOWN.join(", "))]
pub struct UnknownHook {
    pub name: String,
}

/// Patches one hook proposes: for the node, and per MAC for its port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookPatches {
    pub node: Vec<PatchOp>,
    pub ports: BTreeMap<String, Vec<PatchOp>>,
}

/// Options the hooks read.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookSettings {
    pub overwrite_existing: bool,
    pub ports_for_inactive_interfaces: bool,
}

/// One processing hook. Both steps are optional.
pub trait ProcessingHook: Send + Sync + Debug {
    fn name(&self) -> &'static str;
    fn before_processing(&self, _data: &mut Data) -> Result<(), HookError> {
        Ok(())
    }
    fn before_update(
        &self,
        _node: &Node,
        _created: &[String],
        _data: &Data,
    ) -> Result<Option<HookPatches>, HookError> {
        Ok(None)
    }
}

/// The hooks this build knows.
pub const KNOWN: &[&str] = &["ramdisk_error", "scheduler", "validate_interfaces", "example"];

/// Properties the scheduler needs, in the order they are patched.
const SCHEDULER_KEYS: [&str; 4] = ["cpus", "cpu_arch", "memory_mb", "local_gb"];

#[derive(Debug)]
struct Scheduler {
    overwrite: bool,
}

impl ProcessingHook for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        let missing: Vec<String> = SCHEDULER_KEYS
            .iter()
            .filter(|k| !truthy(data.get(**k)))
            .map(|k| format!("'{k}'"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(HookError(format!(
                "The following required parameters are missing: [{}]",
                missing.join(", ")
            )))
        }
    }

    fn before_update(
        &self,
        node: &Node,
        _created: &[String],
        data: &Data,
    ) -> Result<Option<HookPatches>, HookError> {
        let mut patches = HookPatches::default();
        for key in SCHEDULER_KEYS {
            if self.overwrite || !truthy(node.properties.get(key)) {
                // 1.0 sends str(value): "4", not 4.
                let value = match data.get(key) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => continue,
                };
                patches
                    .node
                    .push(PatchOp::add(format!("/properties/{key}"), value));
            }
        }
        Ok(Some(patches))
    }
}

#[derive(Debug)]
struct ValidateInterfaces {
    compat: bool,
}

fn valid_mac(m: &str) -> bool {
    let lower = m.to_ascii_lowercase();
    let b = lower.as_bytes();
    b.len() == 17
        && b.iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl ProcessingHook for ValidateInterfaces {
    fn name(&self) -> &'static str {
        "validate_interfaces"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        let mut compat = self.compat;
        if !data.contains_key("interfaces") {
            let Some(macs) = data.get("macs").and_then(Value::as_array).cloned() else {
                // 1.0 died with a KeyError (500) here; a clear 400 is better.
                return Err(HookError(
                    "Invalid data: neither interfaces nor macs were reported".into(),
                ));
            };
            tracing::warn!("ramdisk sent the deprecated 'macs' list instead of 'interfaces'");
            let built: serde_json::Map<String, Value> = macs
                .into_iter()
                .enumerate()
                .map(|(i, m)| (format!("dummy{i}"), serde_json::json!({"mac": m})))
                .collect();
            data.insert("interfaces".into(), Value::Object(built));
            compat = true;
        }
        let Some(interfaces) = data.get("interfaces").and_then(Value::as_object) else {
            return Err(HookError("Invalid data: interfaces must be an object".into()));
        };
        let mut valid = serde_json::Map::new();
        let mut macs = Vec::new();
        for (name, iface) in interfaces {
            let mac = iface.get("mac").and_then(Value::as_str);
            let ip_ok = compat || truthy(iface.get("ip"));
            match mac {
                Some(m) if valid_mac(m) && ip_ok => {
                    macs.push(Value::from(m));
                    valid.insert(name.clone(), iface.clone());
                }
                _ => tracing::debug!(interface = %name, "excluding interface: invalid MAC or no IP address"),
            }
        }
        data.insert("interfaces".into(), Value::Object(valid));
        data.insert("macs".into(), Value::Array(macs));
        Ok(())
    }
}

#[derive(Debug)]
struct RamdiskError;

impl ProcessingHook for RamdiskError {
    fn name(&self) -> &'static str {
        "ramdisk_error"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        match data.get("error") {
            e if truthy(e) => {
                let text = match e {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                Err(HookError(format!("Ramdisk reported error: {text}")))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Example;

impl ProcessingHook for Example {
    fn name(&self) -> &'static str {
        "example"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        tracing::debug!(keys = data.len(), "example hook: before_processing");
        Ok(())
    }

    fn before_update(
        &self,
        node: &Node,
        created: &[String],
        _data: &Data,
    ) -> Result<Option<HookPatches>, HookError> {
        tracing::debug!(node = %node.uuid, ports = created.len(), "example hook: before_update");
        Ok(None)
    }
}

/// The configured hooks, in order.
#[derive(Debug)]
pub struct HookChain {
    hooks: Vec<Box<dyn ProcessingHook>>,
}

impl HookChain {
    pub fn from_names(names: &[String], settings: HookSettings) -> Result<Self, UnknownHook> {
        let hooks = names
            .iter()
            .map(|n| -> Result<Box<dyn ProcessingHook>, UnknownHook> {
                Ok(match n.as_str() {
                    "scheduler" => Box::new(Scheduler {
                        overwrite: settings.overwrite_existing,
                    }),
                    "validate_interfaces" => Box::new(ValidateInterfaces {
                        compat: settings.ports_for_inactive_interfaces,
                    }),
                    "ramdisk_error" => Box::new(RamdiskError),
                    "example" => Box::new(Example),
                    other => return Err(UnknownHook { name: other.into() }),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(HookChain { hooks })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.hooks.iter().map(|h| h.name()).collect()
    }

    /// Every hook's `before_processing`, in order; the first error stops.
    pub fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        self.hooks.iter().try_for_each(|h| h.before_processing(data))
    }

    /// Every hook's `before_update`, merged as 1.0 does (spec §5.3 step 2):
    /// node patches concatenated; port patches replaced per MAC by later
    /// hooks; then MACs not created in this run and empty port patches
    /// dropped.
    pub fn before_update(
        &self,
        node: &Node,
        created: &[String],
        data: &Data,
    ) -> Result<HookPatches, HookError> {
        let mut merged = HookPatches::default();
        for h in &self.hooks {
            if let Some(p) = h.before_update(node, created, data)? {
                merged.node.extend(p.node);
                merged.ports.extend(p.ports);
            }
        }
        // 1.0 drops empty patch dicts here; a typed PatchOp is never
        // empty, so every node operation is kept (values are not judged).
        merged
            .ports
            .retain(|mac, ops| created.contains(mac) && !ops.is_empty());
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(names: &[&str], settings: HookSettings) -> HookChain {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        HookChain::from_names(&names, settings).unwrap_or_else(|e| panic!("{e}"))
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
        let p = c.before_update(&node(json!({})), &["11:22:33:44:55:66".into()], &d)?;
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
        let p = c.before_update(&node(json!({"cpus": "2", "memory_mb": 0})), &[], &d)?;
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
        assert_eq!(
            c.before_update(&node(json!({"cpus": "2"})), &[], &d)?.node.len(),
            4
        );
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
        fn before_update(&self, _: &Node, _: &[String], _: &Data) -> Result<Option<HookPatches>, HookError> {
            let mut p = HookPatches::default();
            p.ports
                .insert(self.0.into(), vec![PatchOp::add("/extra/by", self.1)]);
            p.ports
                .insert("not-created".into(), vec![PatchOp::add("/extra/x", "y")]);
            p.node.push(PatchOp::add("/extra/empty", ""));
            Ok(Some(p))
        }
    }

    #[test]
    fn port_patches_are_replaced_per_mac_and_filtered() -> Result<(), HookError> {
        let c = HookChain {
            hooks: vec![
                Box::new(PortHook("m1", "first")),
                Box::new(PortHook("m1", "second")),
            ],
        };
        let p = c.before_update(&node(json!({})), &["m1".into()], &Data::new())?;
        assert_eq!(p.ports.len(), 1);
        assert_eq!(p.ports["m1"], vec![PatchOp::add("/extra/by", "second")]);
        // An operation with an empty value is a real patch, kept as 1.0 keeps it.
        assert_eq!(p.node.len(), 2);
        Ok(())
    }
}
