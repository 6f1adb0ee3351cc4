//! Introspection rules in the processing flow: run after the hooks on the
//! node as the hooks' patches will leave it; their node changes join the
//! hooks' patches (sent in the finish's one PATCH after power-off), their
//! traits are sent at once, while the report is handled.

use serde_json::Value;

use super::{Data, ProcessError, Processor};
use crate::domain::NodeId;
use crate::ironic::{Node, PatchOp};
use crate::rules::{Effects, RuleBook};

impl Processor {
    /// Applies the rules in `book` to every processed report.
    pub fn with_rules(mut self, book: RuleBook) -> Self {
        self.rules = Some(book);
        self
    }

    /// The rules' effects; their node patches are appended to `node_ops`.
    pub(super) async fn apply_rules(
        &self,
        node: &Node,
        node_ops: &mut Vec<PatchOp>,
        data: &Data,
    ) -> Result<Effects, ProcessError> {
        let Some(book) = &self.rules else {
            return Ok(Effects::default());
        };
        let data = Value::Object(data.clone());
        let mut effects = book.apply(node, node_ops, &data).await?;
        node_ops.append(&mut effects.node);
        Ok(effects)
    }

    /// Adds and removes the traits the rules asked for.
    pub(super) async fn send_traits(&self, id: NodeId, effects: &Effects) -> Result<(), ProcessError> {
        let uuid = id.to_string();
        let fail = |source| ProcessError::Ironic {
            node: id,
            what: "update the traits",
            source,
        };
        for t in &effects.add_traits {
            self.ironic.add_node_trait(&uuid, t).await.map_err(fail)?;
        }
        for t in &effects.remove_traits {
            self.ironic.remove_node_trait(&uuid, t).await.map_err(fail)?;
        }
        Ok(())
    }
}
