//! Taking over the work of daemons that died (issue 16; docs/postgres.md,
//! "Leases"). On a shared database each daemon, every third of the lease
//! time, renews the leases it holds on its in-flight nodes, then claims
//! nodes whose lease expired and carries each on from where its holder
//! stopped:
//!
//! | state        | recorded step       | carried on as                                   |
//! |--------------|---------------------|-------------------------------------------------|
//! | `starting`   | —                   | the start's background steps (reboot)           |
//! | `aborting`   | —                   | the abort's power-off, then its ending          |
//! | `processing` | `finish`            | the final PATCH, the power-off, the ending      |
//! | `processing` | `await_credentials` | wait for the new IPMI credentials, then finish  |
//! | `processing` | none                | failed: the report's answer was never sent      |
//! | `reapplying`, `enrolling` | —      | failed: Ironic may be partly updated            |
//!
//! Every move goes through the flows and [`crate::introspection::Lifecycle`],
//! like any other. A daemon claims only after its own connection to the
//! database has been good for a whole lease time: after a database outage
//! every live daemon has renewed its leases before any claims them.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::domain::{State, Transition};
use crate::introspection::{Introspector, Lifecycle, Outcome};
use crate::processing::Processor;
use crate::store::{Orphan, StoreError};
use crate::tasks::Tasks;

/// Most nodes claimed per tick (the rest on the next ticks, or by others).
const CLAIM_BATCH: usize = 32;

/// The flows a taken-over node is handed to; cheap to clone.
#[derive(Debug, Clone)]
pub struct Takeover {
    pub lifecycle: Lifecycle,
    pub introspector: Introspector,
    pub processor: Processor,
}

/// Starts the loop when the store has leases; it ends at shutdown.
pub fn spawn(app: Takeover, tasks: &Tasks) {
    let Some(lease) = app.lifecycle.store().lease_time() else {
        return;
    };
    let stop = tasks.stopping();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let work = async {
            // Since when renewals have succeeded without a break.
            let mut healthy_since: Option<Instant> = None;
            loop {
                tick.tick().await;
                match app.lifecycle.store().renew_leases().await {
                    Ok(_) => {
                        let since = *healthy_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < lease {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("cannot renew this daemon's leases: {e}");
                        healthy_since = None;
                        continue;
                    }
                }
                if let Err(e) = take_over(&app).await {
                    tracing::warn!("cannot claim expired leases: {e}");
                }
            }
        };
        tokio::select! { _ = work => {} _ = stop => {} }
    });
}

/// Claims nodes whose lease expired and carries them on; returns how
/// many this daemon took.
pub async fn take_over(app: &Takeover) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let claimed = app.lifecycle.store().claim_expired(CLAIM_BATCH).await?;
        let n = claimed.len();
        for orphan in claimed {
            carry_on(app, orphan).await;
        }
        total += n;
        if n < CLAIM_BATCH {
            return Ok(total);
        }
    }
}

async fn carry_on(app: &Takeover, orphan: Orphan) {
    let Orphan {
        status,
        step,
        previous_owner,
    } = orphan;
    let node = status.node;
    tracing::warn!(node = %node, state = %status.state, step = ?step.as_ref().map(|s| s.name()),
                   from = %previous_owner, "taking over a node whose daemon stopped renewing its lease");
    if app.introspector.carry_on(node, status.state) {
        return;
    }
    let why = match (status.state, step) {
        (State::Processing, Some(step)) => return app.processor.carry_on(node, step),
        // The report was never answered: the ramdisk's retry (on any
        // daemon) processes it again; every step of it is safe to repeat.
        (State::Processing, None) => match app
            .lifecycle
            .advance(node, State::Processing, Transition::Requeue)
            .await
        {
            Ok(_) => {
                return tracing::info!(node = %node, "report not answered by its daemon: waiting for the ramdisk's retry");
            }
            Err(e) => format!("The daemon processing node {node}'s report stopped before answering it ({e})"),
        },
        (State::Reapplying, _) => format!(
            "The daemon reapplying node {node}'s data stopped; Ironic may be partly updated: reapply it again"
        ),
        (state, _) => format!("The daemon working on node {node} (state {state}) stopped"),
    };
    if let Err(e) = app.lifecycle.finish(node, Outcome::Failed(why)).await {
        tracing::error!(node = %node, "a node taken over could not be failed: {e}");
    }
}
