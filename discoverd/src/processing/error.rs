//! Why a ramdisk report was not processed. The API layer maps each to
//! an HTTP answer; the message is what the ramdisk and the status show.

use std::time::Duration;

use super::PayloadError;
use crate::domain::{NodeId, State};
use crate::hooks::HookError;
use crate::ironic::IronicError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Hook(#[from] HookError),
    /// An introspection rule failed the node (or the rules could not be read).
    #[error(transparent)]
    Rules(#[from] crate::rules::ApplyError),
    /// Lookup failed, or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node's start has not sent its reboot yet: retry later.
    #[error("Node {node} is still starting introspection (its reboot was not sent within {} s); retry later", .waited.as_secs())]
    StillStarting { node: NodeId, waited: Duration },
    /// Another report for the node is being (or was) processed.
    #[error("Node {node} cannot process a report in state {}", .state.map_or("(none)", State::as_str))]
    Busy { node: NodeId, state: Option<State> },
    #[error("Node UUID {node} was found in cache, but is not found in Ironic")]
    NotInIronic { node: NodeId },
    #[error("Failed to get node {node} from Ironic: {source}")]
    IronicGet {
        node: NodeId,
        #[source]
        source: IronicError,
    },
    /// Auto-discovery could not enrol the unknown machine.
    #[error(transparent)]
    Enroll(#[from] super::enroll::EnrollError),
    #[error("Failed to {what} for node {node}: {source}")]
    Ironic {
        node: NodeId,
        what: &'static str,
        #[source]
        source: IronicError,
    },
}

impl ProcessError {
    /// Ironic failed transiently until the report's retry budget was
    /// spent, or the rules could not be read (the database): the node
    /// waits again and the ramdisk should retry.
    pub fn is_transient(&self) -> bool {
        match self {
            ProcessError::Rules(crate::rules::ApplyError::Load(_)) => true,
            ProcessError::IronicGet { source, .. } | ProcessError::Ironic { source, .. } => {
                source.is_transient()
            }
            ProcessError::Enroll(e) => e.is_transient(),
            _ => false,
        }
    }
}
