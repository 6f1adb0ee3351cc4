//! What the event bus carries: one state change of one node.

use serde::Serialize;

use super::{NodeId, State, Timestamp};

/// A node moved from one state to another (or started afresh).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub node: NodeId,
    /// `None` when the node had no introspection before.
    pub from: Option<State>,
    pub to: State,
    pub at: Timestamp,
    /// The error, when `to` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
