//! `root_disk_selection` (ironic-inspector `plugins/standard.py`
//! `RootDiskSelectionHook`): with root device hints on the node
//! (`properties.root_device`), the first disk of the inventory matching
//! them becomes `root_disk`, after dropping the disks any of
//! `properties.skip_block_devices` matches; no disk matching fails the
//! introspection. Then `local_gb` is the root disk's size in GiB (rounded
//! down, minus one with `disk_partitioning_spacing`; 0 without a root
//! disk: a diskless node), written to the data and to the node unless it
//! has one (or `overwrite_existing`). Hint semantics: [`super::device_hints`].
//!
//! Without an inventory (discoverd 1.0's payload) the hook does nothing:
//! the inspector fails such a report, 1.0's `local_gb` is kept instead.

use serde_json::Value;

use super::device_hints::{self, HintError};
use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::ironic::PatchOp;
use crate::processing::payload::truthy;

const GIB: u64 = 1024 * 1024 * 1024;

#[derive(Debug)]
pub(super) struct RootDiskSelection {
    pub overwrite: bool,
    pub partitioning_spacing: bool,
}

fn disk_list(inventory: &Value) -> Result<Vec<Value>, HookError> {
    match inventory.get("disks") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(d)) => Ok(d.clone()),
        Some(other) => Err(HookError(format!(
            "Invalid data: inventory.disks must be a list, got {}",
            crate::json::type_name(other)
        ))),
    }
}

fn disk_name(d: &Value) -> &str {
    d.get("name").and_then(Value::as_str).unwrap_or("?")
}

impl RootDiskSelection {
    /// The disks left after `skip_block_devices`.
    fn skip(&self, ctx: &HookContext<'_>, disks: Vec<Value>) -> Result<Vec<Value>, HookError> {
        let skips = match ctx.node.properties.get("skip_block_devices") {
            Some(Value::Array(s)) => s.as_slice(),
            v if !truthy(v) => return Ok(disks),
            None => return Ok(disks),
            Some(other) => {
                return Err(HookError(format!(
                    "properties.skip_block_devices of node {} must be a list of hints, got {}",
                    ctx.node.uuid,
                    crate::json::type_name(other)
                )));
            }
        };
        let mut skipped = vec![false; disks.len()];
        for hint in skips {
            let bad = |e: HintError| HookError(format!("Invalid skip_block_devices hint {hint}: {e}"));
            let Some(parsed) = device_hints::parse(hint).map_err(bad)? else {
                continue;
            };
            for i in device_hints::find(&disks, &parsed, false).map_err(bad)? {
                if !skipped[i] {
                    tracing::warn!(hint = %hint, disk = disk_name(&disks[i]), "skipping a block device");
                }
                skipped[i] = true;
            }
        }
        Ok(disks
            .into_iter()
            .zip(skipped)
            .filter_map(|(d, s)| (!s).then_some(d))
            .collect())
    }
}

impl ProcessingHook for RootDiskSelection {
    fn name(&self) -> &'static str {
        "root_disk_selection"
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let Some(inventory) = ctx.data.get("inventory").filter(|i| truthy(Some(i))) else {
            tracing::debug!("no inventory: root_disk_selection has nothing to do");
            return Ok(None);
        };
        let mut patches = HookPatches::default();
        let hints_value = ctx.node.properties.get("root_device").unwrap_or(&Value::Null);
        let invalid = |e: HintError| {
            HookError(format!(
                "No disks could be found using the root device hints {hints_value} because they failed to validate. Error: {e}"
            ))
        };
        let mut root_disk = ctx.data.get("root_disk").cloned();
        if let Some(hints) = device_hints::parse(hints_value).map_err(invalid)? {
            let disks = self.skip(ctx, disk_list(inventory)?)?;
            let found = device_hints::find(&disks, &hints, true).map_err(invalid)?;
            let Some(&i) = found.first() else {
                return Err(HookError("No disks satisfied root device hints".into()));
            };
            tracing::debug!(
                disk = disk_name(&disks[i]),
                "disk satisfies the root device hints"
            );
            root_disk = Some(disks[i].clone());
            let mut inv = inventory.clone();
            inv["disks"] = Value::Array(disks.clone());
            patches.data.push(("inventory".into(), inv));
            patches.data.push(("root_disk".into(), disks[i].clone()));
        }
        let local_gb = match root_disk.filter(|d| truthy(Some(d))) {
            Some(disk) => {
                let size = disk.get("size").and_then(Value::as_u64).ok_or_else(|| {
                    HookError(format!(
                        "Invalid data: the root disk's size is not a number of bytes: {}",
                        disk.get("size").unwrap_or(&Value::Null)
                    ))
                })?;
                match size / GIB {
                    0 => {
                        tracing::warn!("the root disk is smaller than 1 GiB or its size is unknown");
                        0
                    }
                    gb if self.partitioning_spacing => gb - 1,
                    gb => gb,
                }
            }
            None => {
                tracing::info!("no root device found, assuming a diskless node");
                0
            }
        };
        patches.data.push(("local_gb".into(), Value::from(local_gb)));
        if self.overwrite || !truthy(ctx.node.properties.get("local_gb")) {
            patches
                .node
                .push(PatchOp::add("/properties/local_gb", local_gb.to_string()));
        }
        Ok(Some(patches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ironic::Node;
    use crate::processing::Data;
    use serde_json::json;

    fn run(props: Value, data: Value, overwrite: bool) -> Result<Option<HookPatches>, HookError> {
        let node: Node = serde_json::from_value(json!({"uuid": "u", "properties": props}))
            .map_err(|e| HookError(e.to_string()))?;
        let data: Data = serde_json::from_value(data).map_err(|e| HookError(e.to_string()))?;
        RootDiskSelection {
            overwrite,
            partitioning_spacing: true,
        }
        .before_update(&HookContext {
            node: &node,
            ports: &[],
            data: &data,
        })
    }

    fn inventory() -> Value {
        json!({"inventory": {"interfaces": [{"name": "eth0"}], "disks": [
            {"name": "/dev/sda", "size": 20 * GIB, "model": "small", "rotational": true},
            {"name": "/dev/sdb", "size": 100 * GIB, "model": "big", "rotational": false},
            {"name": "/dev/sdc", "size": 500 * GIB, "model": "big", "rotational": false}]},
            "root_disk": {"name": "/dev/sda", "size": 20 * GIB}})
    }

    fn data_value(p: &HookPatches, key: &str) -> Option<Value> {
        p.data.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn hints_choose_the_root_disk_and_local_gb() -> Result<(), HookError> {
        // Without hints: IPA's root_disk, minus the partitioning GiB.
        let p = run(json!({}), inventory(), false)?.unwrap_or_default();
        assert_eq!(data_value(&p, "local_gb"), Some(json!(19)));
        assert_eq!(p.node, [PatchOp::add("/properties/local_gb", "19")]);
        // Hints, after skip_block_devices dropped /dev/sdb.
        let props = json!({"root_device": {"model": "big"}, "skip_block_devices": [{"size": 100}],
                           "local_gb": "7"});
        let p = run(props.clone(), inventory(), false)?.unwrap_or_default();
        assert_eq!(
            data_value(&p, "root_disk").map(|d| d["name"].clone()),
            Some(json!("/dev/sdc"))
        );
        assert_eq!(data_value(&p, "local_gb"), Some(json!(499)));
        let disks = data_value(&p, "inventory").map(|i| i["disks"].as_array().map_or(0, Vec::len));
        assert_eq!(disks, Some(2));
        // The node's own local_gb is kept unless overwrite_existing.
        assert!(p.node.is_empty());
        let p = run(props, inventory(), true)?.unwrap_or_default();
        assert_eq!(p.node, [PatchOp::add("/properties/local_gb", "499")]);
        // No root disk at all: a diskless node.
        let mut diskless = inventory();
        diskless.as_object_mut().map(|o| o.remove("root_disk"));
        let p = run(json!({}), diskless, false)?.unwrap_or_default();
        assert_eq!(data_value(&p, "local_gb"), Some(json!(0)));
        // 1.0's payload: nothing to do.
        assert_eq!(
            run(json!({"root_device": {"size": 1}}), json!({"cpus": 1}), false)?,
            None
        );
        Ok(())
    }

    #[test]
    fn bad_hints_and_bad_data_are_clear_errors() {
        let err = |props: Value, data: Value| run(props, data, false).err().map(|e| e.0).unwrap_or_default();
        assert_eq!(
            err(json!({"root_device": {"model": "nothere"}}), inventory()),
            "No disks satisfied root device hints"
        );
        assert!(err(json!({"root_device": {"size": -1}}), inventory()).contains("failed to validate"));
        assert!(err(json!({"root_device": {"colour": "red"}}), inventory()).contains("are invalid"));
        assert!(err(json!({"root_device": "sda"}), inventory()).contains("must be an object"));
        let mut bad = inventory();
        bad["inventory"]["disks"] = json!({"sda": 1});
        assert!(err(json!({"root_device": {"size": 20}}), bad).contains("must be a list"));
        let mut bad = inventory();
        bad["inventory"]["disks"] = json!([5, "x"]);
        assert!(err(json!({"root_device": {"size": 20}}), bad).contains("not an object"));
        let mut bad = inventory();
        bad["root_disk"] = json!({"name": "/dev/sda", "size": "big"});
        assert!(err(json!({}), bad).contains("size"));
        assert!(
            err(
                json!({"root_device": {"size": 20}, "skip_block_devices": "sda"}),
                inventory()
            )
            .contains("list")
        );
    }
}
