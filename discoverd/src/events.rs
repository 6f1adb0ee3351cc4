//! The in-process event bus: every state change of every node, in the
//! order the store applied them. Metrics subscribe to it; so will the
//! event stream and, with PostgreSQL, notifications to other daemons.
//! A subscriber that falls more than [`CAPACITY`] events behind loses the
//! oldest and is told how many (tokio's broadcast `Lagged`).

use tokio::sync::broadcast;

use crate::domain::StateChange;

/// Events kept for a slow subscriber.
pub const CAPACITY: usize = 16 * 1024;

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<StateChange>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Sends `change` to every current subscriber (none is fine).
    pub fn publish(&self, change: StateChange) {
        tracing::debug!(node = %change.node, from = ?change.from, to = %change.to, "state change");
        let _ = self.tx.send(change);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.tx.subscribe()
    }
}
