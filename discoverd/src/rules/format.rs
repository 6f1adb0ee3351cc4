//! `{data[inventory][bmc_address]}` in action values: the part of
//! Python's `str.format(data=…)` that rules use. A replacement field is
//! `data` followed by `[key]` lookups (a key of digits indexes a list, as
//! Python does); `{{` and `}}` are literal braces. The value is written as
//! Python's `str()` would (`True`, `None`, `['a', 'b']`, `{'k': 1}`).
//!
//! Checked at creation ([`check`]): a field that is not `data[...]`, a
//! conversion (`!r`) or a format spec (`:>10`) is refused then; a key the
//! data lacks is an error when the rule runs, as in ironic-inspector.

use serde_json::Value;

/// Why a template cannot be formatted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("Invalid format string {template:?}: {reason}")]
    Syntax { template: String, reason: String },
    #[error("Invalid formatting variable key provided in value {template:?}: {key}")]
    Key { template: String, key: String },
}

enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Field(Vec<&'a str>),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, FormatError> {
    let bad = |reason: &str| FormatError::Syntax {
        template: template.to_owned(),
        reason: reason.to_owned(),
    };
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let Some(i) = rest.find(['{', '}']) else {
            out.push(Piece::Text(rest));
            break;
        };
        out.push(Piece::Text(&rest[..i]));
        let c = rest.as_bytes()[i];
        rest = &rest[i..];
        if c == b'}' {
            if !rest.starts_with("}}") {
                return Err(bad("single '}' encountered"));
            }
            out.push(Piece::Brace('}'));
            rest = &rest[2..];
            continue;
        }
        if rest.starts_with("{{") {
            out.push(Piece::Brace('{'));
            rest = &rest[2..];
            continue;
        }
        let end = rest
            .find('}')
            .ok_or_else(|| bad("expected '}' before end of string"))?;
        let field = &rest[1..end];
        rest = &rest[end + 1..];
        let Some(mut keys) = field.strip_prefix("data") else {
            return Err(bad(&format!(
                "only {{data[...]}} fields are known, not {{{field}}}"
            )));
        };
        let mut path = Vec::new();
        while !keys.is_empty() {
            let inner = keys
                .strip_prefix('[')
                .and_then(|k| k.split_once(']'))
                .filter(|(k, _)| !k.is_empty() && !k.contains('{'))
                .ok_or_else(|| bad(&format!("field {{{field}}} is not data[key][key]...")))?;
            path.push(inner.0);
            keys = inner.1;
        }
        out.push(Piece::Field(path));
    }
    Ok(out)
}

/// Checks the syntax of every string in `value` (keys included).
pub fn check(value: &Value) -> Result<(), FormatError> {
    match value {
        Value::String(s) => pieces(s).map(drop),
        Value::Array(a) => a.iter().try_for_each(check),
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            pieces(k)?;
            check(v)
        }),
        _ => Ok(()),
    }
}

fn lookup<'v>(data: &'v Value, key: &str) -> Option<&'v Value> {
    match data {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }
}

/// Formats one string.
pub fn format_str(template: &str, data: &Value) -> Result<String, FormatError> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(c) => out.push(c),
            Piece::Field(keys) => {
                let mut v = data;
                for k in keys {
                    v = lookup(v, k).ok_or_else(|| FormatError::Key {
                        template: template.to_owned(),
                        key: format!("'{k}'"),
                    })?;
                }
                py_str(v, &mut out);
            }
        }
    }
    Ok(out)
}

/// Formats every string in `value`, keys of objects included.
pub fn format_value(value: &Value, data: &Value) -> Result<Value, FormatError> {
    Ok(match value {
        Value::String(s) => Value::String(format_str(s, data)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| format_value(v, data))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((format_str(k, data)?, format_value(v, data)?)))
                .collect::<Result<_, FormatError>>()?,
        ),
        other => other.clone(),
    })
}

/// Python's `str()` of a JSON value.
pub fn py_str(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        other => py_repr(other, out),
    }
}

fn py_repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 => {
                out.push_str(&format!("{f:.1}"));
            }
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => {
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            out.push(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&Value::String(k.clone()), out);
                out.push_str(": ");
                py_repr(x, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_python() -> Result<(), FormatError> {
        let d = json!({"inventory": {"bmc_address": "1.2.3.4", "disks": [{"name": "/dev/sda"}]},
                       "n": 3, "f": 2.0, "t": true, "z": null, "l": ["a", 1], "o": {"k": "it's"}});
        let f = |s: &str| format_str(s, &d);
        assert_eq!(f("ipmi {data[inventory][bmc_address]}")?, "ipmi 1.2.3.4");
        assert_eq!(f("{data[inventory][disks][0][name]}")?, "/dev/sda");
        assert_eq!(
            f("{{x}} {data[n]} {data[f]} {data[t]} {data[z]}")?,
            "{x} 3 2.0 True None"
        );
        assert_eq!(f("{data[l]} {data[o]}")?, "['a', 1] {'k': \"it's\"}");
        assert!(matches!(f("{data[nope]}"), Err(FormatError::Key { .. })));
        assert!(matches!(f("{data[n][x]}"), Err(FormatError::Key { .. })));
        let v = format_value(&json!({"{data[n]}": ["{data[t]}", 5, {"x": "{data[z]}"}]}), &d)?;
        assert_eq!(v, json!({"3": ["True", 5, {"x": "None"}]}));
        Ok(())
    }

    #[test]
    fn syntax_is_checked_before_data_is_seen() {
        for bad in [
            "{",
            "}",
            "{x}",
            "{}",
            "{0}",
            "{data.x}",
            "{data[a]!r}",
            "{data[a]:>4}",
            "{data[]}",
            "a{data[b]",
        ] {
            assert!(check(&json!(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(check(&json!({"ok": ["{data[a][0]}", "{{}}"]})).is_ok());
        assert!(check(&json!({"{bad}": 1})).is_err());
    }
}
