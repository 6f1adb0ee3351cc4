//! `lldp_basic` (ironic-inspector `plugins/lldp_basic.py`): each
//! interface's raw LLDP TLVs (`lldp_raw[name]`, else the inventory
//! interface's `lldp`) are read (see [`super::lldp_tlvs`]) into
//! `all_interfaces[name].lldp_processed`, where the rules, the stored data
//! and `local_link_connection` find them. Interfaces without LLDP data, or
//! that validation did not keep in `all_interfaces`, are passed over (the
//! inspector fails on the latter with an internal error).

use serde_json::Value;

use super::{HookContext, HookError, HookPatches, ProcessingHook, lldp_tlvs};
use crate::processing::payload::truthy;

#[derive(Debug)]
pub(super) struct LldpBasic;

impl ProcessingHook for LldpBasic {
    fn name(&self) -> &'static str {
        "lldp_basic"
    }

    fn before_update(&self, ctx: &HookContext<'_>) -> Result<Option<HookPatches>, HookError> {
        let data = ctx.data;
        let Some(ifaces) = data
            .get("inventory")
            .and_then(|i| i.get("interfaces"))
            .and_then(Value::as_array)
        else {
            return Ok(None);
        };
        let Some(mut all) = data.get("all_interfaces").and_then(Value::as_object).cloned() else {
            return Ok(None);
        };
        let raw = data.get("lldp_raw").and_then(Value::as_object);
        let mut changed = false;
        for iface in ifaces {
            let Some(name) = iface.get("name").and_then(Value::as_str) else {
                continue;
            };
            let tlvs = raw
                .and_then(|r| r.get(name))
                .filter(|v| truthy(Some(v)))
                .or_else(|| iface.get("lldp"))
                .filter(|v| !v.is_null());
            let Some(tlvs) = tlvs else {
                tracing::debug!(interface = name, "no LLDP data");
                continue;
            };
            let Some(tlvs) = tlvs.as_array() else {
                tracing::warn!(interface = name, "LLDP data is not a list: skipped");
                continue;
            };
            let nv = lldp_tlvs::parse(tlvs);
            if nv.is_empty() {
                continue;
            }
            match all.get_mut(name).and_then(Value::as_object_mut) {
                Some(entry) => {
                    entry.insert("lldp_processed".into(), Value::Object(nv));
                    changed = true;
                }
                None => tracing::debug!(interface = name, "not in all_interfaces: LLDP not stored"),
            }
        }
        Ok(changed.then(|| HookPatches {
            data: vec![("all_interfaces".into(), Value::Object(all))],
            ..HookPatches::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ironic::Node;
    use crate::processing::Data;
    use serde_json::json;

    #[test]
    fn lldp_processed_lands_in_all_interfaces() -> Result<(), serde_json::Error> {
        let node: Node = serde_json::from_value(json!({"uuid": "u"}))?;
        let data: Data = serde_json::from_value(json!({
            "inventory": {"interfaces": [
                {"name": "eno1", "lldp": [[1, "04885a92ec5459"], [2, "076769302f31"]]},
                {"name": "eno2", "lldp": [[5, "7377"]]},
                {"name": "eno3", "lldp": "not a list"},
                {"name": "eno4", "lldp": [[1, "04885a92ec5459"]]},
                {"name": "eno5"}]},
            "lldp_raw": {"eno2": [[5, "7377"], [4, "7570"]]},
            "all_interfaces": {"eno1": {"mac": "a"}, "eno2": {}, "eno3": {}, "eno5": {}}}))?;
        let ctx = HookContext {
            node: &node,
            ports: &[],
            data: &data,
        };
        let p = LldpBasic.before_update(&ctx).ok().flatten().unwrap_or_default();
        let all = p.data.first().map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!(
            all["eno1"],
            json!({"mac": "a", "lldp_processed": {"switch_chassis_id": "88:5a:92:ec:54:59", "switch_port_id": "gi0/1"}})
        );
        // lldp_raw wins over the inventory's lldp.
        assert_eq!(
            all["eno2"]["lldp_processed"],
            json!({"switch_system_name": "sw", "switch_port_description": "up"})
        );
        assert_eq!(all["eno3"], json!({}));
        assert!(all.get("eno4").is_none());
        assert_eq!(all["eno5"], json!({}));
        // No inventory (discoverd 1.0's payload): nothing.
        let ctx = HookContext {
            node: &node,
            ports: &[],
            data: &Data::new(),
        };
        assert!(LldpBasic.before_update(&ctx).ok().flatten().is_none());
        Ok(())
    }
}
