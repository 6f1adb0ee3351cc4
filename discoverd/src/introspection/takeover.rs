//! Carrying on, on this daemon, a start or an abort another daemon
//! accepted and died before finishing (its lease expired and this daemon
//! claimed the node: [`crate::takeover`]). The steps are the ones a
//! restarted single daemon resumes, each safe to repeat.

use tracing::Instrument;

use super::Introspector;
use crate::domain::{NodeId, State};

impl Introspector {
    /// Carries on the start or abort of a claimed node; `false` when its
    /// state has no step of this flow.
    pub fn carry_on(&self, node: NodeId, state: State) -> bool {
        match state {
            State::Starting => {
                let this = self.clone();
                let span = tracing::info_span!("introspect", node = %node);
                self.tasks.spawn(
                    "take_over_start",
                    async move { this.reboot_into_ramdisk(node).await }.instrument(span),
                );
                true
            }
            State::Aborting => {
                self.spawn_abort(node);
                true
            }
            _ => false,
        }
    }
}
