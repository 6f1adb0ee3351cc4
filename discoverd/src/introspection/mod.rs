//! Introspection of a node from the operator's side: starting it (checks
//! made while the client waits, the durable record, then the reboot in
//! the background), aborting it, the mark a failed node keeps in Ironic, processing stored data again, resuming
//! work a restarted daemon finds unfinished, and the [`lifecycle`] every
//! flow moves nodes through.

mod abort;
pub mod lifecycle;
pub mod mark;
mod start;
mod takeover;

pub use abort::AbortError;
pub use lifecycle::{Lifecycle, MoveError, Outcome};
pub use start::{StartError, StartOptions, StartSettings, ipmi_option, ipmi_reply, manages_boot};

use std::sync::Arc;

use crate::domain::{NodeId, NodeRef};
use crate::ironic::IronicClient;
use crate::tasks::Tasks;

/// The start flow's handles; cheap to clone.
#[derive(Debug, Clone)]
pub struct Introspector {
    ironic: IronicClient,
    lifecycle: Lifecycle,
    settings: StartSettings,
    tasks: Tasks,
    /// When the last reboot into the ramdisk was asked (`introspection_delay`).
    last_reboot: Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Introspector {
    pub fn new(ironic: IronicClient, lifecycle: Lifecycle, settings: StartSettings, tasks: Tasks) -> Self {
        Introspector {
            ironic,
            lifecycle,
            settings,
            tasks,
            last_reboot: Arc::default(),
        }
    }

    /// The UUID of the node a caller named: a UUID as is, a name through
    /// Ironic.
    pub async fn resolve(&self, node: &NodeRef) -> Result<NodeId, StartError> {
        match node {
            NodeRef::Id(id) => Ok(*id),
            NodeRef::Name(name) => {
                let n = self
                    .ironic
                    .get_node(name)
                    .await
                    .map_err(|e| start::ironic_error(node, e))?;
                n.uuid.parse().map_err(|_| StartError::BadUuid {
                    node: node.clone(),
                    uuid: n.uuid.clone(),
                })
            }
        }
    }

    /// Waits until `introspection_delay` has passed since the last reboot
    /// this daemon asked for, and takes the turn.
    async fn wait_for_turn(&self) {
        let delay = self.settings.introspection_delay;
        if delay.is_zero() {
            return;
        }
        let mut last = self.last_reboot.lock().await;
        if let Some(t) = *last {
            tokio::time::sleep_until(t + delay).await;
        }
        *last = Some(tokio::time::Instant::now());
    }
}
