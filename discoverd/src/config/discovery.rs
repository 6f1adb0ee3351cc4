//! Auto-discovery, as ironic-inspector has it: `[processing]
//! node_not_found_hook` (empty: a report no node matches is refused;
//! `enroll`: the node is created in Ironic and introspected) and the
//! `[discovery]` options of the `enroll` hook, `enroll_node_driver` and
//! `enroll_node_fields` (an oslo `DictOpt`: `key:value,...`). A bad value
//! stops start-up with the section, option and value named.

use common::ini::{ConfigError, IniFile};
use serde_json::{Map, Value};

/// ironic-inspector's `[discovery] enroll_node_driver` default.
pub const DEFAULT_ENROLL_DRIVER: &str = "fake-hardware";

/// Most `enroll_node_fields` entries.
const MAX_FIELDS: usize = 100;

/// Fields the enrolment sets itself; `enroll_node_fields` may not.
const RESERVED_FIELDS: &[&str] = &["uuid", "driver", "driver_info", "extra", "provision_state"];

/// The `[discovery]` options, in force only with `node_not_found_hook = enroll`.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    pub enroll_node_driver: String,
    /// Extra node fields (strings, as oslo reads a `DictOpt`).
    pub enroll_node_fields: Map<String, Value>,
}

/// Reads `[processing] node_not_found_hook` and `[discovery]`; `None`
/// when the hook is not set (auto-discovery off).
pub fn read(file: &IniFile) -> Result<Option<Discovery>, ConfigError> {
    let p = file.section("processing");
    let hook = p.raw("node_not_found_hook").unwrap_or("");
    let enabled = match hook {
        "" => false,
        "enroll" => true,
        other => {
            return Err(p.bad_value(
                "node_not_found_hook",
                other,
                "unknown hook; the one known value is enroll (or leave it empty)",
            ));
        }
    };
    let d = file.section("discovery");
    let driver = d.string_or("enroll_node_driver", DEFAULT_ENROLL_DRIVER);
    let raw = d.raw("enroll_node_fields").unwrap_or("");
    let mut fields = Map::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: String| d.bad_value("enroll_node_fields", raw, why);
        let (k, v) = entry
            .split_once(':')
            .ok_or_else(|| bad(format!("{entry:?} is not key:value")))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(bad(format!("{entry:?} has an empty key")));
        }
        if RESERVED_FIELDS.contains(&k) {
            return Err(bad(format!("{k} is set by the enrolment itself")));
        }
        if fields.insert(k.to_owned(), Value::from(v)).is_some() {
            return Err(bad(format!("{k} is given twice")));
        }
    }
    if fields.len() > MAX_FIELDS {
        return Err(d.bad_value(
            "enroll_node_fields",
            raw,
            format!("more than {MAX_FIELDS} fields"),
        ));
    }
    d.reject_unknown(&[])?;
    Ok(enabled.then_some(Discovery {
        enroll_node_driver: driver,
        enroll_node_fields: fields,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(text: &str) -> Result<Option<Discovery>, ConfigError> {
        read(&IniFile::parse(Path::new("d.conf"), text)?)
    }

    #[test]
    fn off_unless_the_hook_is_enroll() -> Result<(), ConfigError> {
        assert_eq!(load("[discoverd]\n")?, None);
        assert_eq!(load("[processing]\nnode_not_found_hook =\n")?, None);
        let d = load("[processing]\nnode_not_found_hook = enroll\n")?;
        assert_eq!(
            d,
            Some(Discovery {
                enroll_node_driver: "fake-hardware".into(),
                enroll_node_fields: Map::new()
            })
        );
        Ok(())
    }

    #[test]
    fn fields_read_as_an_oslo_dict() -> Result<(), ConfigError> {
        let d = load(
            "[processing]\nnode_not_found_hook = enroll\n[discovery]\nenroll_node_driver = ipmi\n\
             enroll_node_fields = resource_class: baremetal , name:x:y\n",
        )?
        .ok_or_else(|| ConfigError::Missing {
            path: "d.conf".into(),
            section: "processing".into(),
            option: "node_not_found_hook".into(),
        })?;
        assert_eq!(d.enroll_node_driver, "ipmi");
        assert_eq!(d.enroll_node_fields["resource_class"], "baremetal");
        assert_eq!(d.enroll_node_fields["name"], "x:y");
        Ok(())
    }

    #[test]
    fn bad_values_name_section_option_and_value() {
        let e = load("[processing]\nnode_not_found_hook = example\n").map(|_| ());
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("[processing]") && msg.contains("node_not_found_hook"),
            "{msg}"
        );
        assert!(msg.contains("example") && msg.contains("enroll"), "{msg}");
        for fields in ["novalue", ":x", "driver:ipmi", "a:1,a:2"] {
            let e = load(&format!("[discovery]\nenroll_node_fields = {fields}\n")).map(|_| ());
            let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains("enroll_node_fields"), "{fields}: {msg}");
        }
        assert!(load("[discovery]\nenroll_node_driverx = a\n").is_err());
    }
}
