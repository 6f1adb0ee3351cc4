//! The steps after a report was accepted (spec §5.4): write the hooks'
//! node changes and the finishing marks in ONE Ironic PATCH, then power the
//! node off, and end the introspection once Ironic accepted the power-off
//! (as ironic-inspector 12.5 does); or, with IPMI credential setup, wait
//! until the new credentials work first.
//!
//! 1.0 powered off first, polled Ironic every 5 s until the node read
//! `power off`, and only then removed `extra.on_discovery`. Writing first
//! saves that wait and a `GET` of the node per introspection; whether the
//! power-off itself worked is Ironic's to record (`last_error`), as for
//! every power action it carries out. 1.0's failure semantics stay: a node
//! whose run fails gets `extra.on_discovery` ([`crate::introspection::mark`],
//! also when the power-off is refused after the PATCH), and the error names
//! the call and why.
//!
//! Waiting for new IPMI credentials polls power validation with a growing
//! back-off ([`crate::backoff`]).

use crate::domain::{NodeId, Timestamp};
use crate::introspection::{Outcome, manages_boot, mark};
use crate::ironic::PatchOp;

use super::Processor;

impl Processor {
    /// When the current run must give up; `None` when the timeout is
    /// disabled. (1.0 computed `started_at + 0` with a disabled timeout
    /// and so failed every run there; a disabled timeout means no
    /// deadline here.)
    async fn deadline(&self, id: NodeId) -> Option<Timestamp> {
        let started = self.lifecycle.store().get(id).await.ok()?.started_at;
        self.settings.timeout.map(|t| started.plus(t))
    }

    async fn fail(&self, id: NodeId, message: String) {
        let _ = self.lifecycle.finish(id, Outcome::Failed(message)).await;
    }

    pub(super) async fn wait_for_power_management(self, id: NodeId, node_ops: Vec<PatchOp>) {
        let uuid = id.to_string();
        let until = self.deadline(id).await;
        let mut backoff = self.settings.power_poll.start();
        loop {
            backoff.wait().await;
            if until.is_some_and(|d| Timestamp::now() >= d) {
                let msg = format!(
                    "Timeout waiting for power credentials update of node {uuid} after introspection"
                );
                return self.fail(id, msg).await;
            }
            match self.ironic.validate_power(&uuid).await {
                Ok(v) if v.result == Some(true) => return self.finish(id, node_ops).await,
                Ok(_) => {}
                Err(e) => tracing::debug!("power validation failed, retrying: {e}"),
            }
        }
    }

    /// §5.4 *finish*: one PATCH with the hooks' node changes
    /// (`node_ops`) and the finishing marks, then the power-off, done.
    pub(super) async fn finish(&self, id: NodeId, node_ops: Vec<PatchOp>) {
        let uuid = id.to_string();
        let mut ops = node_ops;
        ops.extend(mark::finishing_ops());
        if let Err(e) = self.ironic.patch_node(&uuid, &ops).await {
            // 1.0 let the task die and the node time out; say why instead.
            let msg = format!(
                "Failed to update the properties and extra fields of node {uuid} after introspection: {e}"
            );
            return self.fail(id, msg).await;
        }
        self.power_off_and_end(id).await;
    }

    /// The rest of the finish once the final PATCH is in Ironic (also
    /// where a takeover resumes): the power-off, safe to send again, then
    /// the end.
    pub(super) async fn power_off_and_end(&self, id: NodeId) {
        let uuid = id.to_string();
        let manage_boot = match self.lifecycle.store().options(id).await {
            Ok(o) => manages_boot(&o),
            Err(_) => true,
        };
        if manage_boot && let Err(e) = self.ironic.set_power_state(&uuid, "power off").await {
            let msg =
                format!("Failed to power off node {uuid}, check it's power management configuration: {e}");
            return self.fail(id, msg).await;
        }
        let _ = self.lifecycle.finish(id, Outcome::Done).await;
    }
}
