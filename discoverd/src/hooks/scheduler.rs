//! `scheduler` (1.0): the properties Nova's scheduler needs (cpus,
//! cpu_arch, memory_mb, local_gb) must be reported, and are written to
//! the node unless already set (or `overwrite_existing`). When
//! `root_disk_selection` is in the chain and the report is IPA's (has an
//! inventory), `local_gb` is that hook's, as in ironic-inspector 12.5
//! (whose scheduler hook has no `local_gb`): not required here (a
//! diskless node gets 0 there) and not written here.

use serde_json::Value;

use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::ironic::PatchOp;
use crate::processing::payload::{Data, truthy};

/// Properties the scheduler needs, in the order they are patched.
const SCHEDULER_KEYS: [&str; 4] = ["cpus", "cpu_arch", "memory_mb", "local_gb"];

#[derive(Debug)]
pub(super) struct Scheduler {
    pub overwrite: bool,
    pub root_disk_selection: bool,
}

impl Scheduler {
    /// The keys this hook owns for `data`.
    fn keys(&self, data: &Data) -> &'static [&'static str] {
        if self.root_disk_selection && data.get("inventory").is_some_and(Value::is_object) {
            &SCHEDULER_KEYS[..3]
        } else {
            &SCHEDULER_KEYS
        }
    }
}

impl ProcessingHook for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        let missing: Vec<String> = self
            .keys(data)
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
        for &key in self.keys(data) {
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
