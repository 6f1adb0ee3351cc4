//! `pci_devices` (ironic-inspector `plugins/pci_devices.py`): counts the
//! reported `pci_devices` whose vendor and product id match a
//! `[pci_devices] alias`, and merges the counts into the node's
//! capabilities (`name:count`). Entries without string ids are skipped; a
//! `pci_devices` that is not a list is skipped with a warning (the
//! inspector failed with an internal error).

use std::collections::BTreeMap;

use serde_json::Value;

use super::capabilities::merge_capabilities;
use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::config::processing::PciAlias;
use crate::ironic::PatchOp;

#[derive(Debug)]
pub(super) struct PciDevices {
    pub aliases: Vec<PciAlias>,
}

impl ProcessingHook for PciDevices {
    fn name(&self) -> &'static str {
        "pci_devices"
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let Some(devices) = ctx.data.get("pci_devices") else {
            if !self.aliases.is_empty() {
                tracing::warn!("no PCI devices information was received from the ramdisk");
            }
            return Ok(None);
        };
        let Some(devices) = devices.as_array() else {
            tracing::warn!("pci_devices is not a list: skipped");
            return Ok(None);
        };
        // The last alias of an id pair wins, as in the inspector's dict.
        let by_id: BTreeMap<(&str, &str), &str> = self
            .aliases
            .iter()
            .map(|a| ((a.vendor_id.as_str(), a.product_id.as_str()), a.name.as_str()))
            .collect();
        // Counted per id pair in first-seen order, then keyed by name.
        let mut pairs: Vec<((&str, &str), u64)> = Vec::new();
        for d in devices {
            let (Some(v), Some(p)) = (
                d.get("vendor_id").and_then(Value::as_str),
                d.get("product_id").and_then(Value::as_str),
            ) else {
                continue;
            };
            if !by_id.contains_key(&(v, p)) {
                continue;
            }
            match pairs.iter_mut().find(|(k, _)| *k == (v, p)) {
                Some((_, n)) => *n += 1,
                None => pairs.push(((v, p), 1)),
            }
        }
        let mut counts: Vec<(&str, String)> = Vec::new();
        for (pair, n) in pairs {
            let name = by_id.get(&pair).copied().unwrap_or_default();
            match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, c)) => *c = n.to_string(),
                None => counts.push((name, n.to_string())),
            }
        }
        if counts.is_empty() {
            return Ok(None);
        }
        tracing::info!(?counts, "found PCI devices");
        Ok(Some(HookPatches {
            node: vec![PatchOp::add(
                "/properties/capabilities",
                merge_capabilities(ctx.node, &counts),
            )],
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

    fn alias(v: &str, p: &str, n: &str) -> PciAlias {
        PciAlias {
            vendor_id: v.into(),
            product_id: p.into(),
            name: n.into(),
        }
    }

    #[test]
    fn matching_devices_are_counted_into_capabilities() -> Result<(), HookError> {
        let hook = PciDevices {
            aliases: vec![
                alias("8086", "1572", "intel_nic"),
                alias("10de", "1eb8", "gpu_t4"),
            ],
        };
        let node: Node =
            serde_json::from_value(json!({"uuid": "u", "properties": {"capabilities": "boot_mode:uefi"}}))
                .map_err(|e| HookError(e.to_string()))?;
        let data: Data = serde_json::from_value(json!({"pci_devices": [
            {"vendor_id": "10de", "product_id": "1eb8"}, {"vendor_id": "8086", "product_id": "1572"},
            {"vendor_id": "10de", "product_id": "1eb8"}, {"vendor_id": 5}, "junk",
            {"vendor_id": "1af4", "product_id": "1000"}]}))
        .map_err(|e| HookError(e.to_string()))?;
        let ctx = HookContext {
            node: &node,
            ports: &[],
            data: &data,
        };
        let p = hook.before_update(&ctx)?.unwrap_or_default();
        assert_eq!(
            p.node,
            [PatchOp::add(
                "/properties/capabilities",
                "boot_mode:uefi,gpu_t4:2,intel_nic:1"
            )]
        );
        let odd: Data =
            serde_json::from_value(json!({"pci_devices": {"a": 1}})).map_err(|e| HookError(e.to_string()))?;
        let ctx = HookContext { data: &odd, ..ctx };
        assert_eq!(hook.before_update(&ctx)?, None);
        Ok(())
    }
}
