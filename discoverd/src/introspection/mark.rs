//! discoverd 1.0's `extra.on_discovery` mark in Ironic: what a node that
//! failed introspection keeps (spec §5.4: "timed-out or failed nodes keep
//! `extra.on_discovery`"), and what the finishing PATCH clears.
//!
//! 1.0 wrote the mark when an introspection started and removed it when it
//! finished. Ironic serves a node's writes one at a time under the node's
//! lock and is bound by them under load, so the mark is now written only
//! where it carries news: on a node whose introspection ended with an
//! error (failed, timed out, aborted), by the daemon that recorded the end,
//! from the event bus. A successful run costs no PATCH for it; the state
//! of a run in progress is the status API's to tell.

use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use crate::domain::{State, StateChange};
use crate::events::EventBus;
use crate::ironic::{IronicClient, PatchOp};
use crate::store::NodeStore;
use crate::tasks::Tasks;

/// The path of the mark.
const PATH: &str = "/extra/on_discovery";

/// The finishing operations of a successful run: `newly_discovered`, and
/// no mark. Adding the mark before removing it makes the PATCH valid
/// whether or not the node carries one (from an earlier failed run or an
/// enrolment), and so safe to send again: a daemon that takes over a dead
/// one's finish repeats it without asking Ironic first.
pub fn finishing_ops() -> [PatchOp; 3] {
    [
        PatchOp::add("/extra/newly_discovered", "true"),
        PatchOp::add(PATH, "true"),
        PatchOp::remove(PATH),
    ]
}

/// Marks every node whose introspection this daemon ends with an error,
/// until shutdown.
pub fn mark_failed_nodes(
    bus: &EventBus,
    ironic: IronicClient,
    store: std::sync::Arc<dyn NodeStore>,
    tasks: &Tasks,
) {
    let mut events = bus.subscribe();
    let spawner = tasks.clone();
    tasks.spawn("failure_marks", async move {
        loop {
            let change = match events.recv().await {
                Ok(c) if c.to == State::Error => c,
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::error!(
                        missed = n,
                        "the failure marks fell behind the event bus: up to {n} failed nodes lack extra.on_discovery"
                    );
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let (ironic, store) = (ironic.clone(), store.clone());
            let span = tracing::info_span!("failure_mark", node = %change.node);
            spawner.spawn("failure_mark", mark(ironic, store, change).instrument(span));
        }
    });
}

async fn mark(ironic: IronicClient, store: std::sync::Arc<dyn NodeStore>, change: StateChange) {
    // A node introspected again since must not get a stale mark.
    match store.get(change.node).await {
        Ok(s) if s.state == State::Error && s.finished_at == Some(change.at) => {}
        Ok(_) => return tracing::debug!("the node moved on; no mark"),
        Err(e) => tracing::debug!("cannot read the node's status, marking anyway: {e}"),
    }
    let op = [PatchOp::add(PATH, json!("true"))];
    match ironic.patch_node(&change.node.to_string(), &op).await {
        Ok(_) => tracing::debug!("marked with extra.on_discovery"),
        Err(e) => tracing::warn!("could not mark the failed node with extra.on_discovery: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishing_ops_clear_the_mark_whether_or_not_it_is_there() -> anyhow::Result<()> {
        // RFC 6902, as Ironic applies a PATCH: a remove of a missing path fails.
        let ops: json_patch::Patch = serde_json::from_value(serde_json::to_value(finishing_ops())?)?;
        for extra in [json!({}), json!({"on_discovery": "true", "x": 1})] {
            let mut node = json!({ "extra": extra });
            json_patch::patch(&mut node, &ops)?;
            assert_eq!(node["extra"].get("on_discovery"), None);
            assert_eq!(node["extra"]["newly_discovered"], json!("true"));
        }
        Ok(())
    }
}
