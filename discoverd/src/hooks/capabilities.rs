//! `capabilities` (ironic-inspector `plugins/capabilities.py`): CPU flags
//! of the inventory become node capabilities (`vmx`/`svm` → `cpu_vt`,
//! `aes` → `cpu_aes`, `pse` → `cpu_hugepages`, `pdpe1gb` →
//! `cpu_hugepages_1g`, `smx` → `cpu_txt`, each `true`), merged into
//! `properties.capabilities` as the inspector's `update_capabilities`
//! does (existing keys keep their place, new ones are appended). The
//! flags and names are `[capabilities] cpu_flags` (default above). With
//! `[capabilities] boot_mode` (off by default) the inventory's
//! `boot.current_boot_mode` is added first as `boot_mode:<mode>`. A
//! payload without an inventory (discoverd 1.0's shape) is left alone
//! rather than failed.

use serde_json::Value;

use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::ironic::PatchOp;

#[derive(Debug)]
pub(super) struct Capabilities {
    pub boot_mode: bool,
    pub cpu_flags: Vec<(String, String)>,
}

/// `k:v,k2:v2` as ordered pairs (the inspector's `capabilities_to_dict`).
fn parse_caps(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|c| !c.is_empty())
        .map(|c| match c.split_once(':') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (c.to_owned(), String::new()),
        })
        .collect()
}

/// The node's `properties.capabilities` with `new` merged in as the
/// inspector's `update_capabilities` does: existing keys keep their place
/// and get the new value, new keys are appended.
pub(super) fn merge_capabilities(node: &crate::ironic::Node, new: &[(&str, String)]) -> String {
    let existing = node
        .properties
        .get("capabilities")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut caps = parse_caps(existing);
    for (cap, value) in new {
        match caps.iter_mut().find(|(k, _)| k == cap) {
            Some((_, v)) => v.clone_from(value),
            None => caps.push(((*cap).to_owned(), value.clone())),
        }
    }
    let joined: Vec<String> = caps.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    joined.join(",")
}

impl ProcessingHook for Capabilities {
    fn name(&self) -> &'static str {
        "capabilities"
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let Some(inventory) = ctx.data.get("inventory").filter(|i| i.is_object()) else {
            return Ok(None);
        };
        let mut new: Vec<(&str, String)> = Vec::new();
        if self.boot_mode {
            // The inspector stores whatever the ramdisk said; only a
            // string is taken here (a number or list would not round-trip).
            match inventory
                .pointer("/boot/current_boot_mode")
                .and_then(Value::as_str)
            {
                Some(mode) => new.push(("boot_mode", mode.to_owned())),
                None => tracing::warn!("no boot mode information available"),
            }
        }
        let flags = inventory
            .pointer("/cpu/flags")
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty());
        match flags {
            Some(flags) => {
                let has = |flag: &str| flags.iter().any(|f| f.as_str() == Some(flag));
                for (flag, cap) in &self.cpu_flags {
                    if has(flag) && !new.iter().any(|(c, _)| c == cap) {
                        new.push((cap.as_str(), "true".to_owned()));
                    }
                }
            }
            None => tracing::debug!("no CPU flags in the inventory"),
        }
        if new.is_empty() {
            return Ok(None);
        }
        let joined = merge_capabilities(ctx.node, &new);
        Ok(Some(HookPatches {
            node: vec![PatchOp::add("/properties/capabilities", joined)],
            ..HookPatches::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ironic::Node;
    use crate::processing::Data;
    use serde_json::json;

    fn hook(boot_mode: bool) -> Capabilities {
        Capabilities {
            boot_mode,
            cpu_flags: crate::hooks::HookSettings::default().cpu_flags,
        }
    }

    fn run(caps: Option<&str>, data: Value) -> Option<Value> {
        run_with(&hook(false), caps, data)
    }

    fn run_with(h: &Capabilities, caps: Option<&str>, data: Value) -> Option<Value> {
        let node: Option<Node> =
            serde_json::from_value(json!({"uuid": "u", "properties": {"capabilities": caps}})).ok();
        let node = node?;
        let data: Data = serde_json::from_value(data).ok()?;
        let p = h
            .before_update(&HookContext {
                node: &node,
                ports: &[],
                data: &data,
            })
            .ok()??;
        serde_json::to_value(&p.node).ok()
    }

    #[test]
    fn cpu_flags_become_capabilities_as_the_inspector_sets_them() {
        let data =
            json!({"inventory": {"cpu": {"flags": ["fpu", "pse", "aes", "svm", "smx", "pdpe1gb", "vmx"]}}});
        assert_eq!(
            run(Some("boot_mode:uefi,cpu_aes:false"), data),
            Some(json!([{"op": "add", "path": "/properties/capabilities",
                         "value": "boot_mode:uefi,cpu_aes:true,cpu_vt:true,cpu_hugepages:true,cpu_hugepages_1g:true,cpu_txt:true"}]))
        );
        let only_aes = json!({"inventory": {"cpu": {"flags": ["aes", "sse2"]}}});
        assert_eq!(
            run(None, only_aes),
            Some(json!([{"op": "add", "path": "/properties/capabilities", "value": "cpu_aes:true"}]))
        );
        assert_eq!(
            run(None, json!({"inventory": {"cpu": {"flags": ["sse2"]}}})),
            None
        );
        assert_eq!(run(None, json!({"inventory": {"cpu": {}}})), None);
        assert_eq!(run(None, json!({"cpus": 4})), None);
    }

    #[test]
    fn boot_mode_and_configured_flags() {
        let data =
            json!({"inventory": {"boot": {"current_boot_mode": "uefi"}, "cpu": {"flags": ["vmx", "avx2"]}}});
        // Off by default: only the CPU flags.
        assert_eq!(
            run(Some("boot_mode:bios"), data.clone()),
            Some(
                json!([{"op": "add", "path": "/properties/capabilities", "value": "boot_mode:bios,cpu_vt:true"}])
            )
        );
        assert_eq!(
            run_with(&hook(true), Some("boot_mode:bios,x:y"), data.clone()),
            Some(
                json!([{"op": "add", "path": "/properties/capabilities", "value": "boot_mode:uefi,x:y,cpu_vt:true"}])
            )
        );
        assert_eq!(
            run_with(
                &hook(true),
                None,
                json!({"inventory": {"boot": {"current_boot_mode": "bios"}, "cpu": {}}})
            ),
            Some(json!([{"op": "add", "path": "/properties/capabilities", "value": "boot_mode:bios"}]))
        );
        // No boot information, a boot mode that is not a string: nothing.
        assert_eq!(
            run_with(
                &hook(true),
                None,
                json!({"inventory": {"boot": {"current_boot_mode": 1}}})
            ),
            None
        );
        let custom = Capabilities {
            boot_mode: false,
            cpu_flags: vec![("avx2".into(), "cpu_avx2".into()), ("vmx".into(), "virt".into())],
        };
        assert_eq!(
            run_with(&custom, None, data),
            Some(
                json!([{"op": "add", "path": "/properties/capabilities", "value": "cpu_avx2:true,virt:true"}])
            )
        );
    }
}
