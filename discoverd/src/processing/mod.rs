//! Processing what the ramdisk posts to `/v1/continue` (spec §5): the
//! payload shapes ([`payload`]), the flow that looks the node up, moves it
//! to `processing` (only once its reboot was sent), runs the hooks and
//! updates Ironic, and the finishing steps ([`finish`]) in the background.

mod enroll;
mod error;
mod finish;
pub mod payload;
mod ports;
mod preprocess;
pub mod ramdisk_logs;
mod reapply;
mod rules;
mod takeover;

pub use crate::json::type_name;
pub use enroll::EnrollError;
pub use error::ProcessError;
pub use payload::{Data, LookupAttrs, PayloadError, lookup_attributes, normalize};
pub use reapply::ReapplyError;

use std::sync::Arc;
use std::time::Duration;

use common::MacAddr;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use crate::backoff::BackoffSettings;
use crate::domain::{NodeId, State, Transition};
use crate::hooks::HookChain;
use crate::introspection::{Lifecycle, MoveError, Outcome, ipmi_option, ipmi_reply};
use crate::ironic::{IronicClient, IronicError, Node, PatchOp, within_budget};
use crate::store::{DataKind, LookupKey, Options, Status, StoreError};
use crate::tasks::Tasks;

/// A held report reads the node's state again after this, then after
/// twice as long, up to [`HOLD_POLL_MAX`]: how soon it sees a start flow
/// running on another daemon of a shared database.
const HOLD_POLL_FIRST: Duration = Duration::from_millis(20);
const HOLD_POLL_MAX: Duration = Duration::from_millis(500);

/// Settings the processing flow reads.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSettings {
    /// The introspection deadline (`None`: disabled).
    pub timeout: Option<Duration>,
    /// The pauses between power validations while waiting for new IPMI
    /// credentials: growing from `initial` to `max`.
    pub power_poll: BackoffSettings,
    /// How long a report for a node whose start has not yet sent its
    /// reboot is held before it is answered 503 (the ramdisk retries).
    pub report_hold: Duration,
    /// Time all the Ironic calls of one report may spend retrying
    /// transient failures; past it the node goes back to `waiting` and
    /// the report is answered 503 (the ramdisk retries). Shorter than the
    /// background flows' budget: the ramdisk is waiting for the answer.
    pub request_retry_budget: Duration,
    /// Keep raw and processed data in the store (`store_data = database`).
    pub store_data: bool,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            timeout: Some(Duration::from_secs(3600)),
            power_poll: BackoffSettings::default(),
            report_hold: Duration::from_secs(30),
            request_retry_budget: Duration::from_secs(10),
            store_data: false,
        }
    }
}

/// The processing flow's handles; cheap to clone.
#[derive(Debug, Clone)]
pub struct Processor {
    ironic: IronicClient,
    lifecycle: Lifecycle,
    hooks: Arc<HookChain>,
    settings: ProcessSettings,
    tasks: Tasks,
    /// Introspection rules, applied after the hooks (`processing/rules.rs`).
    rules: Option<crate::rules::RuleBook>,
    /// Where the ramdisk's logs go (ramdisk_logs.rs).
    logs: Arc<ramdisk_logs::RamdiskLogs>,
    /// Auto-discovery's settings; `None` when off (`processing/enroll.rs`).
    discovery: Option<Arc<crate::config::discovery::Discovery>>,
}

/// The lookup attributes of a report, as the store compares them.
fn lookup_key(data: &Data) -> LookupKey {
    let attrs = lookup_attributes(data);
    LookupKey {
        bmc_address: attrs.bmc_address,
        macs: attrs
            .macs
            .iter()
            .filter_map(|m| m.parse::<MacAddr>().ok())
            .collect(),
    }
}

impl Processor {
    pub fn new(
        ironic: IronicClient,
        lifecycle: Lifecycle,
        hooks: Arc<HookChain>,
        settings: ProcessSettings,
        tasks: Tasks,
    ) -> Self {
        Processor {
            ironic,
            lifecycle,
            hooks,
            settings,
            tasks,
            rules: None,
            logs: Arc::default(),
            discovery: None,
        }
    }

    /// Keeps the ramdisk's logs as `logs` says.
    pub fn with_ramdisk_logs(mut self, logs: ramdisk_logs::RamdiskLogs) -> Self {
        self.logs = Arc::new(logs);
        self
    }

    /// Writes the ramdisk's logs, if `failed` or always asked (off the
    /// async threads: it is file I/O).
    async fn store_logs(&self, logs: Option<&Value>, failed: bool, node: Option<NodeId>, data: &Data) {
        if self.logs.dir.is_none() || !(failed || self.logs.always) {
            return;
        }
        let (conf, logs, data) = (self.logs.clone(), logs.cloned(), data.clone());
        let now = crate::domain::Timestamp::now();
        let _ =
            tokio::task::spawn_blocking(move || conf.store(logs.as_ref(), failed, node, &data, now)).await;
    }

    pub fn hooks(&self) -> &HookChain {
        &self.hooks
    }

    /// Handles one report; returns the reply for the ramdisk.
    pub async fn process(&self, body: Value) -> Result<Value, ProcessError> {
        // The logs are never stored with the data (as the inspector).
        let raw = self.settings.store_data.then(|| {
            let mut raw = body.clone();
            if let Some(o) = raw.as_object_mut() {
                o.remove("logs");
            }
            raw
        });
        let mut data = normalize(body)?;
        let logs = ramdisk_logs::RamdiskLogs::take(&mut data);
        // A hook's failure (the ramdisk's own error among them) fails the
        // node it belongs to at once, when the lookup finds it.
        self.preprocess(&mut data, logs.as_ref()).await?;
        let found = match self.lifecycle.store().find(&lookup_key(&data)).await {
            Ok(found) => found,
            // An unknown machine: enrolled when auto-discovery is on.
            Err(StoreError::NoMatch(m)) if self.discovery.is_some() => match self.enroll(&mut data).await {
                Some(Ok(enrolled)) => enrolled,
                Some(Err(e)) => {
                    self.store_logs(logs.as_ref(), true, None, &data).await;
                    return Err(e);
                }
                None => return Err(StoreError::NoMatch(m).into()),
            },
            Err(e) => {
                self.store_logs(logs.as_ref(), true, None, &data).await;
                return Err(e.into());
            }
        };
        let node = found.node;
        let span = tracing::info_span!("continue", node = %node);
        async {
            // The first write: if the store cannot take it, say so before
            // Ironic is touched, so the ramdisk's retry finds everything
            // as it was.
            self.lifecycle.store().check_writable().await?;
            // Read before the move too: once the node is `processing` and
            // Ironic updated, a database failing (restarting) must not
            // fail it; the later store calls are not fatal.
            let options = self.lifecycle.store().options(node).await?;
            let state = self.wait_while_starting(found).await?;
            self.lifecycle
                .advance(node, state, Transition::Process)
                .await
                .map_err(|e| match e {
                    MoveError::Store(StoreError::StateChanged { actual, .. }) => {
                        ProcessError::Busy { node, state: actual }
                    }
                    MoveError::Illegal { source, .. } => ProcessError::Busy {
                        node,
                        state: source.from,
                    },
                    MoveError::Store(s) => ProcessError::Store(s),
                })?;
            if let Some(raw) = &raw {
                self.keep_data(node, DataKind::Raw, raw).await;
            }
            let budget = self.settings.request_retry_budget;
            match within_budget(budget, self.update(node, &options, &mut data)).await {
                Ok(reply) => {
                    self.store_logs(logs.as_ref(), false, Some(node), &data).await;
                    Ok(reply)
                }
                Err(e) if e.is_transient() => Err(self.requeue(node, e).await),
                Err(e) => {
                    let _ = self.lifecycle.finish(node, Outcome::Failed(e.to_string())).await;
                    self.store_logs(logs.as_ref(), true, Some(node), &data).await;
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Ironic kept failing transiently until the report's budget was
    /// spent: the node goes back to `waiting` so the ramdisk's retry is
    /// processed (every step of [`Self::update`] is safe to repeat), and
    /// the report is answered 503.
    async fn requeue(&self, node: NodeId, e: ProcessError) -> ProcessError {
        tracing::warn!("report not processed, the node waits for the ramdisk's retry: {e}");
        // Durably: the transient failure may be the database's own (it
        // restarts), and a move back that fails only because of it must
        // not fail the node, whose ramdisk retries once it is back.
        match self
            .lifecycle
            .advance_durably(node, State::Processing, Transition::Requeue)
            .await
        {
            Ok(_) => e,
            // The node left `processing` meanwhile (timed out, aborted),
            // or the database stayed down past the store's retries: the
            // retry will be told so; fail it if it is still ours.
            Err(m) => {
                tracing::warn!("node {node} could not go back to waiting: {m}");
                let _ = self.lifecycle.finish(node, Outcome::Failed(e.to_string())).await;
                e
            }
        }
    }

    /// A report for a node still `starting` (its reboot not yet sent) is
    /// held until the start flow moves it on, or answered 503 after
    /// `report_hold`: it is never processed alongside the start.
    async fn wait_while_starting(&self, found: Status) -> Result<State, ProcessError> {
        if found.state != State::Starting {
            return Ok(found.state);
        }
        let node = found.node;
        let mut events = self.lifecycle.bus().subscribe();
        let deadline = tokio::time::Instant::now() + self.settings.report_hold;
        tracing::debug!("report held: the node's reboot is not sent yet");
        // This daemon's own start flow wakes us through the bus; another
        // daemon's (on a shared database) is seen by reading the store
        // again, at growing intervals.
        let mut poll = HOLD_POLL_FIRST;
        loop {
            // Read after subscribing, so no change is missed in between.
            let state = self.lifecycle.store().get(node).await?.state;
            if state != State::Starting {
                return Ok(state);
            }
            let now = tokio::time::Instant::now();
            let wake = (now + poll).min(deadline);
            poll = (poll * 2).min(HOLD_POLL_MAX);
            match tokio::time::timeout_at(wake, events.recv()).await {
                Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
                Err(_) if wake < deadline => {}
                Ok(Err(RecvError::Closed)) | Err(_) => {
                    return Err(ProcessError::StillStarting {
                        node,
                        waited: self.settings.report_hold,
                    });
                }
            }
        }
    }

    /// Stores introspection data when `store_data` asks; a failure is
    /// logged, not the node's (the data is for the operator).
    async fn keep_data(&self, node: NodeId, kind: DataKind, data: &Value) {
        if !self.settings.store_data {
            return;
        }
        if let Err(e) = self.lifecycle.store().put_data(node, kind, data).await {
            tracing::warn!(node = %node, "{} introspection data not stored: {e}", kind.as_str());
        }
    }

    /// §5.3: ports, hooks, node and port patches, then the reply and the
    /// finishing steps in the background.
    async fn update(&self, id: NodeId, options: &Options, data: &mut Data) -> Result<Value, ProcessError> {
        let uuid = id.to_string();
        let (node, node_ops) = self.apply(id, data).await?;
        self.keep_data(id, DataKind::Processed, &Value::Object(data.clone()))
            .await;
        // The uuid is ironic-inspector's addition; 1.0 ramdisks ignore it.
        // On a shared database the step is durable before the answer: a
        // daemon taking the node over carries it on (takeover.rs). Not
        // recorded (the database failed just now): this daemon still
        // carries it on; only if it also dies does the timeout end it.
        let awaiting = ipmi_option(options).is_some();
        if let Err(e) = self.record_step(id, awaiting, &node_ops).await {
            tracing::warn!("the finishing step is not recorded: {e}");
        }
        let this = self.clone();
        let span = tracing::Span::current();
        Ok(match ipmi_option(options) {
            Some(opt) => {
                let mut r = ipmi_reply(&node, opt);
                r["uuid"] = json!(uuid);
                self.tasks.spawn(
                    "wait_for_power_management",
                    async move { this.wait_for_power_management(id, node_ops).await }.instrument(span),
                );
                r
            }
            None => {
                self.tasks.spawn(
                    "finish",
                    async move { this.finish(id, node_ops).await }.instrument(span),
                );
                json!({"uuid": uuid})
            }
        })
    }

    /// Ports, hooks and port patches; the node as Ironic had it before and
    /// the hooks' node changes, which the caller sends (the finish, in its
    /// one PATCH after power-off; a reapply, at once).
    async fn apply(&self, id: NodeId, data: &mut Data) -> Result<(Node, Vec<PatchOp>), ProcessError> {
        let uuid = id.to_string();
        let fail = |what: &'static str| {
            move |source: IronicError| ProcessError::Ironic {
                node: id,
                what,
                source,
            }
        };
        // The node and its ports at once (neither needs the other).
        let (node, listed) = tokio::join!(self.ironic.get_node(&uuid), self.ironic.list_node_ports(&uuid));
        let node = match node {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Err(ProcessError::NotInIronic { node: id }),
            Err(source) => return Err(ProcessError::IronicGet { node: id, source }),
        };
        let listed = listed.map_err(fail("list the ports"))?;
        let ports = self.ports(id, &node, listed, data).await?;
        let mut patches = self.hooks.before_update(&node, &ports, data)?;
        let rules = self.apply_rules(&node, &mut patches.node, data).await?;
        self.send_traits(id, &rules).await?;
        // The node's own changes (the hooks' and the rules') are sent with
        // the finishing marks, in one PATCH after power-off (finish.rs):
        // two node PATCHes per run.
        self.patch_ports(id, &ports, &patches.ports).await?;
        tracing::info!(
            ports = ports.len(),
            properties = patches.node.len(),
            "node updated"
        );
        Ok((node, patches.node))
    }
}
