//! The node's ports during processing: from Ironic's list (read beside
//! the node), create those the report calls for, then carry out the port options' plan (deletions
//! per `keep_ports`, `pxe_enabled` corrections), as ironic-inspector's
//! `validate_interfaces` does. The plan itself is pure
//! (`hooks/port_options.rs`). Then the hooks' port patches
//! ([`Processor::patch_ports`]).

use super::{Data, ProcessError, Processor};
use crate::domain::NodeId;
use crate::ironic::{IronicError, Node, PatchOp, Port};

impl Processor {
    /// Every port of the node after the changes: those Ironic has, plus
    /// those created for reported MACs it lacks (no request for a port
    /// that exists), minus those deleted.
    pub(super) async fn ports(
        &self,
        id: NodeId,
        node: &Node,
        mut ports: Vec<Port>,
        data: &Data,
    ) -> Result<Vec<Port>, ProcessError> {
        let fail = |what: &'static str| {
            move |source: IronicError| ProcessError::Ironic {
                node: id,
                what,
                source,
            }
        };
        let policy = self.hooks.port_policy();
        for (mac, pxe) in policy.creations(data, &ports) {
            match self.ironic.create_port_with(&node.uuid, &mac, pxe).await {
                Ok(port) => ports.push(port),
                // Another node's port, or created meanwhile: 1.0 skips it.
                Err(e) if e.is_conflict() => tracing::info!(%mac, "port already exists, skipping: {e}"),
                Err(e) => return Err(fail("create a port")(e)),
            }
        }
        let plan = policy.cleanup(node, &ports, data);
        for uuid in &plan.delete {
            self.ironic
                .delete_port(uuid)
                .await
                .map_err(fail("delete a port"))?;
        }
        ports.retain(|p| !plan.delete.contains(&p.uuid));
        for (uuid, pxe) in plan.set_pxe {
            tracing::info!(port = %uuid, pxe, "correcting pxe_enabled to match the introspected data");
            let port = self
                .ironic
                .patch_port(&uuid, &[PatchOp::replace("/pxe_enabled", pxe)])
                .await
                .map_err(fail("update a port"))?;
            if let Some(p) = ports.iter_mut().find(|p| p.uuid == uuid) {
                p.pxe_enabled = port.pxe_enabled.or(Some(pxe));
            }
        }
        Ok(ports)
    }

    /// The hooks' patches, one PATCH per port. A PATCH Ironic refuses
    /// (400: e.g. a `local_link_connection` with a `port_id` and no
    /// `switch_id` fails its schema) is sent again one field at a time
    /// (`/local_link_connection/*` together, `/physical_network`, ...),
    /// and the refused fields are logged and left out, as ironic-inspector
    /// logs and skips a hook's refused port patch: the node is not failed.
    pub(super) async fn patch_ports(
        &self,
        id: NodeId,
        ports: &[Port],
        patches: &std::collections::BTreeMap<String, Vec<PatchOp>>,
    ) -> Result<(), ProcessError> {
        let fail = |source: IronicError| ProcessError::Ironic {
            node: id,
            what: "update a port",
            source,
        };
        for (mac, ops) in patches {
            let Some(port) = ports.iter().find(|p| p.address.eq_ignore_ascii_case(mac)) else {
                continue;
            };
            match self.ironic.patch_port(&port.uuid, ops).await {
                Ok(_) => continue,
                Err(e) if e.is_rejected() => {
                    tracing::warn!(port = %port.uuid, "port update refused, retrying field by field: {e}");
                }
                Err(e) => return Err(fail(e)),
            }
            let mut fields: Vec<(&str, Vec<PatchOp>)> = Vec::new();
            for op in ops {
                let field = op.path().trim_start_matches('/').split('/').next().unwrap_or("");
                match fields.iter_mut().find(|(f, _)| *f == field) {
                    Some((_, group)) => group.push(op.clone()),
                    None => fields.push((field, vec![op.clone()])),
                }
            }
            for (field, group) in fields {
                match self.ironic.patch_port(&port.uuid, &group).await {
                    Ok(_) => {}
                    Err(e) if e.is_rejected() => {
                        tracing::warn!(port = %port.uuid, field, "failed to update the port: {e}");
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
        }
        Ok(())
    }
}
