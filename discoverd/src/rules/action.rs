//! Rule actions (`plugins/rules.py` actions): checked at creation, run
//! against a working copy of the node so that a later action sees what an
//! earlier one set; what they change comes out as [`super::Effects`].

use serde_json::{Map, Value};

use super::capabilities::PendingCaps;
use super::condition::check_params;
use super::effects::{Effects, push, set};
use super::format::{FormatError, check, format_value, py_str};
use crate::ironic::PatchOp;

pub const ACTIONS: [&str; 6] = [
    "fail",
    "set-attribute",
    "set-capability",
    "extend-attribute",
    "add-trait",
    "remove-trait",
];

/// One validated action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Fail {
        message: Value,
    },
    SetAttribute {
        path: String,
        value: Value,
    },
    SetCapability {
        name: String,
        value: Value,
    },
    ExtendAttribute {
        path: String,
        value: Value,
        unique: bool,
    },
    AddTrait {
        name: String,
    },
    RemoveTrait {
        name: String,
    },
}

/// Why applying actions stopped: a `fail` action, or a value that could
/// not be formatted or applied. Either fails the introspection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Fail(String),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("Cannot extend {path}: it holds {found}, not a list")]
    NotAList { path: String, found: String },
    /// Any of the above but `Fail` (whose message is the operator's own),
    /// naming the rule whose action could not run.
    #[error("Rule {rule} could not be applied: {error}")]
    InRule { rule: String, error: Box<ActionError> },
}

impl ActionError {
    /// This error, naming `rule` unless it is a `fail` action's message.
    pub fn in_rule(self, rule: &str) -> ActionError {
        match self {
            e @ (ActionError::Fail(_) | ActionError::InRule { .. }) => e,
            e => ActionError::InRule {
                rule: rule.to_owned(),
                error: Box::new(e),
            },
        }
    }
}

fn string(params: &Map<String, Value>, key: &str) -> Result<String, String> {
    match params.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        other => Err(format!(
            "{key} must be a non-empty string, got {}",
            other.unwrap_or(&Value::Null)
        )),
    }
}

fn fmt_err(e: FormatError) -> String {
    e.to_string()
}

impl Action {
    /// Validates one action; the error is the message for a 400.
    pub fn parse(json: &Value) -> Result<Action, String> {
        let obj = json.as_object().ok_or("an action must be an object")?;
        if super::deeper_than(json, super::MAX_DEPTH) {
            return Err(super::too_deep());
        }
        let name = obj
            .get("action")
            .ok_or("'action' is a required property")?
            .as_str()
            .ok_or("'action' must be a string")?;
        let act = ACTIONS
            .iter()
            .copied()
            .find(|a| *a == name)
            .ok_or_else(|| format!("{name:?} is not one of {ACTIONS:?}"))?;
        let params: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "action")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let value = || params.get("value").cloned().unwrap_or(Value::Null);
        let parsed = match act {
            "fail" => check_params(&params, &["message"], &[]).map(|()| Action::Fail {
                message: value_of(&params, "message"),
            }),
            "set-attribute" => {
                // `value` may be null, but must be given.
                check_params(&params, &["path"], &["value", "reset_interfaces"])
                    .and_then(|()| {
                        if params.contains_key("value") {
                            Ok(())
                        } else {
                            Err("missing required parameter(s): value".into())
                        }
                    })
                    .and_then(|()| check(&value()).map_err(fmt_err))
                    .and_then(|()| {
                        Ok(Action::SetAttribute {
                            path: pointer(&string(&params, "path")?),
                            value: value(),
                        })
                    })
            }
            "set-capability" => check_params(&params, &["name"], &["value"])
                .and_then(|()| check(&value()).map_err(fmt_err))
                .and_then(|()| {
                    Ok(Action::SetCapability {
                        name: string(&params, "name")?,
                        value: value(),
                    })
                }),
            "extend-attribute" => check_params(&params, &["path", "value"], &["unique"])
                .and_then(|()| check(&value()).map_err(fmt_err))
                .and_then(|()| {
                    Ok(Action::ExtendAttribute {
                        path: pointer(&string(&params, "path")?),
                        value: value(),
                        unique: match params.get("unique") {
                            None | Some(Value::Null) => false,
                            Some(Value::Bool(b)) => *b,
                            Some(other) => return Err(format!("unique must be a boolean, got {other}")),
                        },
                    })
                }),
            "add-trait" | "remove-trait" => check_params(&params, &["name"], &[]).and_then(|()| {
                let name = string(&params, "name")?;
                // Ironic's trait syntax; the name goes into a URL path.
                if name.len() > 255
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                {
                    return Err(format!(
                        "name {name:?} is not a trait (A-Z, 0-9 and _, at most 255)"
                    ));
                }
                Ok(if act == "add-trait" {
                    Action::AddTrait { name }
                } else {
                    Action::RemoveTrait { name }
                })
            }),
            _ => Err(format!("{name:?} is not one of {ACTIONS:?}")),
        };
        parsed.map_err(|e| format!("Invalid parameters for action {act}: {e}"))
    }

    /// Runs the action on the working copy of the node; `set-capability`
    /// goes to `caps`, written to the node before any action that reads
    /// or patches it.
    pub(super) fn apply(
        &self,
        node: &mut Value,
        data: &Value,
        out: &mut Effects,
        caps: &mut PendingCaps,
    ) -> Result<(), ActionError> {
        if matches!(self, Action::SetAttribute { .. } | Action::ExtendAttribute { .. }) {
            caps.flush(node, out);
        }
        match self {
            Action::Fail { message } => {
                let mut m = String::new();
                py_str(message, &mut m);
                Err(ActionError::Fail(m))
            }
            Action::SetAttribute { path, value } => {
                let value = format_value(value, data)?;
                set(node, path, value.clone());
                push(out, PatchOp::add(path.clone(), value));
                Ok(())
            }
            Action::SetCapability { name, value } => {
                let value = format_value(value, data)?;
                caps.set(name, &value);
                Ok(())
            }
            Action::ExtendAttribute { path, value, unique } => {
                let value = format_value(value, data)?;
                let (mut list, existed) = match node.pointer(path) {
                    None => (Vec::new(), false),
                    Some(Value::Array(a)) => (a.clone(), true),
                    Some(other) => {
                        return Err(ActionError::NotAList {
                            path: path.clone(),
                            found: other.to_string(),
                        });
                    }
                };
                if *unique && list.contains(&value) {
                    return Ok(());
                }
                list.push(value);
                let list = Value::Array(list);
                set(node, path, list.clone());
                // `add` also replaces an existing member, and stays right
                // when an earlier action of this run created the list (the
                // operations go in one PATCH: a `replace` of a member Ironic
                // does not have yet is refused). Only an array element is
                // replaced (an `add` there would insert).
                let in_array = path
                    .rsplit('/')
                    .next()
                    .is_some_and(|s| s.parse::<usize>().is_ok());
                push(
                    out,
                    if existed && in_array {
                        PatchOp::Replace {
                            path: path.clone(),
                            value: list,
                        }
                    } else {
                        PatchOp::add(path.clone(), list)
                    },
                );
                Ok(())
            }
            Action::AddTrait { name } => {
                out.remove_traits.retain(|t| t != name);
                if !out.add_traits.contains(name) {
                    out.add_traits.push(name.clone());
                }
                Ok(())
            }
            Action::RemoveTrait { name } => {
                out.add_traits.retain(|t| t != name);
                if !out.remove_traits.contains(name) {
                    out.remove_traits.push(name.clone());
                }
                Ok(())
            }
        }
    }

    /// As the inspector shows it: `action` and the parameters.
    pub fn as_json(&self) -> Value {
        let (name, params): (&str, Vec<(&str, Value)>) = match self {
            Action::Fail { message } => ("fail", vec![("message", message.clone())]),
            Action::SetAttribute { path, value } => (
                "set-attribute",
                vec![("path", path.clone().into()), ("value", value.clone())],
            ),
            Action::SetCapability { name, value } => (
                "set-capability",
                vec![("name", name.clone().into()), ("value", value.clone())],
            ),
            Action::ExtendAttribute { path, value, unique } => (
                "extend-attribute",
                vec![
                    ("path", path.clone().into()),
                    ("value", value.clone()),
                    ("unique", (*unique).into()),
                ],
            ),
            Action::AddTrait { name } => ("add-trait", vec![("name", name.clone().into())]),
            Action::RemoveTrait { name } => ("remove-trait", vec![("name", name.clone().into())]),
        };
        let mut m = Map::new();
        m.insert("action".into(), name.into());
        m.extend(params.into_iter().map(|(k, v)| (k.to_owned(), v)));
        Value::Object(m)
    }
}

fn value_of(params: &Map<String, Value>, key: &str) -> Value {
    params.get(key).cloned().unwrap_or(Value::Null)
}

/// Paths without the leading `/` get one, as the inspector's `patch` does.
fn pointer(path: &str) -> String {
    let p = path.trim();
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}
