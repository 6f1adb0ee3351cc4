//! Starting introspection (spec §4): checks made while the client waits,
//! then a background task that records the node, opens the DHCP filter
//! for its MACs and reboots it into the ramdisk.

use axum::http::StatusCode;
use serde_json::Value;
use tracing::Instrument;

use crate::api::ApiError;
use crate::app::App;
use crate::ironic::{IronicError, Node, PatchOp};
use crate::node_cache::CacheError;

/// Provision states a node may be introspected in (1.0, plus 1.1's
/// `inspect failed` so a failed run can be retried).
const VALID_STATES: &[&str] = &["enroll", "manageable", "inspecting", "inspect failed"];

/// Query options of `POST /v1/introspection/<uuid>`.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub setup_ipmi_credentials: bool,
    pub new_ipmi_username: Option<String>,
    pub new_ipmi_password: Option<String>,
}

/// Maps an Ironic failure during the synchronous checks.
fn get_error(uuid: &str, e: IronicError) -> ApiError {
    match e {
        IronicError::NotFound(_) => ApiError::not_found(format!("Cannot find node {uuid}")),
        IronicError::Unavailable(m) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Cannot get node {uuid}: {m}"),
        ),
        other => ApiError::bad_request(format!("Cannot get node {uuid}: {other}")),
    }
}

/// The synchronous part; on success the background part is running and
/// the caller answers 202. The node is not cached yet at that point.
pub async fn start(app: &App, uuid: &str, opts: StartOptions) -> Result<(), ApiError> {
    let node = app.ironic.get_node(uuid).await.map_err(|e| get_error(uuid, e))?;
    if opts.setup_ipmi_credentials && !app.config.enable_setting_ipmi_credentials {
        return Err(ApiError::bad_request(
            "IPMI credentials setup is disabled in configuration",
        ));
    }
    if let Some(p) = &opts.new_ipmi_password
        && (p.is_empty() || p.len() > 20 || !p.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(ApiError::bad_request(
            "new_ipmi_password must be 1 to 20 alphanumeric characters",
        ));
    }
    if node.maintenance {
        tracing::info!(node = %uuid, "node is in maintenance mode, skipping the provision state check");
    } else if let Some(state) = node.provision_state.as_deref().filter(|s| !s.is_empty())
        && !VALID_STATES.contains(&state.to_lowercase().as_str())
    {
        return Err(ApiError::bad_request(format!(
            "Refusing to introspect node {uuid} with provision state \"{state}\" and maintenance mode off"
        )));
    }
    if !opts.setup_ipmi_credentials {
        let v = app
            .ironic
            .validate_power(uuid)
            .await
            .map_err(|e| get_error(uuid, e))?;
        if v.result != Some(true) {
            return Err(ApiError::bad_request(format!(
                "Failed validation of power interface for node {uuid}, reason: {}",
                v.reason.unwrap_or_default()
            )));
        }
    }
    // 1.0 answers 202 before the node is cached (spec §14); make sure the
    // cache can take that write, or the start would be lost unrecorded.
    app.cache.check_writable().await?;
    let app2 = app.clone();
    let span = tracing::info_span!("introspect", node = %uuid);
    app.spawn("introspect", background(app2, node, opts).instrument(span));
    app.metrics.introspections_started.inc();
    Ok(())
}

/// Records a failure on the node's status (creating the row if the
/// failure came before the node was cached).
async fn fail(app: &App, uuid: &str, message: String) {
    tracing::error!("{message}");
    if matches!(app.cache.get_node(uuid).await, Err(CacheError::NotFound(_)))
        && let Err(e) = app.cache.add_node(uuid, None, Vec::new()).await
    {
        tracing::error!("failed to record the failure of node {uuid}: {e}");
        return;
    }
    match app.cache.finished(uuid, Some(message)).await {
        Ok(macs) => {
            if let Err(e) = app.firewall.introspection_finished(&macs).await {
                tracing::warn!("firewall not updated (will resync): {e}");
            }
        }
        Err(e) => tracing::error!("failed to record the failure of node {uuid}: {e}"),
    }
}

async fn background(app: App, node: Node, opts: StartOptions) {
    let uuid = node.uuid.clone();
    if let Err(e) = app
        .ironic
        .patch_node(&uuid, &[PatchOp::add("/extra/on_discovery", "true")])
        .await
    {
        return fail(
            &app,
            &uuid,
            format!("Failed to update node {uuid} before introspection: {e}"),
        )
        .await;
    }
    let macs: Vec<String> = match app.ironic.list_node_ports(&uuid).await {
        Ok(ports) => ports.into_iter().map(|p| p.address).collect(),
        Err(e) => {
            return fail(
                &app,
                &uuid,
                format!("Failed to list the ports of node {uuid}: {e}"),
            )
            .await;
        }
    };
    if let Err(e) = app
        .cache
        .add_node(&uuid, node.bmc_address().map(str::to_owned), macs.clone())
        .await
    {
        // 1.0 let this task die silently; recording it tells the operator why.
        return fail(&app, &uuid, e.to_string()).await;
    }
    if opts.setup_ipmi_credentials {
        let value = serde_json::json!({
            "setup": true,
            "username": opts.new_ipmi_username,
            "password": opts.new_ipmi_password,
        });
        if let Err(e) = app
            .cache
            .set_option(&uuid, "setup_ipmi_credentials", &value)
            .await
        {
            return fail(
                &app,
                &uuid,
                format!("Failed to store options of node {uuid}: {e}"),
            )
            .await;
        }
    }
    // The node's DHCP must get through before it reboots.
    if let Err(e) = app.firewall.introspection_started(&macs).await {
        tracing::warn!("firewall not updated yet (the reconnector will resync): {e}");
    }
    if opts.setup_ipmi_credentials {
        tracing::info!(
            "node {uuid} must be powered on manually within {}s to set up IPMI credentials",
            app.config.timeout_secs()
        );
        return waiting(&app, &uuid).await;
    }
    if let Err(e) = app.ironic.set_pxe_boot(&uuid).await {
        tracing::warn!("failed to set the PXE boot device of node {uuid}: {e}");
    }
    if let Err(e) = app.ironic.set_power_state(&uuid, "rebooting").await {
        return fail(
            &app,
            &uuid,
            format!("Failed to power on node {uuid}, check it's power management configuration:\n{e}"),
        )
        .await;
    }
    // Only now: a status that says `waiting` means the node was told to
    // boot the ramdisk (a report cannot come before that reboot).
    waiting(&app, &uuid).await;
    tracing::info!(macs = macs.len(), "introspection started");
}

/// `starting` → `waiting`, unless a ramdisk report already moved it on.
async fn waiting(app: &App, uuid: &str) {
    if let Err(e) = app.cache.advance(uuid, "starting", "waiting").await {
        tracing::warn!("failed to record that node {uuid} waits for its ramdisk: {e}");
    }
}

/// The credentials to answer the ramdisk with when IPMI setup was asked.
pub fn ipmi_reply(node: &Node, option: &Value) -> Value {
    let stored = |k: &str| node.driver_info.get(k).cloned().unwrap_or(Value::Null);
    let pick = |k: &str, d: &str| match option.get(k) {
        Some(v) if !v.is_null() => v.clone(),
        _ => stored(d),
    };
    serde_json::json!({
        "ipmi_setup_credentials": true,
        "ipmi_username": pick("username", "ipmi_username"),
        "ipmi_password": pick("password", "ipmi_password"),
    })
}
