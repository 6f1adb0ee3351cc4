//! Ironic REST resources as discoverd reads and changes them.
//!
//! Only the fields discoverd uses are typed; Ironic sends many more, which
//! serde ignores. Maps stay `serde_json::Map` because their keys are
//! driver- and deployment-specific.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A bare-metal node (`GET /v1/nodes/{uuid}`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Node {
    pub uuid: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub driver_info: Map<String, Value>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    #[serde(default)]
    pub maintenance: bool,
    /// `None` on Juno-era Ironic, which had no provision states here.
    #[serde(default)]
    pub provision_state: Option<String>,
    #[serde(default)]
    pub power_state: Option<String>,
    /// Every other field Ironic sent (`resource_class`,
    /// `driver_internal_info`, `traits`, ...), untouched: introspection
    /// rules' `node://` fields read the whole node, as ironic-inspector's do.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Node {
    /// The BMC address discoverd looks nodes up by: the first non-empty of
    /// `ipmi_address`, `ilo_address`, `drac_host` (spec §4.2), verbatim.
    /// Newer drivers use `redfish_address`/`idrac_address`; they are tried
    /// after the 1.0 keys.
    pub fn bmc_address(&self) -> Option<&str> {
        [
            "ipmi_address",
            "ilo_address",
            "drac_host",
            "redfish_address",
            "idrac_address",
        ]
        .iter()
        .filter_map(|k| self.driver_info.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|v| !v.is_empty())
    }
}

/// A NIC known to Ironic (`GET /v1/ports`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Port {
    pub uuid: String,
    /// As Ironic stores it: lower-case, colon-separated.
    pub address: String,
    #[serde(default)]
    pub node_uuid: Option<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Whether the node boots from this NIC (`None` when not listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pxe_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_network: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub local_link_connection: Map<String, Value>,
}

/// One RFC 6902 operation of a PATCH request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Replace { path: String, value: Value },
    Remove { path: String },
}

impl PatchOp {
    pub fn add(path: impl Into<String>, value: impl Into<Value>) -> Self {
        PatchOp::Add {
            path: path.into(),
            value: value.into(),
        }
    }

    pub fn replace(path: impl Into<String>, value: impl Into<Value>) -> Self {
        PatchOp::Replace {
            path: path.into(),
            value: value.into(),
        }
    }

    pub fn remove(path: impl Into<String>) -> Self {
        PatchOp::Remove { path: path.into() }
    }

    /// The JSON pointer the operation targets.
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. } | PatchOp::Replace { path, .. } | PatchOp::Remove { path } => path,
        }
    }
}

/// The `power` part of `GET /v1/nodes/{uuid}/validate`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InterfaceValidation {
    /// `None` when the interface is not applicable.
    #[serde(default)]
    pub result: Option<bool>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_address_follows_the_1_0_order() -> Result<(), serde_json::Error> {
        let n: Node = serde_json::from_value(serde_json::json!({
            "uuid": "u", "driver_info": {"ilo_address": "192.0.2.2", "ipmi_address": " ", "drac_host": "192.0.2.3"}
        }))?;
        assert_eq!(n.bmc_address(), Some("192.0.2.2"));
        let n: Node = serde_json::from_value(serde_json::json!({"uuid": "u"}))?;
        assert_eq!(n.bmc_address(), None);
        assert_eq!(n.provision_state, None);
        Ok(())
    }

    #[test]
    fn patch_ops_serialise_as_rfc6902() -> Result<(), serde_json::Error> {
        let ops = vec![
            PatchOp::add("/extra/on_discovery", "true"),
            PatchOp::remove("/extra/on_discovery"),
        ];
        assert_eq!(
            serde_json::to_value(&ops)?,
            serde_json::json!([
                {"op": "add", "path": "/extra/on_discovery", "value": "true"},
                {"op": "remove", "path": "/extra/on_discovery"}
            ])
        );
        Ok(())
    }
}
