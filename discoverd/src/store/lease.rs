//! Durable next steps and leases (issue 16): on a shared database a node
//! with work in flight (state `starting`, `processing`, `aborting`,
//! `reapplying`, `enrolling`) is held by the daemon doing that work, for a
//! lease it renews while alive. The lease is written by the same
//! statement that moves the node, so no node is ever in flight unheld;
//! it goes when the node waits for its ramdisk or ends. A node whose
//! lease expired (its holder died) is claimed by one other daemon
//! (`FOR UPDATE SKIP LOCKED`) and carried on from its recorded step
//! (docs/postgres.md, "Leases"). The embedded SQLite store has no leases:
//! its one daemon resumes its own work at start-up.

use serde_json::Value;

use super::Status;
use crate::domain::State;

/// Whether a node in `state` is held by a lease (work in flight).
pub fn leased(state: State) -> bool {
    matches!(
        state,
        State::Starting | State::Processing | State::Aborting | State::Reapplying | State::Enrolling
    )
}

/// The recorded next step of a node in `processing` whose report was
/// answered: what a daemon taking it over must still do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send these node PATCH operations with the finishing marks, then
    /// power off (processing/finish.rs).
    Finish { node_ops: Value },
    /// Wait until the new IPMI credentials work, then [`Step::Finish`].
    AwaitCredentials { node_ops: Value },
}

impl Step {
    /// The name the store keeps.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Finish { .. } => "finish",
            Step::AwaitCredentials { .. } => "await_credentials",
        }
    }

    /// The step's data, as the store keeps it.
    pub fn data(&self) -> &Value {
        match self {
            Step::Finish { node_ops } | Step::AwaitCredentials { node_ops } => node_ops,
        }
    }

    /// From the stored name and data; `None` for a name this build does
    /// not know.
    pub fn from_parts(name: &str, data: Value) -> Option<Step> {
        match name {
            "finish" => Some(Step::Finish { node_ops: data }),
            "await_credentials" => Some(Step::AwaitCredentials { node_ops: data }),
            _ => None,
        }
    }
}

/// A node claimed from a daemon whose lease expired: its status, the
/// recorded step (if any) and the daemon that held it.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub status: Status,
    pub step: Option<Step>,
    pub previous_owner: String,
}
