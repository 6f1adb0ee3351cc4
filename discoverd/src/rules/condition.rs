//! Rule conditions (`plugins/rules.py` conditions): parsed and checked
//! once at creation, evaluated against the data or the node.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde_json::{Map, Value};

use super::format::py_str;
use super::path::Path;

/// The biggest compiled regex (bytes of automaton) a condition may hold.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const RESERVED: [&str; 4] = ["op", "field", "multiple", "invert"];
pub const OPS: [&str; 10] = [
    "eq", "ne", "lt", "gt", "le", "ge", "in-net", "matches", "contains", "is-empty",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Data,
    Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multiple {
    Any,
    All,
    First,
}

impl Multiple {
    fn as_str(self) -> &'static str {
        match self {
            Multiple::Any => "any",
            Multiple::All => "all",
            Multiple::First => "first",
        }
    }
}

#[derive(Debug, Clone)]
enum Check {
    Cmp(&'static str, Value),
    InNet(IpNet),
    Matches(Regex),
    Contains(Regex),
    IsEmpty,
}

/// One validated condition.
#[derive(Debug, Clone)]
pub struct Condition {
    op: &'static str,
    field: String,
    pub(super) scheme: Scheme,
    path: Path,
    multiple: Multiple,
    invert: bool,
    params: Map<String, Value>,
    check: Check,
}

/// Splits `node://a.b` into its scheme and path (`data` by default).
fn split_scheme(field: &str) -> Result<(Scheme, &str), String> {
    match field.split_once("://") {
        None => Ok((Scheme::Data, field)),
        Some(("data", p)) => Ok((Scheme::Data, p)),
        Some(("node", p)) => Ok((Scheme::Node, p)),
        Some((other, _)) => Err(format!(
            "Unsupported scheme for field: {other}, valid values are node:// or data://"
        )),
    }
}

fn regex(pattern: &str, anchored: bool) -> Result<Regex, String> {
    // ironic-inspector appends `$` unless present, then re.match()es
    // (anchored at the start); the group keeps an alternation whole.
    let p = if anchored {
        let tail = if pattern.ends_with('$') { "" } else { "$" };
        format!("^(?:{pattern}{tail})")
    } else {
        pattern.to_owned()
    };
    regex::RegexBuilder::new(&p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// `missing required parameter(s): value; unexpected parameter(s): x`,
/// as the inspector's `WithValidation` words it.
pub(super) fn check_params(
    params: &Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    let passed: Vec<&str> = params
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.as_str())
        .collect();
    let missing: Vec<&str> = required.iter().copied().filter(|r| !passed.contains(r)).collect();
    let unexpected: Vec<&str> = passed
        .iter()
        .copied()
        .filter(|p| !required.contains(p) && !optional.contains(p))
        .collect();
    let mut msg = Vec::new();
    if !missing.is_empty() {
        msg.push(format!("missing required parameter(s): {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        msg.push(format!("unexpected parameter(s): {}", unexpected.join(", ")));
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(msg.join("; "))
    }
}

impl Condition {
    /// Validates one condition; the error is the message for a 400.
    pub fn parse(json: &Value) -> Result<Condition, String> {
        let obj = json.as_object().ok_or("a condition must be an object")?;
        if super::deeper_than(json, super::MAX_DEPTH) {
            return Err(super::too_deep());
        }
        let op_name = obj
            .get("op")
            .ok_or("'op' is a required property")?
            .as_str()
            .ok_or("'op' must be a string")?;
        let op = OPS
            .iter()
            .copied()
            .find(|o| *o == op_name)
            .ok_or_else(|| format!("{op_name:?} is not one of {OPS:?}"))?;
        let field = obj
            .get("field")
            .ok_or("'field' is a required property")?
            .as_str()
            .ok_or("'field' must be a string")?
            .to_owned();
        let multiple = match obj.get("multiple") {
            None => Multiple::Any,
            Some(Value::String(s)) if s == "any" => Multiple::Any,
            Some(Value::String(s)) if s == "all" => Multiple::All,
            Some(Value::String(s)) if s == "first" => Multiple::First,
            Some(other) => return Err(format!("{other} is not one of ['all', 'any', 'first']")),
        };
        let invert = match obj.get("invert") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("{other} is not of type 'boolean'")),
        };
        let (scheme, path) = split_scheme(&field)?;
        let path = Path::parse(path).map_err(|e| format!("Unable to parse field JSON path {field}: {e}"))?;
        let params: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let invalid = |e: String| format!("Invalid parameters for operator {op}: {e}");
        let required: &[&str] = if op == "is-empty" { &[] } else { &["value"] };
        check_params(&params, required, &[]).map_err(invalid)?;
        let value = params.get("value").cloned().unwrap_or(Value::Null);
        let text = || {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("value must be a string, got {value}")))
        };
        let check = match op {
            "in-net" => Check::InNet(parse_net(&text()?).map_err(invalid)?),
            "matches" => Check::Matches(regex(&text()?, true).map_err(invalid)?),
            "contains" => Check::Contains(regex(&text()?, false).map_err(invalid)?),
            "is-empty" => Check::IsEmpty,
            cmp => Check::Cmp(cmp, value),
        };
        Ok(Condition {
            op,
            field,
            scheme,
            path,
            multiple,
            invert,
            params,
            check,
        })
    }

    /// As the inspector shows it: `op`, `field`, `multiple`, `invert`
    /// and the parameters.
    pub fn as_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), self.op.into());
        m.insert("field".into(), self.field.clone().into());
        m.insert("multiple".into(), self.multiple.as_str().into());
        m.insert("invert".into(), self.invert.into());
        m.extend(self.params.clone());
        Value::Object(m)
    }

    /// Whether the condition holds on `source` (the data or the node).
    /// `None`: the field is missing and the op needs it (rule skipped).
    pub fn holds(&self, source: &Value) -> bool {
        let found = self.path.find(source);
        let values: Vec<&Value> = if found.is_empty() {
            if !matches!(self.check, Check::IsEmpty) {
                tracing::info!(field = %self.field, "field not found in data, rule will not be applied");
                return false;
            }
            vec![&Value::Null]
        } else {
            found
        };
        let one = |v: &Value| self.check_one(v) != self.invert;
        match self.multiple {
            Multiple::Any => values.into_iter().any(one),
            Multiple::All => values.into_iter().all(one),
            Multiple::First => values.first().is_some_and(|v| one(v)),
        }
    }

    fn check_one(&self, field: &Value) -> bool {
        match &self.check {
            Check::IsEmpty => match field {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(m) => m.is_empty(),
                _ => false,
            },
            Check::InNet(net) => field
                .as_str()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| net.contains(&ip)),
            // A string as it is; anything else as Python's str() shows it.
            Check::Matches(re) | Check::Contains(re) => match field {
                Value::String(s) => re.is_match(s),
                other => {
                    let mut s = String::new();
                    py_str(other, &mut s);
                    re.is_match(&s)
                }
            },
            Check::Cmp(op, expected) => {
                let Some(ord) = compare(field, expected) else {
                    // Types that cannot be ordered: only `ne` holds, as
                    // Python's `!=` would.
                    return *op == "ne";
                };
                match *op {
                    "eq" => ord == Ordering::Equal,
                    "ne" => ord != Ordering::Equal,
                    "lt" => ord == Ordering::Less,
                    "gt" => ord == Ordering::Greater,
                    "le" => ord != Ordering::Greater,
                    _ => ord != Ordering::Less,
                }
            }
        }
    }
}

/// A CIDR, or a bare address as a one-host network (netaddr accepts both).
fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid value: invalid IPNetwork {s}"))
}

/// The field coerced to the type of the expected value (int or float, as
/// the inspector's `coerce`), then compared. `None` when not comparable.
fn compare(field: &Value, expected: &Value) -> Option<Ordering> {
    match expected {
        Value::Number(e) if e.is_f64() => as_float(field)?.partial_cmp(&e.as_f64()?),
        Value::Number(e) => {
            let f = as_int(field)?;
            match e.as_i64() {
                Some(e) => Some(f.cmp(&i128::from(e))),
                None => Some(f.cmp(&i128::from(e.as_u64()?))),
            }
        }
        Value::String(e) => field.as_str().map(|f| f.cmp(e.as_str())),
        other => (field == other).then_some(Ordering::Equal),
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Python's `int()`: floats truncated, strings must be integers.
fn as_int(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e30)
                    .map(|f| f.trunc() as i128)
            }),
        Value::String(s) => s.trim().replace('_', "").parse().ok(),
        Value::Bool(b) => Some(i128::from(*b)),
        _ => None,
    }
}
