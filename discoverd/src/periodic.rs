//! Periodic tasks (spec §9): the firewall's full sync every
//! `firewall_update_period`, starting at once, and the cache clean-up
//! (timeouts, purging old statuses) every `clean_up_period`, which, as in
//! 1.0, only runs when the timeout is enabled.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::app::App;

/// Starts both loops; they end at shutdown.
pub fn spawn(app: &App) {
    if app.config.manage_firewall {
        let a = app.clone();
        let stop = app.stopping();
        tokio::spawn(async move {
            tokio::select! {
                _ = firewall_loop(a) => {}
                _ = stop => {}
            }
        });
    }
    if app.config.timeout.is_some() {
        let a = app.clone();
        let stop = app.stopping();
        tokio::spawn(async move {
            tokio::select! {
                _ = clean_up_loop(a) => {}
                _ = stop => {}
            }
        });
    } else {
        tracing::warn!("Timeout is disabled in configuration");
    }
}

/// One full firewall sync from Ironic's ports and the cache. When Ironic
/// cannot be read, the last good state stays in place.
pub async fn sync_firewall(app: &App) {
    let ports = match app.ironic.list_all_ports().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot list Ironic ports, keeping the current filter: {e}");
            return;
        }
    };
    let active = match app.cache.active_macs().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("cannot read the node cache, keeping the current filter: {e}");
            return;
        }
    };
    let macs: Vec<String> = ports.into_iter().map(|p| p.address).collect();
    let start = std::time::Instant::now();
    let result = app.firewall.sync(&macs, &active).await;
    app.metrics
        .firewall_sync_seconds
        .observe(start.elapsed().as_secs_f64());
    match result {
        Ok(o) => tracing::debug!(macs = o.mac_count, "firewall synced"),
        Err(e) => tracing::warn!("firewall sync failed (will retry): {e}"),
    }
}

async fn firewall_loop(app: App) {
    let mut tick = tokio::time::interval(app.config.firewall_update_period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sync_firewall(&app).await;
    }
}

/// One clean-up pass: purge, time out, and filter timed-out nodes again.
pub async fn clean_up(app: &App) {
    let keep = app.config.node_status_keep_time;
    match app.cache.clean_up(app.config.timeout, keep).await {
        Ok((uuids, macs)) if !uuids.is_empty() => {
            tracing::warn!(nodes = ?uuids, "introspection timed out");
            app.metrics.introspections_failed.inc_by(uuids.len() as u64);
            if let Err(e) = app.firewall.introspection_finished(&macs).await {
                tracing::warn!("firewall not updated after timeouts (will resync): {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!("cache clean-up failed: {e}"),
    }
}

async fn clean_up_loop(app: App) {
    let mut tick = tokio::time::interval(app.config.clean_up_period.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        clean_up(&app).await;
    }
}
