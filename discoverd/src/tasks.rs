//! Background work of the flows: bounded in number, cancelled at
//! shutdown. In-process tasks are an optimisation: what must happen next
//! for a node is recorded in the store (its state), so a restarted daemon
//! carries it on.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

/// Most background tasks at once; beyond this, new ones wait for a slot.
pub const MAX_BACKGROUND_TASKS: usize = 4096;

/// The spawner; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tasks {
    slots: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Tasks {
    /// Tasks end when `shutdown` turns true.
    pub fn new(shutdown: watch::Receiver<bool>) -> Self {
        Tasks {
            slots: Arc::new(Semaphore::new(MAX_BACKGROUND_TASKS)),
            shutdown,
        }
    }

    /// Runs `fut` in the background, bounded, and cancelled at shutdown.
    pub fn spawn(&self, what: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
        let slots = self.slots.clone();
        let mut stop = self.shutdown.clone();
        tokio::spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else {
                return;
            };
            tokio::select! {
                _ = fut => {}
                _ = stop.wait_for(|s| *s) => tracing::debug!(task = what, "cancelled by shutdown"),
            }
        });
    }

    /// Resolves when shutdown starts.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}
