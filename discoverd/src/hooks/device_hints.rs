//! Ironic's root device hints (`properties.root_device`,
//! `properties.skip_block_devices`) evaluated as ironic-inspector 12.5 does
//! (`common/device_hints.py`, ironic-lib's code over oslo.utils'
//! `specs_matcher`), so the same hints pick the same disk.
//!
//! What that means, in short:
//! - String hints (`model`, `vendor`, `serial`, `wwn*`, `name`, `hctl`,
//!   `by_path`) are lower-cased and URL-quoted, on both sides, and compared
//!   with `s==` (the default), `s!=`, `s<`, `s<=`, `s>`, `s>=`, `<in>`
//!   (substring) or `<or>` (any of); numeric operators compare them as
//!   numbers.
//! - `size` is in GiB against the disk's bytes / 2^30 (a fraction): `==`
//!   (the default), `!=`, `<`, `<=`, `>`, `>=`, and `=` which means `>=`.
//!   Every value must be a positive integer. `<or>` never matches a size
//!   and `s==` neither (the inspector compares a number with a string).
//! - `rotational` is a boolean (`true/false/1/0/yes/no/on/off/t/f/y/n`);
//!   a disk whose own value is not one is skipped.
//! - A disk with an empty string attribute is skipped; a missing string
//!   attribute reads as `"none"` (the inspector's `str(None)`).
//! - `<all-in>` and `<range-in>` fail, as they fail in the inspector.
//!
//! The hints are applied in the order of their names (the inspector: the
//! node's key order); that changes only which error is reported when a
//! disk both fails one hint and makes another one fail.

use serde_json::{Map, Value};

const GIB: f64 = 1_073_741_824.0;

/// Why hints could not be evaluated: the inspector's `ValueError` and
/// `TypeError`, and its uncaught parse failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HintError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// The hints Ironic knows and their types, in the inspector's order.
const HINTS: [(&str, Kind); 11] = [
    ("size", Kind::Int),
    ("model", Kind::Str),
    ("wwn", Kind::Str),
    ("serial", Kind::Str),
    ("vendor", Kind::Str),
    ("wwn_with_extension", Kind::Str),
    ("wwn_vendor_extension", Kind::Str),
    ("name", Kind::Str),
    ("rotational", Kind::Bool),
    ("hctl", Kind::Str),
    ("by_path", Kind::Str),
];

/// Unary operators, in the order the grammar tries them.
const UNARY: [&str; 14] = [
    "==", "=", "!=", "<in>", ">=", "<=", ">", "<", "s==", "s!=", "s<=", "s<", "s>=", "s>",
];
const OTHER_KEYWORDS: [&str; 3] = ["<all-in>", "<or>", "<range-in>"];

fn err(s: impl Into<String>) -> HintError {
    HintError(s.into())
}

/// Python's `str()` of a JSON value, as the inspector applies it.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

// --- the specs_matcher grammar ---

fn skip_ws(s: &str, i: usize) -> usize {
    i + s[i..].len() - s[i..].trim_start_matches([' ', '\t', '\n', '\r']).len()
}

fn literal(s: &str, i: usize, lit: &str) -> Option<usize> {
    let j = skip_ws(s, i);
    s[j..].starts_with(lit).then_some(j + lit.len())
}

/// Any run of non-blanks that does not start with an operator.
fn atom(s: &str, i: usize) -> Option<(String, usize)> {
    let j = skip_ws(s, i);
    let rest = &s[j..];
    if UNARY.iter().chain(&OTHER_KEYWORDS).any(|k| rest.starts_with(k)) {
        return None;
    }
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    (end > 0).then(|| (rest[..end].to_owned(), j + end))
}

/// The tokens `specs_matcher` parses from the start of `s` (the operator
/// first), or `None` where pyparsing raises.
fn tokens(s: &str) -> Option<Vec<String>> {
    let mut ors = Vec::new();
    let mut i = 0;
    while let Some((a, k)) = literal(s, i, "<or>").and_then(|j| atom(s, j)) {
        ors.push(a);
        i = k;
    }
    if !ors.is_empty() {
        ors.insert(0, "<or>".into());
        return Some(ors);
    }
    if let Some(mut j) = literal(s, 0, "<all-in>") {
        let mut out = vec!["<all-in>".to_owned()];
        while let Some((a, k)) = atom(s, j) {
            out.push(a);
            j = k;
        }
        if out.len() > 1 {
            return Some(out);
        }
    }
    if let Some(mut j) = literal(s, 0, "<range-in>") {
        let mut out = vec!["<range-in>".to_owned()];
        while out.len() < 5 {
            let Some((a, k)) = atom(s, j) else { break };
            out.push(a);
            j = k;
        }
        if out.len() == 5 {
            return Some(out);
        }
    }
    let j = skip_ws(s, 0);
    if let Some(op) = UNARY.iter().find(|op| s[j..].starts_with(**op))
        && let Some((a, _)) = atom(s, j + op.len())
    {
        return Some(vec![(*op).to_owned(), a]);
    }
    atom(s, 0).map(|(a, _)| vec![a])
}

/// `urllib.parse.quote` with its default safe `/`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The operator (`""` for none) and the values of an expression.
fn op_and_values(expression: &str, name: &str) -> Result<(String, Vec<String>), HintError> {
    let expr = expression.trim().to_lowercase();
    if expr.is_empty() {
        return Err(err(format!("Root device hint \"{name}\" expression is empty")));
    }
    let ast = tokens(&expr)
        .ok_or_else(|| err(format!("Root device hint \"{name}\" cannot be parsed: {expr:?}")))?;
    if ast.len() <= 1 {
        return Ok((String::new(), vec![expr]));
    }
    let op = ast[0].clone();
    let values = expr
        .split(op.as_str())
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().to_owned())
        .collect();
    Ok((op, values))
}

/// Lower-cased, URL-quoted values joined by their operator.
fn normalize(expression: &str, name: &str) -> Result<String, HintError> {
    let (op, values) = op_and_values(expression, name)?;
    let quoted: Vec<String> = values.iter().map(|v| format!(" {} ", quote(v))).collect();
    Ok(format!("{op}{}", quoted.join(&op)).trim().to_owned())
}

/// `oslo_utils.strutils.bool_from_string(strict=True)`.
fn py_bool(v: &Value) -> Option<bool> {
    if let Value::Bool(b) = v {
        return Some(*b);
    }
    match py_str(v).trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// One parsed hint.
#[derive(Debug, Clone, PartialEq)]
enum Hint {
    /// A `specs_matcher` expression, for strings (normalized) and sizes.
    Spec(String),
    Bool(bool),
}

/// Parsed hints, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Hints(Vec<(String, Kind, Hint)>);

/// Parses and checks a node's hints; `None` when there are none (Python
/// falsy: absent, `null`, `{}`, `""`).
pub fn parse(hints: &Value) -> Result<Option<Hints>, HintError> {
    let map: &Map<String, Value> = match hints {
        Value::Null => return Ok(None),
        Value::Object(m) if m.is_empty() => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::Object(m) => m,
        other => {
            return Err(err(format!(
                "Root device hints must be an object, got {}",
                crate::json::type_name(other)
            )));
        }
    };
    let invalid: Vec<&str> = map
        .keys()
        .filter(|k| !HINTS.iter().any(|(n, _)| n == k))
        .map(String::as_str)
        .collect();
    if !invalid.is_empty() {
        let valid: Vec<&str> = HINTS.iter().map(|(n, _)| *n).collect();
        return Err(err(format!(
            "The hints \"{}\" are invalid. Valid hints are: \"{}\"",
            invalid.join(", "),
            valid.join(", ")
        )));
    }
    let mut out = Vec::new();
    for (name, expression) in map {
        let kind = HINTS
            .iter()
            .find(|(n, _)| n == name)
            .map_or(Kind::Str, |(_, k)| *k);
        let hint = match kind {
            Kind::Str => {
                let Value::String(s) = expression else {
                    return Err(err(format!(
                        "Root device hint \"{name}\" is not a string value. Hint expression: {}",
                        py_str(expression)
                    )));
                };
                let norm = normalize(s, name)?;
                match tokens(&norm) {
                    Some(t) if t.len() > 1 => Hint::Spec(norm),
                    _ => Hint::Spec(format!("s== {norm}")),
                }
            }
            Kind::Int => {
                let text = py_str(expression);
                for v in op_and_values(&text, name)?.1 {
                    let n: i64 = v.parse().map_err(|_| {
                        err(format!(
                            "Root device hint \"{name}\" is not an integer value. Current value: {text}"
                        ))
                    })?;
                    if n <= 0 {
                        return Err(err(format!(
                            "Root device hint \"{name}\" should be a positive integer. Current value: {text}"
                        )));
                    }
                }
                match tokens(&text) {
                    Some(t) if t.len() > 1 => Hint::Spec(text),
                    _ => Hint::Spec(format!("== {text}")),
                }
            }
            Kind::Bool => Hint::Bool(py_bool(expression).ok_or_else(|| {
                err(format!(
                    "Root device hint \"{name}\" is not a Boolean value. Current value: {}",
                    py_str(expression)
                ))
            })?),
        };
        out.push((name.clone(), kind, hint));
    }
    Ok(Some(Hints(out)))
}

/// A disk's attribute as `specs_matcher` compares it.
enum Cmp {
    Str(String),
    Num(f64),
}

fn py_float(s: &str) -> Result<f64, HintError> {
    s.trim()
        .parse()
        .map_err(|_| err(format!("could not convert string to float: '{s}'")))
}

/// `specs_matcher.match(value, spec)`.
fn spec_match(value: &Cmp, spec: &str) -> Result<bool, HintError> {
    let tree = tokens(spec).unwrap_or_else(|| vec![spec.to_owned()]);
    let (op, args) = match tree.split_first() {
        Some((op, args)) if !args.is_empty() => (op.as_str(), args),
        _ => return Ok(matches!(value, Cmp::Str(s) if *s == tree.concat())),
    };
    let num = |v: &Cmp| match v {
        Cmp::Num(n) => Ok(*n),
        Cmp::Str(s) => py_float(s),
    };
    let type_error = || {
        err(format!(
            "'{op}' is not supported between a disk size and a string"
        ))
    };
    Ok(match op {
        "=" | ">=" => num(value)? >= py_float(&args[0])?,
        "!=" => num(value)? != py_float(&args[0])?,
        "<=" => num(value)? <= py_float(&args[0])?,
        "<" => num(value)? < py_float(&args[0])?,
        "==" => num(value)? == py_float(&args[0])?,
        ">" => num(value)? > py_float(&args[0])?,
        "s==" | "s!=" | "s<" | "s<=" | "s>" | "s>=" => match value {
            Cmp::Num(_) if op == "s==" => false,
            Cmp::Num(_) if op == "s!=" => true,
            Cmp::Num(_) => return Err(type_error()),
            Cmp::Str(s) => {
                let (a, b) = (s.as_str(), args[0].as_str());
                match op {
                    "s==" => a == b,
                    "s!=" => a != b,
                    "s<" => a < b,
                    "s<=" => a <= b,
                    "s>" => a > b,
                    _ => a >= b,
                }
            }
        },
        "<in>" => match value {
            Cmp::Str(s) => s.contains(args[0].as_str()),
            Cmp::Num(_) => return Err(type_error()),
        },
        "<or>" => matches!(value, Cmp::Str(s) if args.iter().any(|a| a == s)),
        other => {
            return Err(err(format!(
                "the {other} operator cannot be used in root device hints"
            )));
        }
    })
}

/// Whether `disk` satisfies every hint; `Ok(false)` also for a disk the
/// inspector skips (an empty string attribute, a non-boolean rotational).
fn matches_disk(disk: &Map<String, Value>, hints: &Hints) -> Result<bool, HintError> {
    for (name, kind, hint) in &hints.0 {
        let attr = disk.get(name).unwrap_or(&Value::Null);
        let ok = match (kind, hint) {
            (Kind::Bool, Hint::Bool(want)) => py_bool(attr) == Some(*want),
            (Kind::Int, Hint::Spec(spec)) => {
                let size = attr
                    .as_f64()
                    .ok_or_else(|| err(format!("the disk's {name} is not a number: {}", py_str(attr))))?;
                spec_match(&Cmp::Num(size / GIB), spec)?
            }
            (_, Hint::Spec(spec)) => match normalize(&py_str(attr), name) {
                Ok(v) => spec_match(&Cmp::Str(v), spec)?,
                Err(_) if py_str(attr).trim().is_empty() => false,
                Err(e) => return Err(e),
            },
            (_, Hint::Bool(_)) => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The indices of the disks matching every hint, all of them or (with
/// `first`) the first one only.
pub fn find(disks: &[Value], hints: &Hints, first: bool) -> Result<Vec<usize>, HintError> {
    let mut found = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let disk = d
            .as_object()
            .ok_or_else(|| err(format!("disk {i} is not an object")))?;
        if matches_disk(disk, hints)? {
            found.push(i);
            if first {
                break;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_tokens_as_pyparsing_reads_them() {
        let t = |s: &str| tokens(s).map(|v| v.join("|"));
        assert_eq!(t("<or> a <or> b"), Some("<or>|a|b".into()));
        assert_eq!(t(">= 100"), Some(">=|100".into()));
        assert_eq!(t("s== foo bar"), Some("s==|foo".into()));
        assert_eq!(t("foo"), Some("foo".into()));
        assert_eq!(t("=="), None);
        assert_eq!(t("<range-in> [ 1 2 ]"), Some("<range-in>|[|1|2|]".into()));
        assert_eq!(
            normalize("<OR> Foo Bar <or> baz", "model").ok(),
            Some("<or> foo%20bar <or> baz".into())
        );
        assert_eq!(quote("a b/c:d"), "a%20b/c%3Ad");
    }
}
