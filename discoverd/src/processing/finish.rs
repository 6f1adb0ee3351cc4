//! The steps after a report was accepted (spec §5.4): power the node off
//! and wait for it, then write the hooks' node changes and the finishing
//! marks in ONE Ironic PATCH, and end the introspection; or, with IPMI
//! credential setup, wait until the new credentials work first.
//!
//! Waits poll with a growing back-off ([`crate::backoff`]): Ironic usually
//! reports the new power state within a few hundred milliseconds, and a
//! fixed 5-second poll (1.0) made every introspection that much longer.
//! A failure before the PATCH leaves the node as it was during the run,
//! `extra.on_discovery` included, and the error says why (1.0's
//! semantics).

use crate::domain::{NodeId, Timestamp};
use crate::introspection::{Outcome, manages_boot};
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

    /// §5.4 *finish*: power off, wait for it, then one PATCH with the
    /// hooks' node changes (`node_ops`) and the finishing marks, done.
    pub(super) async fn finish(&self, id: NodeId, node_ops: Vec<PatchOp>) {
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
        let until = self.deadline(id).await;
        let mut backoff = self.settings.power_poll.start();
        loop {
            if !manage_boot {
                break;
            }
            // Ironic answers the power PUT before the conductor acts:
            // pause first, the first pause is short.
            backoff.wait().await;
            match self.ironic.get_node(&uuid).await {
                Ok(n) if n.power_state.as_deref().map(str::to_lowercase).as_deref() == Some("power off") => {
                    break;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("failed to read the power state, retrying: {e}"),
            }
            if until.is_some_and(|d| Timestamp::now() >= d) {
                let msg = format!("Timeout waiting for node {uuid} to power off after introspection");
                return self.fail(id, msg).await;
            }
        }
        let mut ops = node_ops;
        ops.push(PatchOp::add("/extra/newly_discovered", "true"));
        ops.push(PatchOp::remove("/extra/on_discovery"));
        if let Err(e) = self.ironic.patch_node(&uuid, &ops).await {
            // 1.0 let the task die and the node time out; say why instead.
            let msg = format!(
                "Failed to update the properties and extra fields of node {uuid} after introspection: {e}"
            );
            return self.fail(id, msg).await;
        }
        let _ = self.lifecycle.finish(id, Outcome::Done).await;
    }
}
