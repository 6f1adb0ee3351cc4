//! Starting introspection (spec §4). While the client waits: the node is
//! read from Ironic and checked, then recorded in state `starting` — a
//! `202` is a promise, so the record is durable before the answer. In the
//! background: record the node's MACs, open the DHCP filter for them, and
//! reboot it into the ramdisk; only then `waiting`. (1.0 also marked the
//! node with `extra.on_discovery` here; the mark is now written only on a
//! node whose run fails, see [`super::mark`].)
//! A daemon that restarts finds nodes still `starting` and carries the
//! same steps on ([`Introspector::resume`]).

use serde_json::{Value, json};
use tracing::Instrument;

use super::{Introspector, MoveError, Outcome};
use crate::domain::{NodeId, NodeRef, State, Transition};
use crate::ironic::{IronicError, Node, within_budget};
use crate::store::{NewIntrospection, Options, StoreError};

/// Provision states a node may be introspected in (1.0, plus 1.1's
/// `inspect failed` so a failed run can be retried).
const VALID_STATES: &[&str] = &["enroll", "manageable", "inspecting", "inspect failed"];

/// The option a start with IPMI credential setup records.
const IPMI_OPTION: &str = "setup_ipmi_credentials";

/// The option a `manage_boot=false` start records.
pub(super) const MANAGE_BOOT_OPTION: &str = "manage_boot";

/// Query options of `POST /v1/introspection/<node>`.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub setup_ipmi_credentials: bool,
    pub new_ipmi_username: Option<String>,
    pub new_ipmi_password: Option<String>,
    /// Set the PXE boot device and reboot the node (API 1.13's
    /// `manage_boot`; `false`: the operator boots it, and it is not
    /// powered off at the end).
    pub manage_boot: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            setup_ipmi_credentials: false,
            new_ipmi_username: None,
            new_ipmi_password: None,
            manage_boot: true,
        }
    }
}

/// Settings the start flow reads.
#[derive(Debug, Clone, Copy)]
pub struct StartSettings {
    pub enable_setting_ipmi_credentials: bool,
    /// Seconds, for the log line of a manual power-on.
    pub timeout_secs: f64,
    /// Time the Ironic calls made while the client waits may spend
    /// retrying (`ironic_request_retry_budget`); the background steps
    /// have the client's own, longer budget. Zero: one try per call.
    pub request_retry_budget: std::time::Duration,
    /// `false`: starts with `manage_boot` are refused.
    pub can_manage_boot: bool,
    /// Least time between two reboots into the ramdisk.
    pub introspection_delay: std::time::Duration,
}

impl Default for StartSettings {
    fn default() -> Self {
        StartSettings {
            enable_setting_ipmi_credentials: false,
            timeout_secs: 0.0,
            can_manage_boot: true,
            introspection_delay: std::time::Duration::ZERO,
            request_retry_budget: std::time::Duration::from_secs(10),
        }
    }
}

/// Whether the options recorded at start say the daemon manages boot.
pub fn manages_boot(options: &Options) -> bool {
    options.get(MANAGE_BOOT_OPTION).and_then(Value::as_bool) != Some(false)
}

/// Why a start was refused. Nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("Cannot find node {0}")]
    NodeNotFound(NodeRef),
    /// Ironic could not be asked (down, overloaded): try again later.
    #[error("Cannot get node {node}: {source}")]
    IronicUnavailable {
        node: NodeRef,
        #[source]
        source: IronicError,
    },
    #[error("Cannot get node {node}: {source}")]
    Ironic {
        node: NodeRef,
        #[source]
        source: IronicError,
    },
    #[error("IPMI credentials setup is disabled in configuration")]
    IpmiSetupDisabled,
    #[error(
        "Managed boot is requested, but this installation cannot manage boot (can_manage_boot set to False)"
    )]
    CannotManageBoot,
    #[error("new_ipmi_password must be 1 to 20 alphanumeric characters")]
    BadIpmiPassword,
    #[error("Refusing to introspect node {node} with provision state \"{state}\" and maintenance mode off")]
    ProvisionState { node: NodeId, state: String },
    #[error("Failed validation of power interface for node {node}, reason: {reason}")]
    PowerValidation { node: NodeId, reason: String },
    /// Ironic gave a node whose UUID we cannot read.
    #[error("Ironic returned node {uuid:?} for {node}, which is not a UUID")]
    BadUuid { node: NodeRef, uuid: String },
    /// The node is in a state a start cannot follow (being processed, ...).
    #[error("Node {node} cannot be introspected now: {source}")]
    Busy {
        node: NodeId,
        #[source]
        source: MoveError,
    },
    #[error(transparent)]
    Store(StoreError),
}

pub(super) fn ironic_error(node: &NodeRef, e: IronicError) -> StartError {
    match e {
        e if e.is_not_found() => StartError::NodeNotFound(node.clone()),
        e if e.is_transient() => StartError::IronicUnavailable {
            node: node.clone(),
            source: e,
        },
        e => StartError::Ironic {
            node: node.clone(),
            source: e,
        },
    }
}

impl Introspector {
    /// The synchronous part: on success the node is recorded as `starting`
    /// and the background part runs.
    pub async fn start(&self, node_ref: &NodeRef, opts: StartOptions) -> Result<NodeId, StartError> {
        within_budget(
            self.settings.request_retry_budget,
            self.start_checked(node_ref, opts),
        )
        .await
    }

    async fn start_checked(&self, node_ref: &NodeRef, opts: StartOptions) -> Result<NodeId, StartError> {
        let key = node_ref.to_string();
        // Ironic takes a name or a UUID in both paths: the power check is
        // asked at once, beside the node (it only reads), and looked at
        // after the node's own checks, in 1.0's order.
        let validate = async {
            match opts.setup_ipmi_credentials {
                false => Some(self.ironic.validate_power(&key).await),
                true => None,
            }
        };
        let (node, validation) = tokio::join!(self.ironic.get_node(&key), validate);
        let node = node.map_err(|e| ironic_error(node_ref, e))?;
        let id: NodeId = node.uuid.parse().map_err(|_| StartError::BadUuid {
            node: node_ref.clone(),
            uuid: node.uuid.clone(),
        })?;
        if opts.manage_boot && !self.settings.can_manage_boot {
            return Err(StartError::CannotManageBoot);
        }
        if opts.setup_ipmi_credentials && !self.settings.enable_setting_ipmi_credentials {
            return Err(StartError::IpmiSetupDisabled);
        }
        if let Some(p) = &opts.new_ipmi_password
            && (p.is_empty() || p.len() > 20 || !p.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(StartError::BadIpmiPassword);
        }
        if node.maintenance {
            tracing::info!(node = %id, "node is in maintenance mode, skipping the provision state check");
        } else if let Some(state) = node.provision_state.as_deref().filter(|s| !s.is_empty())
            && !VALID_STATES.contains(&state.to_lowercase().as_str())
        {
            return Err(StartError::ProvisionState {
                node: id,
                state: state.to_owned(),
            });
        }
        if let Some(v) = validation {
            let v = v.map_err(|e| ironic_error(node_ref, e))?;
            if v.result != Some(true) {
                return Err(StartError::PowerValidation {
                    node: id,
                    reason: v.reason.unwrap_or_default(),
                });
            }
        }
        let mut options = Options::new();
        if !opts.manage_boot {
            options.insert(MANAGE_BOOT_OPTION.into(), json!(false));
        }
        if opts.setup_ipmi_credentials {
            options.insert(
                IPMI_OPTION.into(),
                json!({
                    "setup": true,
                    "username": opts.new_ipmi_username,
                    "password": opts.new_ipmi_password,
                }),
            );
        }
        let new = NewIntrospection {
            node: id,
            bmc_address: node.bmc_address().map(str::to_owned),
            options,
        };
        self.lifecycle
            .store()
            .check_writable()
            .await
            .map_err(StartError::Store)?;
        self.lifecycle.start(&new).await.map_err(|e| match e {
            MoveError::Store(s) => StartError::Store(s),
            e @ MoveError::Illegal { .. } => StartError::Busy { node: id, source: e },
        })?;
        let this = self.clone();
        let span = tracing::info_span!("introspect", node = %id);
        self.tasks.spawn(
            "introspect",
            async move { this.reboot_into_ramdisk(id).await }.instrument(span),
        );
        Ok(id)
    }

    /// Carries on every start a previous run of the daemon accepted but
    /// did not get to reboot (state `starting`). Returns how many.
    pub async fn resume(&self) -> Result<usize, StoreError> {
        let pending = self.lifecycle.store().in_state(State::Starting).await?;
        for s in &pending {
            tracing::warn!(node = %s.node, "resuming a start accepted before the restart: its reboot was not sent");
            let this = self.clone();
            let id = s.node;
            let span = tracing::info_span!("introspect", node = %id);
            self.tasks.spawn(
                "resume",
                async move { this.reboot_into_ramdisk(id).await }.instrument(span),
            );
        }
        Ok(pending.len())
    }

    async fn fail(&self, node: NodeId, message: String) {
        let _ = self.lifecycle.finish(node, Outcome::Failed(message)).await;
    }

    /// The background steps, each safe to repeat after a restart.
    pub(super) async fn reboot_into_ramdisk(self, id: NodeId) {
        let uuid = id.to_string();
        let store = self.lifecycle.store();
        let (ipmi_setup, manage_boot) = match self.lifecycle.durably(|| store.options(id)).await {
            Ok(o) => (o.contains_key(IPMI_OPTION), manages_boot(&o)),
            Err(e) => {
                return self
                    .fail(id, format!("Failed to read the options of node {uuid}: {e}"))
                    .await;
            }
        };
        let reboot = manage_boot && !ipmi_setup;
        if ipmi_setup {
            tracing::info!(
                "node {uuid} must be powered on manually within {}s to set up IPMI credentials",
                self.settings.timeout_secs
            );
        } else if !manage_boot {
            tracing::info!(
                "node {uuid} is not booted by the daemon (manage_boot=false): boot it into the ramdisk"
            );
        } else {
            self.wait_for_turn().await;
        }
        // The port list and the boot device do not need each other: both
        // at once. Only the reboot must wait for the node's DHCP to get
        // through the filter.
        let boot_device = async {
            if reboot && let Err(e) = self.ironic.set_pxe_boot(&uuid).await {
                tracing::warn!("failed to set the PXE boot device of node {uuid}: {e}");
            }
        };
        let (ports, ()) = tokio::join!(self.ironic.list_node_ports(&uuid), boot_device);
        let ports = match ports {
            Ok(p) => p,
            Err(e) => {
                return self
                    .fail(id, format!("Failed to list the ports of node {uuid}: {e}"))
                    .await;
            }
        };
        let mut macs = Vec::new();
        for p in &ports {
            match p.address.parse::<common::MacAddr>() {
                Ok(m) => macs.push(m),
                Err(e) => tracing::warn!("port {} of node {uuid} is ignored: {e}", p.uuid),
            }
        }
        // Accepted with a 202: a database restarting now must not lose it.
        if let Err(e) = self.lifecycle.durably(|| store.add_macs(id, &macs)).await {
            return self.fail(id, e.to_string()).await;
        }
        // The node's DHCP must get through before it reboots (in deny mode
        // also when it has no ports: the first running introspection opens
        // the filter for unknown MACs).
        let mac_strings: Vec<String> = macs.iter().map(ToString::to_string).collect();
        if let Err(e) = self
            .lifecycle
            .firewall()
            .introspection_started(&mac_strings, self.lifecycle.introspections())
            .await
        {
            tracing::warn!("firewall not updated yet (the reconnector will resync): {e}");
        }
        if reboot && let Err(e) = self.ironic.set_power_state(&uuid, "rebooting").await {
            return self
                .fail(
                    id,
                    format!(
                        "Failed to power on node {uuid}, check it's power management configuration:\n{e}"
                    ),
                )
                .await;
        }
        // Only now may a report be processed: the reboot was sent.
        match self
            .lifecycle
            .advance_durably(id, State::Starting, Transition::Wait)
            .await
        {
            Ok(_) => tracing::info!(macs = macs.len(), "introspection started"),
            Err(e) => tracing::warn!("node {uuid} did not move to waiting: {e}"),
        }
    }
}

/// The credentials to answer the ramdisk with when IPMI setup was asked.
pub fn ipmi_reply(node: &Node, option: &Value) -> Value {
    let stored = |k: &str| node.driver_info.get(k).cloned().unwrap_or(Value::Null);
    let pick = |k: &str, d: &str| match option.get(k) {
        Some(v) if !v.is_null() => v.clone(),
        _ => stored(d),
    };
    json!({
        "ipmi_setup_credentials": true,
        "ipmi_username": pick("username", "ipmi_username"),
        "ipmi_password": pick("password", "ipmi_password"),
    })
}

/// The option name under which IPMI setup is recorded.
pub fn ipmi_option(options: &Options) -> Option<&Value> {
    options.get(IPMI_OPTION)
}
