//! `capabilities` (ironic-inspector `plugins/capabilities.py`): CPU flags
//! of the inventory become node capabilities (`vmx`/`svm` → `cpu_vt`,
//! `aes` → `cpu_aes`, `pse` → `cpu_hugepages`, `pdpe1gb` →
//! `cpu_hugepages_1g`, `smx` → `cpu_txt`, each `true`), merged into
//! `properties.capabilities` as the inspector's `update_capabilities`
//! does (existing keys keep their place, new ones are appended). The boot
//! mode is the inspector's opt-in (`[capabilities] boot_mode`, off by
//! default) and is not read here yet. A payload without an inventory
//! (discoverd 1.0's shape) is left alone rather than failed.

use serde_json::Value;

use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::ironic::PatchOp;

/// The inspector's `DEFAULT_CPU_FLAGS_MAPPING`, in its order.
pub(super) const CPU_FLAGS: [(&str, &str); 6] = [
    ("vmx", "cpu_vt"),
    ("svm", "cpu_vt"),
    ("aes", "cpu_aes"),
    ("pse", "cpu_hugepages"),
    ("pdpe1gb", "cpu_hugepages_1g"),
    ("smx", "cpu_txt"),
];

#[derive(Debug)]
pub(super) struct Capabilities;

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
        let Some(flags) = ctx
            .data
            .get("inventory")
            .and_then(|i| i.pointer("/cpu/flags"))
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
        else {
            tracing::debug!("no CPU flags in the inventory: no capabilities detected");
            return Ok(None);
        };
        let has = |flag: &str| flags.iter().any(|f| f.as_str() == Some(flag));
        let mut new: Vec<&str> = Vec::new();
        for (flag, cap) in CPU_FLAGS {
            if has(flag) && !new.contains(&cap) {
                new.push(cap);
            }
        }
        if new.is_empty() {
            return Ok(None);
        }
        let new: Vec<(&str, String)> = new.into_iter().map(|c| (c, "true".to_owned())).collect();
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

    fn run(caps: Option<&str>, data: Value) -> Option<Value> {
        let node: Option<Node> =
            serde_json::from_value(json!({"uuid": "u", "properties": {"capabilities": caps}})).ok();
        let node = node?;
        let data: Data = serde_json::from_value(data).ok()?;
        let p = Capabilities
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
}
