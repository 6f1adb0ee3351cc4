//! `example` (1.0): logs that it ran; a template for new hooks.

use super::{HookContext, HookError, HookPatches, ProcessingHook};
use crate::processing::payload::Data;

#[derive(Debug)]
pub(super) struct Example;

impl ProcessingHook for Example {
    fn name(&self) -> &'static str {
        "example"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        tracing::debug!(keys = data.len(), "example hook: before_processing");
        Ok(())
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        tracing::debug!(node = %ctx.node.uuid, ports = ctx.ports.len(), "example hook: before_update");
        Ok(None)
    }
}
