//! Carrying on, on this daemon, the finishing steps of a report another
//! daemon answered and died before finishing: the step it recorded
//! ([`crate::store::Step`]) says which, with the hooks' node changes.

use tracing::Instrument;

use super::Processor;
use crate::domain::NodeId;
use crate::introspection::Outcome;
use crate::ironic::PatchOp;
use crate::store::Step;

impl Processor {
    /// Records the step that follows an answered report, so that another
    /// daemon carries it on if this one dies (a no-op without leases).
    pub(super) async fn record_step(
        &self,
        id: NodeId,
        awaiting_credentials: bool,
        node_ops: &[PatchOp],
    ) -> Result<(), crate::store::StoreError> {
        if self.lifecycle.store().lease_time().is_none() {
            return Ok(());
        }
        let node_ops = serde_json::to_value(node_ops).unwrap_or_default();
        let step = if awaiting_credentials {
            Step::AwaitCredentials { node_ops }
        } else {
            Step::Finish { node_ops }
        };
        self.lifecycle.store().record_step(id, &step).await
    }

    /// Runs the recorded step of a claimed node in the background.
    pub fn carry_on(&self, id: NodeId, step: Step) {
        let this = self.clone();
        let span = tracing::info_span!("take_over_finish", node = %id);
        self.tasks.spawn(
            "take_over_finish",
            async move {
                let awaiting = matches!(step, Step::AwaitCredentials { .. });
                let node_ops: Vec<PatchOp> = match step {
                    Step::Finish { node_ops } | Step::AwaitCredentials { node_ops } => {
                        match serde_json::from_value(node_ops) {
                            Ok(ops) => ops,
                            Err(e) => {
                                let msg =
                                    format!("The recorded finishing step of node {id} is unreadable: {e}");
                                let _ = this.lifecycle.finish(id, Outcome::Failed(msg)).await;
                                return;
                            }
                        }
                    }
                };
                if this.final_patch_sent(id).await {
                    tracing::info!(
                        "the daemon that stopped had sent the final update: powering off and ending"
                    );
                    this.power_off_and_end(id).await;
                } else if awaiting {
                    this.wait_for_power_management(id, node_ops).await;
                } else {
                    this.finish(id, node_ops).await;
                }
            }
            .instrument(span),
        );
    }

    /// Whether the final PATCH of a taken-over node already reached
    /// Ironic: the start's `extra.on_discovery` mark is gone (that PATCH
    /// removes it with the hooks' changes, atomically). The holder may
    /// have died after Ironic applied it but before recording the end;
    /// sending it again would fail (the mark cannot be removed twice).
    async fn final_patch_sent(&self, id: NodeId) -> bool {
        match self.ironic.get_node(&id.to_string()).await {
            Ok(n) => !n.extra.contains_key("on_discovery"),
            Err(e) => {
                tracing::debug!("cannot read the node, carrying the step on: {e}");
                false
            }
        }
    }
}
