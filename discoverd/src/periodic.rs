//! Periodic work (spec §9): the firewall's full sync every
//! `firewall_update_period`, starting at once, and the clean-up (timeouts,
//! purging old statuses) every `clean_up_period`, which, as in 1.0, only
//! runs when the timeout is enabled. Timeouts end through the one finish
//! path, like every other ending.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::domain::Timestamp;
use crate::introspection::{Lifecycle, Outcome};
use crate::ironic::IronicClient;
use crate::store::StoreError;
use crate::tasks::Tasks;

/// Settings the periodic tasks read.
#[derive(Debug, Clone, Copy)]
pub struct PeriodicSettings {
    pub manage_firewall: bool,
    pub firewall_update_period: Duration,
    pub timeout: Option<Duration>,
    pub node_status_keep_time: Duration,
    pub clean_up_period: Duration,
}

/// At most one early firewall sync (on another daemon's change) this often.
const EARLY_SYNC_GAP: Duration = Duration::from_millis(500);

/// Waits for the next change another daemon announced (forever when the
/// store announces none, or its listener ended).
async fn changed(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = changes
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// What a full firewall sync reports (for metrics and logs).
pub type SyncObserver = std::sync::Arc<dyn Fn(Duration) + Send + Sync>;

/// Starts both loops; they end at shutdown.
pub fn spawn(
    lifecycle: Lifecycle,
    ironic: IronicClient,
    settings: PeriodicSettings,
    on_sync: SyncObserver,
    tasks: &Tasks,
) {
    if settings.manage_firewall {
        let (l, i, s) = (lifecycle.clone(), ironic, tasks.stopping());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(settings.firewall_update_period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut changes = l.store().mac_changes();
            let work = async {
                let mut last = Instant::now();
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = changed(&mut changes) => {
                            // Several starts at once make one sync.
                            tokio::time::sleep(EARLY_SYNC_GAP.saturating_sub(last.elapsed())).await;
                            if let Some(c) = changes.as_mut() {
                                c.borrow_and_update();
                            }
                        }
                    }
                    last = Instant::now();
                    sync_firewall(&l, &i, &on_sync).await;
                }
            };
            tokio::select! { _ = work => {} _ = s => {} }
        });
    }
    if settings.timeout.is_some() {
        let stop = tasks.stopping();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(settings.clean_up_period.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let work = async {
                loop {
                    tick.tick().await;
                    if let Err(e) = claimed_clean_up(&lifecycle, &settings).await {
                        tracing::error!("clean-up failed: {e}");
                    }
                }
            };
            tokio::select! { _ = work => {} _ = stop => {} }
        });
    } else {
        tracing::warn!("Timeout is disabled in configuration");
    }
}

/// One full firewall sync from Ironic's ports and the store. When Ironic
/// cannot be read, the last good state stays in place.
pub async fn sync_firewall(lifecycle: &Lifecycle, ironic: &IronicClient, on_sync: &SyncObserver) {
    let ports = match ironic.list_all_ports().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot list Ironic ports, keeping the current filter: {e}");
            return;
        }
    };
    let store = lifecycle.store();
    let (active, introspections) = match tokio::try_join!(store.active_macs(), store.count_active()) {
        Ok((a, n)) => (a.iter().map(ToString::to_string).collect(), n),
        Err(e) => {
            tracing::warn!("cannot read the node store, keeping the current filter: {e}");
            return;
        }
    };
    let macs: Vec<String> = ports.into_iter().map(|p| p.address).collect();
    let start = Instant::now();
    let result = lifecycle.firewall().sync(&macs, &active, introspections).await;
    on_sync(start.elapsed());
    match result {
        Ok(o) => tracing::debug!(macs = o.mac_count, "firewall synced"),
        Err(e) => tracing::warn!("firewall sync failed (will retry): {e}"),
    }
}

/// The clean-up, when this daemon claims this period's run: on a shared
/// database one daemon per `clean_up_period` does it, whichever ticks
/// first (and another when that one has died). `None` when another has it.
pub async fn claimed_clean_up(
    lifecycle: &Lifecycle,
    settings: &PeriodicSettings,
) -> Result<Option<usize>, StoreError> {
    if !lifecycle
        .store()
        .claim_periodic("clean_up", settings.clean_up_period)
        .await?
    {
        tracing::debug!("clean-up: another daemon ran it this period");
        return Ok(None);
    }
    clean_up(lifecycle, settings).await.map(Some)
}

/// One clean-up pass: time out nodes started more than `timeout` ago
/// (each through the finish path), then purge statuses finished more than
/// `node_status_keep_time` ago. Returns how many timed out.
pub async fn clean_up(lifecycle: &Lifecycle, settings: &PeriodicSettings) -> Result<usize, StoreError> {
    let now = Timestamp::now();
    let mut timed_out = 0;
    if let Some(timeout) = settings.timeout {
        for s in lifecycle.store().started_before(now.minus(timeout)).await? {
            if lifecycle.finish(s.node, Outcome::TimedOut).await?.is_some() {
                timed_out += 1;
            }
        }
    }
    let purged = lifecycle
        .store()
        .purge(now.minus(settings.node_status_keep_time))
        .await?;
    if purged > 0 {
        tracing::info!(purged, "old statuses purged");
    }
    Ok(timed_out)
}
