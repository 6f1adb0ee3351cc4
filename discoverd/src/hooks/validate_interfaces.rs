//! `validate_interfaces` (1.0, with ironic-inspector's `add_ports`):
//! keeps the interfaces with a valid MAC that `add_ports` chooses (1.0:
//! those with an IP address, all of them with
//! `ports_for_inactive_interfaces`), marks the one the node PXE-booted
//! from (`pxe`), lists every valid one under `all_interfaces` and the
//! chosen ones' MACs under `macs`, the lookup attribute. `lo` and
//! loopback addresses are never chosen. The port changes the options call
//! for are planned in `port_options.rs`.

use serde_json::Value;

use super::port_options::AddPorts;
use super::{HookError, ProcessingHook};
use crate::processing::payload::{Data, truthy};

#[derive(Debug)]
pub(super) struct ValidateInterfaces {
    pub add_ports: AddPorts,
}

/// The MAC of `boot_interface` (pxelinux `01-aa-bb-…` or plain), lower-case.
fn pxe_mac(data: &Data) -> Option<String> {
    let b = data.get("boot_interface")?.as_str()?;
    let mac = match b.split_once('-') {
        Some((_, rest)) => rest.replace('-', ":"),
        None => b.to_owned(),
    };
    Some(mac.to_ascii_lowercase()).filter(|m| !m.is_empty())
}

fn is_loopback(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn valid_mac(m: &str) -> bool {
    let lower = m.to_ascii_lowercase();
    let b = lower.as_bytes();
    b.len() == 17
        && b.iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl ProcessingHook for ValidateInterfaces {
    fn name(&self) -> &'static str {
        "validate_interfaces"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        let mut add_ports = self.add_ports;
        if !data.contains_key("interfaces") {
            let Some(macs) = data.get("macs").and_then(Value::as_array).cloned() else {
                // 1.0 died with a KeyError (500) here; a clear 400 is better.
                return Err(HookError(
                    "Invalid data: neither interfaces nor macs were reported".into(),
                ));
            };
            tracing::warn!("ramdisk sent the deprecated 'macs' list instead of 'interfaces'");
            let built: serde_json::Map<String, Value> = macs
                .into_iter()
                .enumerate()
                .map(|(i, m)| (format!("dummy{i}"), serde_json::json!({"mac": m})))
                .collect();
            data.insert("interfaces".into(), Value::Object(built));
            add_ports = AddPorts::All;
        }
        let pxe_mac = pxe_mac(data);
        let Some(interfaces) = data.get("interfaces").and_then(Value::as_object) else {
            return Err(HookError("Invalid data: interfaces must be an object".into()));
        };
        let mut all = serde_json::Map::new();
        let mut valid = serde_json::Map::new();
        let mut macs = Vec::new();
        for (name, iface) in interfaces {
            let Some(m) = iface.get("mac").and_then(Value::as_str).filter(|m| valid_mac(m)) else {
                tracing::debug!(interface = %name, "excluding interface: no valid MAC");
                continue;
            };
            let mut iface = iface.clone();
            let pxe = pxe_mac.as_deref().is_none_or(|p| p.eq_ignore_ascii_case(m));
            iface["pxe"] = Value::Bool(pxe);
            all.insert(name.clone(), iface.clone());
            let ip = iface.get("ip");
            let local = name == "lo" || ip.and_then(Value::as_str).is_some_and(is_loopback);
            let not_pxe = add_ports == AddPorts::Pxe && pxe_mac.is_some() && !pxe;
            let chosen = !local && !not_pxe && (add_ports == AddPorts::All || truthy(ip));
            if chosen {
                macs.push(Value::from(m));
                valid.insert(name.clone(), iface);
            } else {
                tracing::debug!(interface = %name, "interface not chosen: no IP address, or not the PXE one");
            }
        }
        data.insert("all_interfaces".into(), Value::Object(all));
        data.insert("interfaces".into(), Value::Object(valid));
        data.insert("macs".into(), Value::Array(macs));
        Ok(())
    }
}
