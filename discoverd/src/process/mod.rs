//! Processing what the ramdisk posts to `/v1/continue` (spec §5): the
//! payload shapes ([`payload`]), the hooks ([`hooks`]), and the flow that
//! looks the node up, updates Ironic and finishes in the background.

pub mod hooks;
pub mod payload;

pub use hooks::{HookChain, HookError, HookPatches, HookSettings, ProcessingHook, UnknownHook};
pub use payload::{Data, LookupAttrs, PayloadError, lookup_attributes, normalize, type_name};

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::api::ApiError;
use crate::app::App;
use crate::introspect::ipmi_reply;
use crate::ironic::{IronicError, Node, PatchOp};
use crate::node_cache::NodeInfo;

/// Handles one `/v1/continue` body; returns the reply for the ramdisk.
pub async fn process(app: &App, body: Value) -> Result<Value, ApiError> {
    let mut data = normalize(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Errors before lookup cannot be recorded: no node is known yet.
    app.hooks
        .before_processing(&mut data)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let attrs = lookup_attributes(&data);
    let info = app
        .cache
        .find_node(attrs.bmc_address.clone(), attrs.macs.clone())
        .await?;
    let uuid = info.uuid.clone();
    let span = tracing::info_span!("continue", node = %uuid);
    async {
        // The first write: if the cache cannot take it, say so before
        // Ironic is touched, so the ramdisk's retry finds everything as
        // it was.
        app.cache.set_state(&uuid, "processing").await?;
        let node = match app.ironic.get_node(&uuid).await {
            Ok(n) => n,
            Err(IronicError::NotFound(_)) => {
                let msg = format!("Node UUID {uuid} was found in cache, but is not found in Ironic");
                finish_with(app, &uuid, Some(msg.clone())).await;
                return Err(ApiError::not_found(msg));
            }
            Err(e) => {
                let msg = format!("Failed to get node {uuid} from Ironic: {e}");
                finish_with(app, &uuid, Some(msg.clone())).await;
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg));
            }
        };
        match update(app, &info, node, &data).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                finish_with(app, &uuid, Some(e.message.clone())).await;
                Err(e)
            }
        }
    }
    .instrument(span)
    .await
}

/// Records the end of a node's introspection and closes the filter for it.
pub async fn finish_with(app: &App, uuid: &str, error: Option<String>) {
    match &error {
        Some(e) => {
            app.metrics.introspections_failed.inc();
            tracing::error!(node = %uuid, "introspection failed: {e}");
        }
        None => {
            app.metrics.introspections_finished.inc();
            tracing::info!(node = %uuid, "introspection finished");
        }
    }
    match app.cache.finished(uuid, error).await {
        Ok(macs) => {
            if let Err(e) = app.firewall.introspection_finished(&macs).await {
                tracing::warn!("firewall not updated (will resync): {e}");
            }
        }
        Err(e) => tracing::error!("failed to record the end of node {uuid}'s introspection: {e}"),
    }
}

/// §5.3: ports, hooks, node and port patches, then the reply.
async fn update(app: &App, info: &NodeInfo, node: Node, data: &Data) -> Result<Value, ApiError> {
    let uuid = node.uuid.clone();
    let fail =
        |what: &str, e: IronicError| ApiError::bad_request(format!("Failed to {what} for node {uuid}: {e}"));
    let macs = lookup_attributes(data).macs;
    let mut created: Vec<(String, String)> = Vec::new();
    for mac in &macs {
        match app.ironic.create_port(&uuid, mac).await {
            Ok(port) => created.push((mac.clone(), port.uuid)),
            Err(IronicError::Conflict(m)) => tracing::info!(%mac, "port already exists, skipping: {m}"),
            Err(e) => return Err(fail("create a port", e)),
        }
    }
    let created_macs: Vec<String> = created.iter().map(|(m, _)| m.clone()).collect();
    let patches = app
        .hooks
        .before_update(&node, &created_macs, data)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Sent even when empty, as 1.0 did; the answer is the current node.
    let node = app
        .ironic
        .patch_node(&uuid, &patches.node)
        .await
        .map_err(|e| fail("update properties", e))?;
    for (mac, ops) in &patches.ports {
        if let Some((_, port_uuid)) = created.iter().find(|(m, _)| m == mac) {
            app.ironic
                .patch_port(port_uuid, ops)
                .await
                .map_err(|e| fail("update a port", e))?;
        }
    }
    let options = app.cache.options(&uuid).await?;
    // The uuid is ironic-inspector's addition; 1.0 ramdisks ignore it.
    let reply = match options.get("setup_ipmi_credentials") {
        Some(opt) => {
            let app2 = app.clone();
            let started = info.started_at;
            app.spawn(
                "wait_for_power_management",
                wait_for_power_management(app2, uuid.clone(), started).instrument(tracing::Span::current()),
            );
            let mut r = ipmi_reply(&node, opt);
            r["uuid"] = json!(uuid);
            r
        }
        None => {
            let app2 = app.clone();
            app.spawn(
                "finish",
                finish(app2, uuid.clone(), info.started_at).instrument(tracing::Span::current()),
            );
            json!({"uuid": uuid})
        }
    };
    tracing::info!(
        ports = created.len(),
        properties = patches.node.len(),
        "node updated"
    );
    Ok(reply)
}

/// When the current run must give up, as epoch seconds; `None` when the
/// timeout is disabled. (1.0 computed `started_at + 0` with a disabled
/// timeout and so failed every run there; a disabled timeout means no
/// deadline here.)
fn deadline(app: &App, started_at: f64) -> Option<f64> {
    app.config.timeout.map(|t| started_at + t.as_secs_f64())
}

fn past(deadline: Option<f64>) -> bool {
    deadline.is_some_and(|d| crate::node_cache::now() >= d)
}

async fn wait_for_power_management(app: App, uuid: String, started_at: f64) {
    let until = deadline(&app, started_at);
    loop {
        tokio::time::sleep(app.timings.power_poll).await;
        if past(until) {
            let msg =
                format!("Timeout waiting for power credentials update of node {uuid} after introspection");
            return finish_with(&app, &uuid, Some(msg)).await;
        }
        match app.ironic.validate_power(&uuid).await {
            Ok(v) if v.result == Some(true) => return finish(app, uuid, started_at).await,
            Ok(_) => {}
            Err(e) => tracing::debug!("power validation failed, retrying: {e}"),
        }
    }
}

/// §5.4 *finish*: power off, wait for it, mark the node, done.
async fn finish(app: App, uuid: String, started_at: f64) {
    if let Err(e) = app.ironic.set_power_state(&uuid, "power off").await {
        let msg = format!("Failed to power off node {uuid}, check it's power management configuration: {e}");
        return finish_with(&app, &uuid, Some(msg)).await;
    }
    let until = deadline(&app, started_at);
    loop {
        match app.ironic.get_node(&uuid).await {
            Ok(n) if n.power_state.as_deref().map(str::to_lowercase).as_deref() == Some("power off") => break,
            Ok(_) => {}
            Err(e) => tracing::debug!("failed to read the power state, retrying: {e}"),
        }
        if past(until) {
            let msg = format!("Timeout waiting for node {uuid} to power off after introspection");
            return finish_with(&app, &uuid, Some(msg)).await;
        }
        tokio::time::sleep(app.timings.power_poll.min(Duration::from_secs(60))).await;
    }
    let extras = [
        PatchOp::add("/extra/newly_discovered", "true"),
        PatchOp::remove("/extra/on_discovery"),
    ];
    if let Err(e) = app.ironic.patch_node(&uuid, &extras).await {
        // 1.0 let the task die and the node time out; say why instead.
        let msg = format!("Failed to update the extra fields of node {uuid} after introspection: {e}");
        return finish_with(&app, &uuid, Some(msg)).await;
    }
    finish_with(&app, &uuid, None).await;
}
