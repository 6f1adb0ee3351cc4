//! Introspection rules: ironic-inspector's v1 DSL (successors.md §2) as
//! pure code. A [`Rule`] is validated once, at creation ([`Rule::parse`]);
//! [`apply`] checks the scope and the conditions of every rule on the same
//! data first, then runs the actions of every match in order, and returns
//! what they change ([`Effects`]) for the processing flow to send.
//!
//! See docs/rules.md for the syntax and where it differs from the
//! inspector (regex dialect, path subset, formatting).

mod action;
mod book;
mod capabilities;
mod condition;
mod effects;
mod format;
mod path;

pub use action::{Action, ActionError};
pub use book::{RuleBook, RuleBookError};
pub use condition::{Condition, Scheme};
pub use effects::{Effects, patched};
pub use format::FormatError;
pub use path::{Path, PathError};

use serde_json::{Map, Value};

/// Limits on what one rule may hold (a bigger one is refused with a 400).
pub const MAX_CONDITIONS: usize = 256;
pub const MAX_ACTIONS: usize = 256;
pub const MAX_SCOPE: usize = 255;
pub const MAX_DESCRIPTION: usize = 4096;
/// The deepest a condition or an action may nest lists and objects (the
/// condition or action itself is the first level): a value is formatted,
/// compared and shown recursively.
pub const MAX_DEPTH: usize = 32;

/// Why a rule is refused at creation; the text is the 400's message and
/// names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Invalid rule: {0}")]
    Body(String),
    #[error("Invalid UUID value")]
    Uuid,
    #[error("Invalid scope: the length of the scope should be within 255 characters")]
    Scope,
    #[error("Validation failed for conditions: conditions[{index}]: {reason}")]
    Condition { index: usize, reason: String },
    #[error("Validation failed for actions: {0}")]
    Actions(String),
    #[error("Validation failed for actions: actions[{index}]: {reason}")]
    Action { index: usize, reason: String },
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub uuid: String,
    pub description: Option<String>,
    pub scope: Option<String>,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

fn opt_string(body: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, RuleError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) if key == "scope" => Err(RuleError::Scope),
        Some(other) => Err(RuleError::Body(format!(
            "{key} must be a string of at most {max} bytes, got {}",
            crate::json::type_name(other)
        ))),
    }
}

fn list<'v>(body: &'v Map<String, Value>, key: &str) -> Result<&'v [Value], RuleError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(RuleError::Body(format!(
            "{key} must be a list, got {}",
            crate::json::type_name(other)
        ))),
    }
}

/// Whether `v` nests lists and objects more than `max` levels deep
/// (checked without recursion: the input may be deeper than the stack).
pub(crate) fn deeper_than(v: &Value, max: usize) -> bool {
    let mut todo = vec![(v, 1usize)];
    while let Some((v, level)) = todo.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        if level > max {
            return true;
        }
        todo.extend(children.map(|c| (c, level + 1)));
    }
    false
}

fn too_deep() -> String {
    format!("nested more than {MAX_DEPTH} levels deep")
}

impl Rule {
    /// Validates a rule as the API receives it; `uuid` is generated when
    /// absent.
    pub fn parse(body: &Value) -> Result<Rule, RuleError> {
        let body = body
            .as_object()
            .ok_or_else(|| RuleError::Body("the body must be a JSON object".into()))?;
        let uuid = match body.get("uuid") {
            None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Value::String(s)) if s.is_empty() => uuid::Uuid::new_v4().to_string(),
            Some(Value::String(s)) => uuid::Uuid::parse_str(s).map_err(|_| RuleError::Uuid)?.to_string(),
            Some(_) => return Err(RuleError::Uuid),
        };
        let description = opt_string(body, "description", MAX_DESCRIPTION)?;
        let scope = opt_string(body, "scope", MAX_SCOPE)?.filter(|s| !s.is_empty());
        let conds = list(body, "conditions")?;
        if conds.len() > MAX_CONDITIONS {
            return Err(RuleError::Body(format!("more than {MAX_CONDITIONS} conditions")));
        }
        let conditions = conds
            .iter()
            .enumerate()
            .map(|(index, c)| Condition::parse(c).map_err(|reason| RuleError::Condition { index, reason }))
            .collect::<Result<_, _>>()?;
        let acts = list(body, "actions")?;
        if acts.is_empty() {
            return Err(RuleError::Actions(
                "[] is too short: a rule needs at least one action".into(),
            ));
        }
        if acts.len() > MAX_ACTIONS {
            return Err(RuleError::Body(format!("more than {MAX_ACTIONS} actions")));
        }
        let actions = acts
            .iter()
            .enumerate()
            .map(|(index, a)| Action::parse(a).map_err(|reason| RuleError::Action { index, reason }))
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            uuid,
            description,
            scope,
            conditions,
            actions,
        })
    }

    /// The inspector's representation (`short`: without conditions and
    /// actions, as in the list).
    pub fn as_json(&self, short: bool) -> Value {
        let mut m = Map::new();
        m.insert("uuid".into(), self.uuid.clone().into());
        m.insert("description".into(), self.description.clone().into());
        m.insert("scope".into(), self.scope.clone().into());
        if !short {
            m.insert(
                "conditions".into(),
                self.conditions.iter().map(Condition::as_json).collect(),
            );
            m.insert(
                "actions".into(),
                self.actions.iter().map(Action::as_json).collect(),
            );
        }
        Value::Object(m)
    }

    /// What `description` falls back to in logs.
    pub fn name(&self) -> &str {
        self.description.as_deref().unwrap_or(&self.uuid)
    }

    fn in_scope(&self, node: &Value) -> bool {
        match &self.scope {
            None => true,
            Some(s) => {
                node.pointer("/properties/inspection_scope")
                    .and_then(Value::as_str)
                    == Some(s)
            }
        }
    }

    fn matches(&self, node: &Value, data: &Value) -> bool {
        self.in_scope(node)
            && self.conditions.iter().all(|c| {
                c.holds(match c.scheme {
                    Scheme::Data => data,
                    Scheme::Node => node,
                })
            })
    }
}

/// Runs `rules` (in creation order) on a node (as Ironic's JSON, with
/// `properties`) and the processed data. Every rule's scope and
/// conditions are checked before any action runs; the actions of the
/// matching rules then run in order on a working copy of the node. The
/// first failing action (a `fail`, or a value that cannot be formatted)
/// stops with its error, which names the rule unless it is a `fail`
/// message; nothing is to be sent then.
pub fn apply<'r>(
    rules: impl IntoIterator<Item = &'r Rule>,
    node: &Value,
    data: &Value,
) -> Result<Effects, ActionError> {
    let matching: Vec<&Rule> = rules.into_iter().filter(|r| r.matches(node, data)).collect();
    let mut working = node.clone();
    let mut out = Effects::default();
    let mut caps = capabilities::PendingCaps::default();
    for rule in matching {
        tracing::info!(rule = rule.name(), "applying rule");
        for action in &rule.actions {
            action
                .apply(&mut working, data, &mut out, &mut caps)
                .map_err(|e| e.in_rule(rule.name()))?;
        }
    }
    caps.flush(&mut working, &mut out);
    Ok(out)
}

/// Why rules could not be applied to a node: they could not be read, or
/// an action failed (a `fail` rule among them). Either fails the node.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("Failed to read the introspection rules: {0}")]
    Load(#[from] RuleBookError),
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// The node as rules' `node://` fields see it: Ironic's fields as
/// discoverd reads them, plus `id` (openstacksdk's name for the UUID).
pub fn node_json(node: &crate::ironic::Node) -> Value {
    let mut v = serde_json::to_value(node).unwrap_or_else(|_| Value::Object(Map::new()));
    v["id"] = Value::String(node.uuid.clone());
    v
}

impl RuleBook {
    /// Every stored rule applied to `node`, as it will be once `pending`
    /// (the hooks' node patches) is sent, and the processed `data`. The
    /// processing flow and the reapply flow both call this.
    pub async fn apply(
        &self,
        node: &crate::ironic::Node,
        pending: &[crate::ironic::PatchOp],
        data: &Value,
    ) -> Result<Effects, ApplyError> {
        let rules = self.all().await?;
        if rules.is_empty() {
            return Ok(Effects::default());
        }
        let node = patched(&node_json(node), pending);
        Ok(apply(rules.iter(), &node, data)?)
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
