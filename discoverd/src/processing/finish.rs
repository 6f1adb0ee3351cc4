//! The steps after a report was written to Ironic (spec §5.4): power the
//! node off and wait for it, mark it in Ironic, and end the
//! introspection; or, with IPMI credential setup, wait until the new
//! credentials work first.

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

    pub(super) async fn wait_for_power_management(self, id: NodeId) {
        let uuid = id.to_string();
        let until = self.deadline(id).await;
        loop {
            tokio::time::sleep(self.settings.power_poll).await;
            if until.is_some_and(|d| Timestamp::now() >= d) {
                let msg = format!(
                    "Timeout waiting for power credentials update of node {uuid} after introspection"
                );
                return self.fail(id, msg).await;
            }
            match self.ironic.validate_power(&uuid).await {
                Ok(v) if v.result == Some(true) => return self.finish(id).await,
                Ok(_) => {}
                Err(e) => tracing::debug!("power validation failed, retrying: {e}"),
            }
        }
    }

    /// §5.4 *finish*: power off, wait for it, mark the node, done.
    pub(super) async fn finish(&self, id: NodeId) {
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
        loop {
            if !manage_boot {
                break;
            }
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
            tokio::time::sleep(self.settings.power_poll.min(std::time::Duration::from_secs(60))).await;
        }
        let extras = [
            PatchOp::add("/extra/newly_discovered", "true"),
            PatchOp::remove("/extra/on_discovery"),
        ];
        if let Err(e) = self.ironic.patch_node(&uuid, &extras).await {
            // 1.0 let the task die and the node time out; say why instead.
            let msg = format!("Failed to update the extra fields of node {uuid} after introspection: {e}");
            return self.fail(id, msg).await;
        }
        let _ = self.lifecycle.finish(id, Outcome::Done).await;
    }
}
