//! The one place a node changes state: every move is checked by the state
//! machine, applied by the store as a compare-and-swap, and published on
//! the event bus. [`Lifecycle::finish`] is the one way an introspection
//! ends (done, failed, timed out, aborted): store, firewall, log, event;
//! the metrics count the events.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{NodeId, State, StateChange, Timestamp, Transition, next};
use crate::events::EventBus;
use crate::firewall::Firewall;
use crate::store::{Ended, NewIntrospection, NodeStore, Status, StoreError};

/// How an introspection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed and written to Ironic.
    Done,
    /// Failed; the message says which step and why.
    Failed(String),
    /// The deadline passed.
    TimedOut,
    /// An operator aborted it and the node is powered off.
    Aborted,
}

impl Outcome {
    fn transition(&self) -> Transition {
        match self {
            Outcome::Done => Transition::Finish,
            Outcome::Failed(_) => Transition::Fail,
            Outcome::TimedOut => Transition::Timeout,
            Outcome::Aborted => Transition::AbortEnd,
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Outcome::Done => None,
            Outcome::Failed(m) => Some(m),
            Outcome::TimedOut => Some("Introspection timeout"),
            Outcome::Aborted => Some("Canceled by operator"),
        }
    }
}

/// Why a move was refused.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The state machine does not allow it from the node's state.
    #[error("node {node}: {source}")]
    Illegal {
        node: NodeId,
        #[source]
        source: crate::domain::IllegalTransition,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Store + bus + firewall; cheap to clone.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    store: Arc<dyn NodeStore>,
    bus: EventBus,
    firewall: Firewall,
}

impl Lifecycle {
    pub fn new(store: Arc<dyn NodeStore>, bus: EventBus, firewall: Firewall) -> Self {
        Lifecycle { store, bus, firewall }
    }

    pub fn store(&self) -> &Arc<dyn NodeStore> {
        &self.store
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// Records a start (durably: the caller answers only after this).
    pub async fn start(&self, new: &NewIntrospection) -> Result<Status, MoveError> {
        self.record(new, Transition::Start).await
    }

    /// Records an auto-discovered node in `enrolling` (durably, before
    /// its report is processed); as [`Lifecycle::start`] otherwise.
    pub async fn enroll(&self, new: &NewIntrospection) -> Result<Status, MoveError> {
        self.record(new, Transition::Enroll).await
    }

    /// A new record of `new.node` in the state `event` leads to.
    async fn record(&self, new: &NewIntrospection, event: Transition) -> Result<Status, MoveError> {
        let from = match self.store.get(new.node).await {
            Ok(s) => Some(s.state),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let to = next(from, event).map_err(|source| MoveError::Illegal {
            node: new.node,
            source,
        })?;
        let status = self.store.record(new, from, Timestamp::now(), to).await?;
        self.publish(&status, from);
        Ok(status)
    }

    /// Moves `node` from `from` by `event` (not an ending: see [`finish`]).
    ///
    /// [`finish`]: Lifecycle::finish
    pub async fn advance(&self, node: NodeId, from: State, event: Transition) -> Result<Status, MoveError> {
        let to = next(Some(from), event).map_err(|source| MoveError::Illegal { node, source })?;
        let status = self.store.transition(node, from, to).await?;
        self.publish(&status, Some(from));
        Ok(status)
    }

    /// Reopens an ended introspection by `event` (reapply): the store
    /// applies it as a compare-and-swap on `from`.
    pub async fn reopen(&self, node: NodeId, from: State, event: Transition) -> Result<Status, MoveError> {
        let to = next(Some(from), event).map_err(|source| MoveError::Illegal { node, source })?;
        let status = self.store.reopen(node, from, to, Timestamp::now()).await?;
        self.publish(&status, Some(from));
        Ok(status)
    }

    /// Ends `node`'s introspection with `outcome`, from whatever state it
    /// is in if the state machine allows it. `Ok(None)`: it had already
    /// ended (or moved somewhere `outcome` cannot follow) and nothing
    /// changed; a second ending never overwrites the first. A database
    /// that fails (down, restarting) is retried for [`STORE_RETRY`]: the
    /// flows calling this have no one to hand the error to.
    pub async fn finish(&self, node: NodeId, outcome: Outcome) -> Result<Option<Ended>, StoreError> {
        // A concurrent move can win the compare-and-swap; re-read and try
        // again while the outcome still applies.
        let mut lost = 0;
        let mut retry = StoreRetry::new();
        loop {
            let from = match self.store.get(node).await {
                Ok(s) => s.state,
                Err(e) => {
                    retry.wait(e).await?;
                    continue;
                }
            };
            if next(Some(from), outcome.transition()).is_err() {
                tracing::debug!(node = %node, state = %from, ?outcome, "not ended: state moved on");
                return Ok(None);
            }
            match self
                .store
                .finish(node, from, outcome.error(), Timestamp::now())
                .await
            {
                Ok(ended) => {
                    self.ended(&ended, from, &outcome).await;
                    return Ok(Some(ended));
                }
                Err(StoreError::StateChanged { .. }) => {
                    lost += 1;
                    if lost >= 8 {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    if let Err(e) = retry.wait(e).await {
                        tracing::error!(node = %node, ?outcome, "failed to record the end of the introspection: {e}");
                        return Err(e);
                    }
                }
            }
        }
    }

    /// How many introspections run now, for the firewall's plan; `None`
    /// (logged) when the store cannot say.
    pub async fn introspections(&self) -> Option<u64> {
        self.store
            .count_active()
            .await
            .inspect_err(|e| tracing::warn!("cannot count running introspections for the firewall: {e}"))
            .ok()
    }

    /// [`Lifecycle::advance`] for background flows: a failing database is
    /// retried for [`STORE_RETRY`] (a lost compare-and-swap is not).
    pub async fn advance_durably(
        &self,
        node: NodeId,
        from: State,
        event: Transition,
    ) -> Result<Status, MoveError> {
        let mut retry = StoreRetry::new();
        loop {
            match self.advance(node, from, event).await {
                Err(MoveError::Store(e)) => retry.wait(e).await?,
                other => return other,
            }
        }
    }

    /// A store call of a background flow, which has no one to hand a
    /// database failure to: retried for [`STORE_RETRY`] while the database
    /// fails (down, restarting); any other error is returned at once.
    pub async fn durably<T, F: Future<Output = Result<T, StoreError>>>(
        &self,
        mut call: impl FnMut() -> F,
    ) -> Result<T, StoreError> {
        let mut retry = StoreRetry::new();
        loop {
            match call().await {
                Err(e) => retry.wait(e).await?,
                done => return done,
            }
        }
    }

    async fn ended(&self, ended: &Ended, from: State, outcome: &Outcome) {
        let node = ended.status.node;
        match outcome {
            Outcome::Done => tracing::info!(node = %node, "introspection finished"),
            Outcome::Failed(m) => tracing::error!(node = %node, "introspection failed: {m}"),
            Outcome::TimedOut => tracing::warn!(node = %node, state = %from, "introspection timed out"),
            Outcome::Aborted => tracing::info!(node = %node, "introspection aborted"),
        }
        let macs: Vec<String> = ended.macs.iter().map(ToString::to_string).collect();
        if let Err(e) = self
            .firewall
            .introspection_finished(&macs, self.introspections())
            .await
        {
            tracing::warn!(node = %node, "firewall not updated (the reconnector will resync): {e}");
        }
        self.publish(&ended.status, Some(from));
    }

    fn publish(&self, status: &Status, from: Option<State>) {
        self.bus.publish(StateChange {
            node: status.node,
            from,
            to: status.state,
            at: status.finished_at.unwrap_or_else(Timestamp::now),
            error: status.error.clone(),
        });
    }
}

/// How long a background flow retries a store write the database failed
/// (down, restarting, unreachable) before giving up.
pub const STORE_RETRY: Duration = Duration::from_secs(60);

/// Retries of database failures: growing pauses, up to [`STORE_RETRY`].
struct StoreRetry {
    until: tokio::time::Instant,
    pause: Duration,
}

impl StoreRetry {
    fn new() -> Self {
        StoreRetry {
            until: tokio::time::Instant::now() + STORE_RETRY,
            pause: Duration::from_millis(100),
        }
    }

    /// Pauses before another try of a database failure; any other error,
    /// or one past the deadline, is handed back.
    async fn wait(&mut self, e: StoreError) -> Result<(), StoreError> {
        if !matches!(e, StoreError::Backend { .. }) || tokio::time::Instant::now() + self.pause > self.until {
            return Err(e);
        }
        tracing::warn!("the node store failed, retrying in {:?}: {e}", self.pause);
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        Ok(())
    }
}
