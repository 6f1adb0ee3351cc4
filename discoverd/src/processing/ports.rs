//! The node's ports during processing: from Ironic's list (read beside
//! the node), create those the report calls for, then carry out the port options' plan (deletions
//! per `keep_ports`, `pxe_enabled` corrections), as ironic-inspector's
//! `validate_interfaces` does. The plan itself is pure
//! (`hooks/port_options.rs`).

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
}
