//! `extra_hardware` (ironic-inspector `plugins/extra_hardware.py`): the
//! ramdisk's `data`, a list of eDeploy `[category, item, key, value]`
//! lists (IPA's `extra-hardware` collector), becomes the nested object
//! `extra[category][item][key] = value` (a value that Python's `int()`
//! reads becomes a number) for the rules and the stored data, and `data`
//! is removed. Not such a list: a warning, and `data` is kept (removed
//! with `[extra_hardware] strict`, which also requires every entry to have
//! exactly four parts). An entry the inspector cannot use (an unhashable
//! part, too few parts) is skipped as the inspector skips it, keeping the
//! levels it had already made. Done before lookup (the inspector does it
//! just before the update; the rules and stored data see the same).

use serde_json::{Map, Value};

use super::{HookError, ProcessingHook};
use crate::processing::payload::Data;

#[derive(Debug)]
pub(super) struct ExtraHardware {
    pub strict: bool,
}

/// A part used as a dictionary key, as `json.dumps` writes a Python
/// dict's key; `None` for one Python cannot hash (list, object).
fn key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Python's `int(v)`, or `v` unchanged when that raises.
fn py_int(v: &Value) -> Value {
    let int = match v {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i),
            // int(2.7) == 2; beyond i64 (and u64) kept as it came.
            (None, Some(f)) if f.is_finite() && f.abs() < 9.2e18 => Some(f.trunc() as i64),
            _ => None,
        },
        Value::String(s) => parse_py_int(s),
        _ => None,
    };
    int.map_or_else(|| v.clone(), Value::from)
}

/// `int(str)`: surrounding whitespace, a sign, decimal digits with single
/// underscores between them.
fn parse_py_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !ok {
        return None;
    }
    t.replace('_', "").parse().ok()
}

fn object(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// The nested object from eDeploy entries.
fn convert(entries: &[Value]) -> Value {
    let mut out = Map::new();
    for entry in entries {
        let Some(parts) = entry.as_array().filter(|p| !p.is_empty()) else {
            continue;
        };
        // The same steps as the inspector, each able to stop the entry.
        let Some(k0) = key(&parts[0]) else {
            tracing::warn!("ignoring invalid extra data item {entry}");
            continue;
        };
        let level0 = out.entry(k0).or_insert_with(|| Value::Object(Map::new()));
        let Some(k1) = parts.get(1).and_then(key) else {
            tracing::warn!("ignoring invalid extra data item {entry}");
            continue;
        };
        let Some(level1) = object(level0).map(|l| l.entry(k1).or_insert_with(|| Value::Object(Map::new())))
        else {
            continue;
        };
        let (Some(value), Some(k2)) = (parts.get(3), parts.get(2).and_then(key)) else {
            tracing::warn!("ignoring invalid extra data item {entry}");
            continue;
        };
        if let Some(l) = object(level1) {
            l.insert(k2, py_int(value));
        }
    }
    Value::Object(out)
}

impl ProcessingHook for ExtraHardware {
    fn name(&self) -> &'static str {
        "extra_hardware"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        let Some(raw) = data.get("data") else {
            tracing::debug!("no extra hardware information was received from the ramdisk");
            return Ok(());
        };
        let entries = raw.as_array().filter(|entries| {
            entries
                .iter()
                .all(|e| e.as_array().is_some_and(|p| !self.strict || p.len() == 4))
        });
        let Some(entries) = entries else {
            tracing::warn!("extra hardware data is not in the eDeploy format; not given to the rules");
            if self.strict {
                data.remove("data");
            }
            return Ok(());
        };
        let extra = convert(entries);
        data.insert("extra".into(), extra);
        data.remove("data");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(strict: bool, d: Value) -> Value {
        let mut d: Data = serde_json::from_value(d).unwrap_or_default();
        let r = ExtraHardware { strict }.before_processing(&mut d);
        assert!(r.is_ok());
        Value::Object(d)
    }

    /// Expected values from ironic-inspector 12.5's hook run on the same
    /// input.
    #[test]
    fn edeploy_entries_become_the_inspectors_nested_object() {
        let d = json!({"data": [
            ["cpu", "logical", "number", "16"], ["cpu", "physical_0", "flags", "fpu vme"],
            ["memory", "total", "size", "68719476736"], ["disk", "sda", "size", " 500 "],
            ["net", "eno1", "speed", "1_000"], ["x", "y", "float", 2.7], ["x", "y", "bool", true],
            ["x", "y", "hex", "0x10"], ["x", "y", "dec", "1.5"], ["x", 1, null, "a"],
            [], ["short"], ["a", "b"], [["unhashable"], "b", "c", "d"], ["cpu", "logical", "number", "8", "extra"]
        ], "cpus": 4});
        assert_eq!(
            run(false, d.clone()),
            json!({"cpus": 4, "extra": {
                "cpu": {"logical": {"number": 8}, "physical_0": {"flags": "fpu vme"}},
                "memory": {"total": {"size": 68_719_476_736_i64}},
                "disk": {"sda": {"size": 500}},
                "net": {"eno1": {"speed": 1000}},
                "x": {"y": {"float": 2, "bool": 1, "hex": "0x10", "dec": "1.5"}, "1": {"null": "a"}},
                "short": {},
                "a": {"b": {}}
            }})
        );
        // Strict: an entry of the wrong length drops all of `data`.
        assert_eq!(run(true, d), json!({"cpus": 4}));
        let ok = json!({"data": [["a", "b", "c", "1"]]});
        assert_eq!(run(true, ok), json!({"extra": {"a": {"b": {"c": 1}}}}));
        // Not eDeploy: kept (dropped when strict); no `data`: nothing.
        assert_eq!(run(false, json!({"data": {"a": 1}})), json!({"data": {"a": 1}}));
        assert_eq!(run(false, json!({"data": ["a"]})), json!({"data": ["a"]}));
        assert_eq!(run(true, json!({"data": "x"})), json!({}));
        assert_eq!(run(false, json!({"cpus": 1})), json!({"cpus": 1}));
    }
}
