//! Auto-discovery (`[processing] node_not_found_hook = enroll`): a report
//! no active node matches is for a machine Ironic may not know. As
//! ironic-inspector's `enroll` hook: a node Ironic already has with the
//! reported BMC address or one of the MACs is an error (it should be
//! introspected, not enrolled again); otherwise a node is created with
//! `[discovery] enroll_node_driver`, `driver_info.ipmi_address` and
//! `enroll_node_fields`, recorded in `enrolling`, and the report is
//! processed as its introspection. The data gets `auto_discovered: true`
//! (what rules match on), as the inspector's.
//!
//! A creation is not safe to repeat, so the node carries its own marks
//! in `extra`: `auto_discovered: true` and the start's `on_discovery`
//! (which the finish removes). A node found with both is this report's
//! own earlier try, whose answer was lost or whose report was answered
//! 503; it is enrolled instead of a second one.

use serde_json::{Map, Value, json};

use super::{Data, LookupAttrs, ProcessError, Processor, lookup_attributes};
use crate::config::discovery::Discovery;
use crate::domain::NodeId;
use crate::introspection::MoveError;
use crate::ironic::{IronicError, IronicErrorKind, Node, within_budget};
use crate::store::{NewIntrospection, Options, Status, StoreError};

/// Why an unknown machine could not be enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Ironic has the machine already: it is not enrolled twice.
    #[error("Node not found hook failed: {0}")]
    Exists(String),
    #[error("Node not found hook failed: failed to {what}: {source}")]
    Ironic {
        what: &'static str,
        #[source]
        source: IronicError,
    },
    #[error("Node not found hook failed: node {node} was created in Ironic but not recorded: {source}")]
    Record {
        node: NodeId,
        #[source]
        source: MoveError,
    },
}

impl EnrollError {
    /// Waiting may help: the ramdisk's retry finds a node whose creation
    /// was lost (its marks) instead of making a second one.
    pub fn is_transient(&self) -> bool {
        match self {
            EnrollError::Ironic { source, .. } => {
                source.is_transient() || matches!(source.kind, IronicErrorKind::OutcomeUnknown(_))
            }
            EnrollError::Record { source, .. } => matches!(
                source,
                MoveError::Store(StoreError::Backend { .. } | StoreError::Unwritable { .. })
            ),
            EnrollError::Exists(_) => false,
        }
    }
}

fn ironic(what: &'static str) -> impl FnOnce(IronicError) -> EnrollError {
    move |source| EnrollError::Ironic { what, source }
}

/// Whether a node carries the marks of an enrolment not yet finished.
fn ours(node: &Node) -> bool {
    node.extra.get("auto_discovered") == Some(&Value::Bool(true)) && node.extra.contains_key("on_discovery")
}

/// The body of `POST /v1/nodes` for a discovered machine.
pub fn new_node(settings: &Discovery, bmc_address: Option<&str>) -> Map<String, Value> {
    let mut fields = settings.enroll_node_fields.clone();
    let mut driver_info = Map::new();
    if let Some(bmc) = bmc_address {
        driver_info.insert("ipmi_address".into(), json!(bmc));
    }
    fields.insert("driver".into(), json!(settings.enroll_node_driver));
    fields.insert("driver_info".into(), Value::Object(driver_info));
    fields.insert(
        "extra".into(),
        json!({"auto_discovered": true, "on_discovery": "true"}),
    );
    fields
}

impl Processor {
    /// Turns on auto-discovery with these settings.
    pub fn with_discovery(mut self, settings: Discovery) -> Self {
        self.discovery = Some(std::sync::Arc::new(settings));
        self
    }

    /// Enrols the machine a report no node matched; its record, in
    /// `enrolling`. `None` when auto-discovery is off.
    pub(super) async fn enroll(&self, data: &mut Data) -> Option<Result<Status, ProcessError>> {
        let settings = self.discovery.clone()?;
        Some(self.enroll_with(&settings, data).await)
    }

    async fn enroll_with(&self, settings: &Discovery, data: &mut Data) -> Result<Status, ProcessError> {
        // Nothing is created in Ironic that the store cannot record.
        self.lifecycle.store().check_writable().await?;
        let attrs = lookup_attributes(data);
        if attrs.bmc_address.is_none() {
            tracing::warn!("no BMC address reported: the discovered node is created without ipmi_address");
        }
        let budget = self.settings.request_retry_budget;
        let node = within_budget(budget, self.find_or_create(settings, &attrs)).await?;
        let id: NodeId = node.uuid.parse().map_err(|_| EnrollError::Ironic {
            what: "create a node",
            source: IronicError::new(
                "POST",
                "/v1/nodes",
                IronicErrorKind::Protocol(format!("the new node's uuid {:?} is not a UUID", node.uuid)),
            ),
        })?;
        data.insert("auto_discovered".into(), Value::Bool(true));
        let new = NewIntrospection {
            node: id,
            bmc_address: attrs.bmc_address.clone(),
            options: Options::new(),
        };
        let record = |source| EnrollError::Record { node: id, source };
        let status = self.lifecycle.enroll(&new).await.map_err(record)?;
        // The MACs find the node again if the report is answered 503
        // and it has no BMC address.
        let macs = super::lookup_key(data).macs;
        if !macs.is_empty() {
            self.lifecycle
                .store()
                .add_macs(id, &macs)
                .await
                .map_err(|e| record(MoveError::Store(e)))?;
        }
        tracing::info!(node = %id, driver = %settings.enroll_node_driver, "enrolled a discovered node");
        Ok(status)
    }

    /// The node this report's machine is, created unless an earlier try
    /// of the same report created it.
    async fn find_or_create(&self, settings: &Discovery, attrs: &LookupAttrs) -> Result<Node, EnrollError> {
        if let Some(n) = self.existing(attrs).await? {
            return Ok(n);
        }
        let fields = new_node(settings, attrs.bmc_address.as_deref());
        match self.ironic.create_node(&fields).await {
            Ok(n) => Ok(n),
            // Perhaps created: a node with our marks is it (the lookup
            // needs the BMC address; without it the ramdisk's retry
            // looks again).
            Err(e) if matches!(e.kind, IronicErrorKind::OutcomeUnknown(_)) => {
                match self.existing(attrs).await {
                    Ok(Some(n)) => Ok(n),
                    _ => Err(ironic("create a node")(e)),
                }
            }
            Err(e) => Err(ironic("create a node")(e)),
        }
    }

    /// A node Ironic has with the BMC address or a MAC: this report's own
    /// earlier creation (returned), or another node (an error, as the
    /// inspector's `_check_existing_nodes`).
    async fn existing(&self, attrs: &LookupAttrs) -> Result<Option<Node>, EnrollError> {
        let mut found: Vec<(String, String)> = Vec::new();
        for mac in &attrs.macs {
            let port = self
                .ironic
                .find_port(mac)
                .await
                .map_err(ironic("look up a port"))?;
            if let Some(p) = port {
                let owner = p.node_uuid.unwrap_or_default();
                found.push((owner, format!("port {} has MAC {mac}", p.uuid)));
            }
        }
        if let Some(bmc) = &attrs.bmc_address {
            let nodes = self.ironic.list_nodes().await.map_err(ironic("list the nodes"))?;
            for n in nodes.iter().filter(|n| n.bmc_address() == Some(bmc.as_str())) {
                found.push((n.uuid.clone(), format!("it has BMC address {bmc}")));
            }
        }
        let mut uuids: Vec<&str> = found.iter().map(|(u, _)| u.as_str()).collect();
        uuids.sort_unstable();
        uuids.dedup();
        match uuids.as_slice() {
            [] => Ok(None),
            [uuid] => {
                let node = self.ironic.get_node(uuid).await.map_err(ironic("read a node"))?;
                if ours(&node) {
                    tracing::info!(node = %uuid, "an earlier try of this report created the node");
                    return Ok(Some(node));
                }
                let why: Vec<&str> = found.iter().map(|(_, w)| w.as_str()).collect();
                Err(EnrollError::Exists(format!(
                    "node {uuid} already exists in Ironic ({}); start its introspection instead",
                    why.join(", ")
                )))
            }
            many => Err(EnrollError::Exists(format!(
                "the reported BMC address and MACs belong to several Ironic nodes: {}",
                many.join(", ")
            ))),
        }
    }
}
