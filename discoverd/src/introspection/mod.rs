//! Introspection of a node from the operator's side: starting it (checks
//! made while the client waits, the durable record, then the reboot in
//! the background), resuming starts a restarted daemon finds unfinished,
//! and the [`lifecycle`] every flow moves nodes through.

pub mod lifecycle;
mod start;

pub use lifecycle::{Lifecycle, MoveError, Outcome};
pub use start::{StartError, StartOptions, StartSettings, ipmi_option, ipmi_reply};

use crate::ironic::IronicClient;
use crate::tasks::Tasks;

/// The start flow's handles; cheap to clone.
#[derive(Debug, Clone)]
pub struct Introspector {
    ironic: IronicClient,
    lifecycle: Lifecycle,
    settings: StartSettings,
    tasks: Tasks,
}

impl Introspector {
    pub fn new(ironic: IronicClient, lifecycle: Lifecycle, settings: StartSettings, tasks: Tasks) -> Self {
        Introspector {
            ironic,
            lifecycle,
            settings,
            tasks,
        }
    }
}
