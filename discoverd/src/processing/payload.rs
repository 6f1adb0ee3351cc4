//! What the ramdisk posts, in either of the two shapes it comes in, turned
//! into the one flat shape the hooks read (discoverd 1.0, spec §5.1):
//! `interfaces{name: {mac, ip}}`, `cpus`, `cpu_arch`, `memory_mb`,
//! `local_gb`, `ipmi_address`, `boot_interface`, `error`.
//!
//! An ironic-python-agent payload (`inventory`, successors.md §5) gets
//! those keys *added*, its own keys kept. Where each comes from (IPA
//! 13.0 `ironic_python_agent/inspector.py` and `hardware.py`, and
//! ironic-inspector's `plugins/standard.py` for the derived values):
//! - `interfaces`: `inventory.interfaces[]` `name`, `mac_address`,
//!   `ipv4_address` (hardware.py `NetworkInterface`); LLDP is kept as-is.
//! - `cpus`: `inventory.cpu.count`; `cpu_arch`: `inventory.cpu.architecture`.
//! - `memory_mb`: `inventory.memory.physical_mb` (what flavours match;
//!   `total` is bytes of usable RAM, smaller).
//! - `local_gb`: the root disk's `size` in bytes: IPA's own `root_disk`
//!   when posted, else the smallest disk of at least 4 GiB (what IPA's
//!   `guess_root_disk` picks), in GiB, minus 1 (inspector and
//!   discoverd 1.0 both leave one GiB for partitioning).
//! - `ipmi_address`: `inventory.bmc_address` (skipped when `0.0.0.0`).
//! - `boot_interface`: top-level `boot_interface`, else
//!   `inventory.boot.pxe_interface` (pxelinux `01-aa-bb-…` form).

use crate::json::type_name;
use serde_json::{Map, Value};

/// The ramdisk's data as the hooks see and change it.
pub type Data = Map<String, Value>;

/// Smallest disk inspector considers for the root device (4 GiB).
const MIN_ROOT_DISK: u64 = 4 * 1024 * 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

/// Why a payload cannot be processed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("Invalid data: expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("Invalid data: {0}")]
    BadField(String),
}

/// Checks the top level is an object and adds the flat keys to IPA
/// payloads. 1.0 payloads pass through unchanged.
pub fn normalize(value: Value) -> Result<Data, PayloadError> {
    let mut data = match value {
        Value::Object(m) => m,
        other => return Err(PayloadError::NotAnObject(type_name(&other))),
    };
    let added = match data.get("inventory") {
        None => return Ok(data),
        Some(inventory) => flat_keys(inventory, data.get("root_disk"))?,
    };
    // The ramdisk's own top-level keys win (1.0 payloads carry them).
    for (key, value) in added {
        data.entry(key).or_insert(value);
    }
    Ok(data)
}

/// The flat keys an IPA inventory gives, read without copying it.
fn flat_keys(
    inventory: &Value,
    root_disk: Option<&Value>,
) -> Result<Vec<(&'static str, Value)>, PayloadError> {
    let inv = inventory.as_object().ok_or_else(|| {
        PayloadError::BadField(format!(
            "inventory must be an object, got {}",
            type_name(inventory)
        ))
    })?;
    let mut added = Vec::with_capacity(7);
    if let Some(list) = inv.get("interfaces") {
        let list = list
            .as_array()
            .ok_or_else(|| PayloadError::BadField("inventory.interfaces must be a list".into()))?;
        let mut interfaces = Map::new();
        for (i, iface) in list.iter().enumerate() {
            let name = iface
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("iface{i}"), str::to_owned);
            let mut flat = Map::new();
            flat.insert(
                "mac".into(),
                iface.get("mac_address").cloned().unwrap_or(Value::Null),
            );
            flat.insert(
                "ip".into(),
                iface.get("ipv4_address").cloned().unwrap_or(Value::Null),
            );
            if let Some(lldp) = iface.get("lldp") {
                flat.insert("lldp".into(), lldp.clone());
            }
            interfaces.insert(name, Value::Object(flat));
        }
        added.push(("interfaces", Value::Object(interfaces)));
    }
    if let Some(cpu) = inv.get("cpu") {
        if let Some(count) = cpu.get("count") {
            added.push(("cpus", count.clone()));
        }
        if let Some(arch) = cpu.get("architecture") {
            added.push(("cpu_arch", arch.clone()));
        }
    }
    if let Some(mb) = inv.get("memory").and_then(|m| m.get("physical_mb")) {
        added.push(("memory_mb", mb.clone()));
    }
    let root_size = root_disk
        .and_then(|d| d.get("size"))
        .and_then(Value::as_u64)
        .or_else(|| {
            inv.get("disks")?
                .as_array()?
                .iter()
                .filter_map(|d| d.get("size").and_then(Value::as_u64))
                .filter(|s| *s >= MIN_ROOT_DISK)
                .min()
        });
    if let Some(size) = root_size {
        added.push(("local_gb", Value::from((size / GIB).saturating_sub(1))));
    }
    if let Some(bmc) = inv
        .get("bmc_address")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty() && *b != "0.0.0.0")
    {
        added.push(("ipmi_address", Value::from(bmc)));
    }
    if let Some(pxe) = inv.get("boot").and_then(|b| b.get("pxe_interface")) {
        added.push(("boot_interface", pxe.clone()));
    }
    Ok(added)
}

/// Python truthiness, which 1.0's checks use: 0, "", null, [], {} and
/// false count as absent.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The lookup attributes (spec §5.2 step 3): `ipmi_address` and the
/// `macs` that `validate_interfaces` produced, original case kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAttrs {
    pub bmc_address: Option<String>,
    pub macs: Vec<String>,
}

pub fn lookup_attributes(data: &Data) -> LookupAttrs {
    LookupAttrs {
        bmc_address: data
            .get("ipmi_address")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        macs: data
            .get("macs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// ironic-python-agent 13.0's payload shape (successors.md §5), trimmed.
    pub fn ipa_payload() -> Value {
        json!({
            "inventory": {
                "interfaces": [
                    {"name": "eno1", "mac_address": "3c:fd:fe:9c:87:60", "ipv4_address": "192.168.24.51",
                     "ipv6_address": "fe80::3efd:feff:fe9c:8760%eno1", "has_carrier": true,
                     "lldp": [[1, "04a4bf0164866f"]], "vendor": "0x8086", "product": "0x1572",
                     "client_id": null, "biosdevname": "em1", "speed_mbps": 10000},
                    {"name": "eno2", "mac_address": "3c:fd:fe:9c:87:61", "ipv4_address": null, "has_carrier": false}
                ],
                "cpu": {"model_name": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "frequency": "2100.0000",
                        "count": 80, "architecture": "x86_64", "flags": ["fpu", "vmx"]},
                "disks": [
                    {"name": "/dev/sdb", "size": 1_000_000_000u64, "rotational": false},
                    {"name": "/dev/sda", "size": 479_559_942_144u64, "rotational": false}
                ],
                "memory": {"total": 404_008_034_304u64, "physical_mb": 393_216},
                "bmc_address": "10.10.0.21", "bmc_v6address": "::/0",
                "system_vendor": {"product_name": "PowerEdge R640", "serial_number": "7XYZ123", "manufacturer": "Dell Inc."},
                "boot": {"current_boot_mode": "uefi", "pxe_interface": "01-3c-fd-fe-9c-87-60"},
                "hostname": "localhost.localdomain"
            },
            "boot_interface": "01-3c-fd-fe-9c-87-60",
            "configuration": {"collectors": ["default", "logs"], "managers": []},
            "error": null,
            "logs": "H4sIAAAAAAAA"
        })
    }

    #[test]
    fn ipa_payload_gains_the_flat_keys() -> Result<(), PayloadError> {
        let d = normalize(ipa_payload())?;
        assert_eq!(d["cpus"], json!(80));
        assert_eq!(d["cpu_arch"], json!("x86_64"));
        assert_eq!(d["memory_mb"], json!(393_216));
        // /dev/sdb is under 4 GiB, so /dev/sda: 446 GiB - 1.
        assert_eq!(d["local_gb"], json!(445));
        assert_eq!(d["ipmi_address"], json!("10.10.0.21"));
        assert_eq!(d["interfaces"]["eno1"]["mac"], json!("3c:fd:fe:9c:87:60"));
        assert_eq!(d["interfaces"]["eno2"]["ip"], Value::Null);
        assert!(d.contains_key("inventory"), "originals are kept");
        Ok(())
    }

    #[test]
    fn without_root_disk_the_smallest_disk_of_4_gib_or_more_is_chosen() -> Result<(), PayloadError> {
        let mut p = ipa_payload();
        p["inventory"]["disks"] = json!([
            {"name": "/dev/sda", "size": 2000u64 * GIB},
            {"name": "/dev/sdb", "size": 2u64 * GIB},
            {"name": "/dev/sdc", "size": 100u64 * GIB}
        ]);
        assert_eq!(normalize(p)?["local_gb"], json!(99));
        Ok(())
    }

    #[test]
    fn root_disk_wins_when_posted() -> Result<(), PayloadError> {
        let mut p = ipa_payload();
        p["root_disk"] = json!({"name": "/dev/sdc", "size": 10u64 * GIB});
        assert_eq!(normalize(p)?["local_gb"], json!(9));
        Ok(())
    }

    #[test]
    fn non_objects_and_bad_inventory_are_typed_errors() {
        assert_eq!(normalize(json!([1])), Err(PayloadError::NotAnObject("list")));
        assert_eq!(normalize(json!("x")), Err(PayloadError::NotAnObject("string")));
        assert!(matches!(
            normalize(json!({"inventory": 5})),
            Err(PayloadError::BadField(_))
        ));
        assert!(matches!(
            normalize(json!({"inventory": {"interfaces": {}}})),
            Err(PayloadError::BadField(_))
        ));
    }

    #[test]
    fn truthiness_is_pythons() {
        for v in [
            json!(0),
            json!(""),
            json!(null),
            json!([]),
            json!({}),
            json!(false),
            json!(0.0),
        ] {
            assert!(!truthy(Some(&v)), "{v}");
        }
        for v in [json!(1), json!("0"), json!([0]), json!(true)] {
            assert!(truthy(Some(&v)), "{v}");
        }
        assert!(!truthy(None));
    }
}
