//! Aborting an introspection (API 1.3): a waiting node moves to
//! `aborting` before the answer (the `202` is a promise), then in the
//! background it is powered off (when the daemon manages its boot) and
//! ends with "Canceled by operator" through the one finish path, which
//! closes its MACs in the DHCP filter. A restarted daemon finishes the
//! aborts it finds.

use tracing::Instrument;

use super::{Introspector, MoveError, Outcome, manages_boot};
use crate::domain::{NodeId, State, Transition};
use crate::store::StoreError;

/// Why an abort was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum AbortError {
    /// Only a node waiting for its ramdisk can be aborted.
    #[error("Node {node} can not abort introspection in state {state}")]
    NotAbortable { node: NodeId, state: State },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Introspector {
    /// Moves `node` to `aborting` and finishes the abort in the background.
    pub async fn abort(&self, node: NodeId) -> Result<(), AbortError> {
        let status = self.lifecycle.store().get(node).await?;
        self.lifecycle.store().check_writable().await?;
        match self
            .lifecycle
            .advance(node, status.state, Transition::Abort)
            .await
        {
            Ok(_) => {}
            Err(MoveError::Illegal { .. }) => {
                return Err(AbortError::NotAbortable {
                    node,
                    state: status.state,
                });
            }
            Err(MoveError::Store(StoreError::StateChanged { actual, .. })) => {
                return Err(AbortError::NotAbortable {
                    node,
                    state: actual.unwrap_or(status.state),
                });
            }
            Err(MoveError::Store(e)) => return Err(e.into()),
        }
        tracing::info!(node = %node, "aborting introspection");
        self.spawn_abort(node);
        Ok(())
    }

    /// Finishes every abort a previous run accepted. Returns how many.
    pub async fn resume_aborts(&self) -> Result<usize, StoreError> {
        let pending = self.lifecycle.store().in_state(State::Aborting).await?;
        for s in &pending {
            tracing::warn!(node = %s.node, "finishing an abort accepted before the restart");
            self.spawn_abort(s.node);
        }
        Ok(pending.len())
    }

    pub(super) fn spawn_abort(&self, node: NodeId) {
        let this = self.clone();
        let span = tracing::info_span!("abort", node = %node);
        self.tasks.spawn(
            "abort",
            async move { this.finish_abort(node).await }.instrument(span),
        );
    }

    async fn finish_abort(self, node: NodeId) {
        let manage_boot = match self.lifecycle.store().options(node).await {
            Ok(o) => manages_boot(&o),
            Err(e) => {
                tracing::warn!("cannot read the node's options, powering it off: {e}");
                true
            }
        };
        if manage_boot && let Err(e) = self.ironic.set_power_state(&node.to_string(), "power off").await {
            tracing::warn!("failed to power off the node: {e}");
        }
        if let Err(e) = self.lifecycle.finish(node, Outcome::Aborted).await {
            tracing::error!("the abort was not recorded: {e}");
        }
    }
}
