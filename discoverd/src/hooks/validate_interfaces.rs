//! `validate_interfaces` (1.0): keeps the interfaces with a valid MAC and
//! an IP address (all of them with `ports_for_inactive_interfaces`), and
//! lists their MACs under `macs`, the lookup attribute.

use serde_json::Value;

use super::{HookError, ProcessingHook};
use crate::processing::payload::{Data, truthy};

#[derive(Debug)]
pub(super) struct ValidateInterfaces {
    pub compat: bool,
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
        let mut compat = self.compat;
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
            compat = true;
        }
        let Some(interfaces) = data.get("interfaces").and_then(Value::as_object) else {
            return Err(HookError("Invalid data: interfaces must be an object".into()));
        };
        let mut valid = serde_json::Map::new();
        let mut macs = Vec::new();
        for (name, iface) in interfaces {
            let mac = iface.get("mac").and_then(Value::as_str);
            let ip_ok = compat || truthy(iface.get("ip"));
            match mac {
                Some(m) if valid_mac(m) && ip_ok => {
                    macs.push(Value::from(m));
                    valid.insert(name.clone(), iface.clone());
                }
                _ => tracing::debug!(interface = %name, "excluding interface: invalid MAC or no IP address"),
            }
        }
        data.insert("interfaces".into(), Value::Object(valid));
        data.insert("macs".into(), Value::Array(macs));
        Ok(())
    }
}
