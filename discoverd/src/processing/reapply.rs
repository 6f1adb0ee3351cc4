//! Reapplying (API 1.4, with a body from 1.15): the processing hooks and
//! the Ironic update run again on stored raw data (or on data the caller
//! sends), for an introspection that has ended. No power action, no
//! lookup. The node is `reapplying` before the answer (a `202` is a
//! promise), and ends through the one finish path.

use serde_json::Value;
use tracing::Instrument;

use super::{Processor, normalize};
use crate::domain::{NodeId, State, Transition};
use crate::introspection::{MoveError, Outcome};
use crate::store::{DataKind, StoreError};

/// Why a reapply was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ReapplyError {
    #[error(
        "Inspector is not configured to store introspection data. Set the store_data configuration option to change this."
    )]
    StoreDisabled,
    #[error("No unprocessed introspection data stored for node {0}")]
    NoData(NodeId),
    #[error("Node {node} is in state {state}: data can be reapplied only once its introspection has ended")]
    Busy { node: NodeId, state: State },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Processor {
    /// Moves an ended node to `reapplying` and processes `body` (or its
    /// stored raw data) in the background. A body given is stored as the
    /// node's raw data when `store_data` is on.
    pub async fn reapply(&self, node: NodeId, body: Option<Value>) -> Result<(), ReapplyError> {
        let store = self.lifecycle.store();
        let status = store.get(node).await?;
        if !status.state.is_final() {
            return Err(ReapplyError::Busy {
                node,
                state: status.state,
            });
        }
        let data = match body {
            Some(b) => b,
            None if !self.settings.store_data => return Err(ReapplyError::StoreDisabled),
            None => store
                .get_data(node, DataKind::Raw)
                .await?
                .ok_or(ReapplyError::NoData(node))?,
        };
        store.check_writable().await?;
        self.lifecycle
            .reopen(node, status.state, Transition::Reapply)
            .await
            .map_err(|e| match e {
                MoveError::Store(StoreError::StateChanged { actual, .. }) => ReapplyError::Busy {
                    node,
                    state: actual.unwrap_or(status.state),
                },
                MoveError::Store(s) => ReapplyError::Store(s),
                MoveError::Illegal { .. } => ReapplyError::Busy {
                    node,
                    state: status.state,
                },
            })?;
        let this = self.clone();
        let span = tracing::info_span!("reapply", node = %node);
        self.tasks.spawn(
            "reapply",
            async move { this.run_reapply(node, data).await }.instrument(span),
        );
        Ok(())
    }

    async fn run_reapply(self, node: NodeId, raw: Value) {
        self.keep_data(node, DataKind::Raw, &raw).await;
        let result = async {
            let mut data = normalize(raw)?;
            self.hooks.before_processing(&mut data)?;
            let (_, ops) = self.apply(node, &mut data).await?;
            if !ops.is_empty() {
                self.ironic
                    .patch_node(&node.to_string(), &ops)
                    .await
                    .map_err(|source| super::ProcessError::Ironic {
                        node,
                        what: "update properties",
                        source,
                    })?;
            }
            self.keep_data(node, DataKind::Processed, &Value::Object(data))
                .await;
            Ok::<(), super::ProcessError>(())
        }
        .await;
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("Reapplying the introspection data failed: {e}")),
        };
        if let Err(e) = self.lifecycle.finish(node, outcome).await {
            tracing::error!("the end of the reapply was not recorded: {e}");
        }
    }
}
