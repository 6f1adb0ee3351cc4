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
                // The final PATCH is safe to repeat (`mark::finishing_ops`):
                // sent again whether or not the daemon that stopped got it
                // to Ironic.
                if awaiting {
                    this.wait_for_power_management(id, node_ops).await;
                } else {
                    this.finish(id, node_ops).await;
                }
            }
            .instrument(span),
        );
    }
}
