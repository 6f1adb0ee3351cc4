//! The hooks' checks before lookup. As ironic-inspector does, every hook
//! runs; if any failed (the ramdisk reported an error, data is missing),
//! the node is still looked up, and when found it is failed at once with
//! the failures, so its status shows them instead of `waiting` until the
//! timeout. The ramdisk is answered with the same message, and its logs
//! are kept (ramdisk_logs.rs) under the node's UUID (`unknown` when no
//! node was found).

use super::{Data, ProcessError, Processor, lookup_key};
use crate::hooks::HookError;
use crate::introspection::Outcome;

impl Processor {
    pub(super) async fn preprocess(
        &self,
        data: &mut Data,
        logs: Option<&serde_json::Value>,
    ) -> Result<(), ProcessError> {
        let failures = self.hooks.before_processing_all(data);
        let message = match failures.as_slice() {
            [] => return Ok(()),
            // One failure reads as discoverd 1.0 wrote it.
            [(_, e)] => e.0.clone(),
            many => {
                let lines: Vec<String> = many
                    .iter()
                    .map(|(hook, e)| format!("Preprocessing hook {hook}: {e}"))
                    .collect();
                format!(
                    "The following failures happened during running pre-processing hooks:\n{}",
                    lines.join("\n")
                )
            }
        };
        let node = match self.lifecycle.store().find(&lookup_key(data)).await {
            Ok(found) => {
                tracing::warn!(node = %found.node, "failing the node: {message}");
                let _ = self
                    .lifecycle
                    .finish(found.node, Outcome::Failed(message.clone()))
                    .await;
                Some(found.node)
            }
            Err(e) => {
                tracing::info!("no node to record the ramdisk's failure on ({e}): {message}");
                None
            }
        };
        self.store_logs(logs, true, node, data).await;
        Err(HookError(message).into())
    }
}
