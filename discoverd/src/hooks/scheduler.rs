//! `scheduler` (1.0): the properties Nova's scheduler needs (cpus,
//! cpu_arch, memory_mb, local_gb) must be reported, and are written to
//! the node unless already set (or `overwrite_existing`).

use serde_json::Value;

use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::ironic::PatchOp;
use crate::processing::payload::{Data, truthy};

/// Properties the scheduler needs, in the order they are patched.
const SCHEDULER_KEYS: [&str; 4] = ["cpus", "cpu_arch", "memory_mb", "local_gb"];

#[derive(Debug)]
pub(super) struct Scheduler {
    pub overwrite: bool,
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

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let (node, data) = (ctx.node, ctx.data);
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
