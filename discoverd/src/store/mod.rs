//! What the daemon persists, behind one trait: introspection statuses,
//! the lookup attributes of active nodes (BMC address, MACs), per-node
//! options, and stored introspection data. [`sqlite`] is the embedded
//! default; every implementation passes the same conformance suite
//! (`ironic-discoverd-test-support`'s `store_conformance`).
//!
//! Every state change is a compare-and-swap: the caller says which state
//! it read, and the store refuses ([`StoreError::StateChanged`]) if the
//! node has moved since, so two flows (or two daemons) never both win.

pub mod lease;
pub mod postgres;
pub mod rules;
pub mod sqlite;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use common::MacAddr;
use serde_json::Value;

use crate::domain::{NodeId, State, Timestamp};
pub use lease::{Orphan, Step};

/// One node's introspection status.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub node: NodeId,
    pub state: State,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Set when `state` is `error`.
    pub error: Option<String>,
}

impl Status {
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

/// Per-node options recorded at start (JSON values by name).
pub type Options = BTreeMap<String, Value>;

/// What a start records, before it is answered.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntrospection {
    pub node: NodeId,
    /// The node's BMC address, a lookup attribute.
    pub bmc_address: Option<String>,
    pub options: Options,
}

/// What a ramdisk report is looked up by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookupKey {
    pub bmc_address: Option<String>,
    pub macs: Vec<MacAddr>,
}

impl fmt::Display for LookupKey {
    /// Python's repr of the attribute dict, as discoverd 1.0's messages show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let bmc = self.bmc_address.as_deref().filter(|b| !b.is_empty());
        if let Some(b) = bmc {
            write!(f, "'bmc_address': '{b}'")?;
        }
        if !self.macs.is_empty() {
            f.write_str(if bmc.is_some() { ", 'mac': [" } else { "'mac': [" })?;
            for (i, m) in self.macs.iter().enumerate() {
                write!(f, "{}'{m}'", if i == 0 { "" } else { ", " })?;
            }
            f.write_str("]")?;
        }
        f.write_str("}")
    }
}

/// A node's introspection ended: its status and the MACs it held (no
/// longer lookup attributes; the firewall closes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub status: Status,
    pub macs: Vec<MacAddr>,
}

/// Which introspection data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// What the ramdisk posted.
    Raw,
    /// After the processing hooks.
    Processed,
}

impl DataKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Raw => "raw",
            DataKind::Processed => "processed",
        }
    }
}

/// Statuses to list: newest first, after `marker`, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub marker: Option<NodeId>,
    pub limit: usize,
    /// Only these states (all when empty).
    pub states: Vec<State>,
}

/// Largest stored introspection data blob (JSON text).
pub const MAX_DATA_BYTES: usize = 16 * 1024 * 1024;

/// Why a store operation failed. Lookup messages are discoverd 1.0's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Could not find node {0} in cache")]
    NotFound(NodeId),
    #[error("Could not find a node for attributes {0}")]
    NoMatch(String),
    #[error("Multiple matching nodes found for attributes {0}")]
    Ambiguous(String),
    #[error("Introspection for node {node} already finished on {at}")]
    AlreadyFinished { node: NodeId, at: Timestamp },
    #[error("Some or all of {name}'s {values:?} are already on introspection")]
    Duplicate { name: String, values: Vec<String> },
    /// The compare-and-swap lost: the node is not in the state the caller read.
    #[error("node {node} is in state {}, not {}", show(*.actual), show(*.expected))]
    StateChanged {
        node: NodeId,
        expected: Option<State>,
        actual: Option<State>,
    },
    /// A blob over [`MAX_DATA_BYTES`].
    #[error("introspection data of node {node} is {size} bytes, over the {MAX_DATA_BYTES}-byte limit")]
    DataTooLarge { node: NodeId, size: usize },
    /// The database cannot take writes (read-only file system, disk
    /// full, no permission): found before a write is attempted.
    #[error("the node store {location} cannot be written: {reason}")]
    Unwritable { location: String, reason: String },
    /// The database failed (I/O, corruption, lost connection).
    #[error("failed to {action} in the node store {location}: {source}")]
    Backend {
        action: &'static str,
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn show(s: Option<State>) -> &'static str {
    s.map_or("(none)", State::as_str)
}

/// Everything the daemon persists. Implementations are cheap to share
/// (`Arc<dyn NodeStore>`) and safe to call concurrently.
#[async_trait::async_trait]
pub trait NodeStore: Send + Sync + fmt::Debug {
    /// Records a new introspection of `new.node` in `state` (`starting`,
    /// or `enrolling` for a node auto-discovery created in Ironic, whose
    /// report is processed next), replacing any earlier one whose state is
    /// still `expected` (`None`: no record). Attributes and options of the
    /// earlier run go; the BMC address becomes a lookup attribute. A BMC
    /// address held by another active node is [`StoreError::Duplicate`],
    /// and nothing is written.
    async fn record(
        &self,
        new: &NewIntrospection,
        expected: Option<State>,
        at: Timestamp,
        state: State,
    ) -> Result<Status, StoreError>;

    /// [`NodeStore::record`] in state `starting`.
    async fn start(
        &self,
        new: &NewIntrospection,
        expected: Option<State>,
        at: Timestamp,
    ) -> Result<Status, StoreError> {
        self.record(new, expected, at, State::Starting).await
    }

    /// Adds MACs as lookup attributes of an active node; one held by
    /// another active node is [`StoreError::Duplicate`], nothing written.
    async fn add_macs(&self, node: NodeId, macs: &[MacAddr]) -> Result<(), StoreError>;

    /// Moves an unfinished node from `from` to `to` (not a final state).
    async fn transition(&self, node: NodeId, from: State, to: State) -> Result<Status, StoreError>;

    /// Ends the introspection of a node in state `from`: `to` is
    /// `finished` or `error`, with `error` set for the latter. Its lookup
    /// attributes and options go; the MACs it held are returned.
    async fn finish(
        &self,
        node: NodeId,
        from: State,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<Ended, StoreError>;

    /// Reopens an ended introspection (state `from`, `finished` or
    /// `error`) in state `to` (not final) to work on its stored data
    /// again (reapply): started anew at `at`, not finished, no error. It
    /// gets no lookup attributes; its data stays.
    async fn reopen(&self, node: NodeId, from: State, to: State, at: Timestamp)
    -> Result<Status, StoreError>;

    /// The status of one node.
    async fn get(&self, node: NodeId) -> Result<Status, StoreError>;

    /// The one active node matching the BMC address or any MAC.
    async fn find(&self, key: &LookupKey) -> Result<Status, StoreError>;

    /// Statuses, newest start first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Status>, StoreError>;

    /// Unfinished nodes in `state`.
    async fn in_state(&self, state: State) -> Result<Vec<Status>, StoreError>;

    /// Unfinished nodes started before `t` (timeout candidates).
    async fn started_before(&self, t: Timestamp) -> Result<Vec<Status>, StoreError>;

    /// Forgets statuses (and their data) finished before `t`; returns how many.
    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError>;

    /// Every MAC of every active node.
    async fn active_macs(&self) -> Result<HashSet<MacAddr>, StoreError>;

    /// The MACs of one active node.
    async fn macs(&self, node: NodeId) -> Result<Vec<MacAddr>, StoreError>;

    /// The options recorded at start.
    async fn options(&self, node: NodeId) -> Result<Options, StoreError>;

    /// Stores introspection data (replacing earlier data of that kind).
    async fn put_data(&self, node: NodeId, kind: DataKind, data: &Value) -> Result<(), StoreError>;

    /// Stored introspection data, if any.
    async fn get_data(&self, node: NodeId, kind: DataKind) -> Result<Option<Value>, StoreError>;

    /// How many nodes are under introspection.
    async fn count_active(&self) -> Result<u64, StoreError>;

    /// Fails if a write would fail now (before a write is promised).
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// The database answers a query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether other daemons may be using this store at the same time
    /// (a shared database): what one finds unfinished may be in hand.
    fn shared(&self) -> bool {
        false
    }

    /// A counter that moves when any daemon sharing the store changed
    /// the set of active MACs (the firewall then syncs early); `None`
    /// when only this daemon writes.
    fn mac_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Whether this daemon runs the periodic task `name` now: always when
    /// only it uses the store; on a shared database, once per `period`
    /// across every daemon on it (a claim that outlives its holder).
    async fn claim_periodic(&self, _name: &str, _period: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// How long a lease on in-flight work lasts without renewal; `None`
    /// when the store has no leases (one daemon: [`lease`]).
    fn lease_time(&self) -> Option<Duration> {
        None
    }

    /// This daemon's id as a lease holder.
    fn owner(&self) -> &str {
        "local"
    }

    /// Renews every lease this daemon holds; returns how many.
    async fn renew_leases(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Records the next step of a node this daemon holds in `processing`
    /// (in the same row as its state). Without leases, nothing.
    async fn record_step(&self, _node: NodeId, _step: &Step) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes over, for this daemon, at most `limit` unfinished nodes whose
    /// lease expired; each is returned to one daemon only.
    async fn claim_expired(&self, _limit: usize) -> Result<Vec<Orphan>, StoreError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::LookupKey;

    fn key(bmc: Option<&str>, macs: &[&str]) -> LookupKey {
        LookupKey {
            bmc_address: bmc.map(str::to_owned),
            macs: macs.iter().filter_map(|m| m.parse().ok()).collect(),
        }
    }

    /// The 404's text shows the attributes as 1.0's Python dict repr.
    #[test]
    fn a_key_reads_as_the_python_dict_of_its_attributes() {
        let both = key(Some("192.0.2.1"), &["52:54:00:AA:00:01", "52:54:00:aa:00:02"]);
        assert_eq!(
            both.to_string(),
            "{'bmc_address': '192.0.2.1', 'mac': ['52:54:00:aa:00:01', '52:54:00:aa:00:02']}"
        );
        assert_eq!(
            key(Some("192.0.2.1"), &[]).to_string(),
            "{'bmc_address': '192.0.2.1'}"
        );
        assert_eq!(
            key(Some(""), &["52:54:00:aa:00:01"]).to_string(),
            "{'mac': ['52:54:00:aa:00:01']}"
        );
        assert_eq!(key(None, &[]).to_string(), "{}");
    }
}
