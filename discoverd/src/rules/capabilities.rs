//! `properties.capabilities` (`k1:v1,k2:v2`) as `set-capability` actions
//! change it. Each action removes every pair of its name and appends its
//! own at the end (none when the value is null); rules often set one
//! capability each, so rewriting the string per action grew with the
//! square of the rules. The actions are collected instead and written
//! once, before the next action that reads or patches the node, or at the
//! end: the same string and the same patch as one write per action.

use std::collections::HashMap;

use serde_json::Value;

use super::effects::{Effects, push, set};
use super::format::py_str;
use crate::ironic::PatchOp;

const PATH: &str = "/properties/capabilities";

/// `set-capability` actions not yet written to the node.
#[derive(Debug, Default)]
pub(super) struct PendingCaps {
    /// Name and value (as Python's `str()`; `None` removes), in order.
    sets: Vec<(String, Option<String>)>,
}

impl PendingCaps {
    pub(super) fn set(&mut self, name: &str, value: &Value) {
        let value = (!value.is_null()).then(|| {
            let mut v = String::new();
            py_str(value, &mut v);
            v
        });
        self.sets.push((name.to_owned(), value));
    }

    /// Writes the collected actions to the working node and `out`.
    pub(super) fn flush(&mut self, node: &mut Value, out: &mut Effects) {
        if self.sets.is_empty() {
            return;
        }
        let sets = std::mem::take(&mut self.sets);
        // Each name ends where its last action put it.
        let last: HashMap<&str, usize> = sets
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        let joined = {
            let caps = node.pointer(PATH).and_then(Value::as_str).unwrap_or("");
            let mut joined = String::with_capacity(caps.len() + 16 * sets.len());
            let mut add = |k: &str, v: &str| {
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(k);
                joined.push(':');
                joined.push_str(v);
            };
            // A bare `k` becomes `k:`, as it always did.
            for c in caps.split(',').filter(|c| !c.is_empty()) {
                let (k, v) = c.split_once(':').unwrap_or((c, ""));
                if !last.contains_key(k) {
                    add(k, v);
                }
            }
            for (i, (name, value)) in sets.iter().enumerate() {
                if let (Some(v), Some(&at)) = (value, last.get(name.as_str()))
                    && at == i
                {
                    add(name, v);
                }
            }
            joined
        };
        let caps = Value::String(joined);
        set(node, PATH, caps.clone());
        push(out, PatchOp::add(PATH, caps));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Rule, apply};

    /// One write per action, as it was: the reference the collected
    /// writes must equal.
    fn one_by_one(caps: &str, sets: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(String, String)> = caps
            .split(',')
            .filter(|c| !c.is_empty())
            .map(|c| match c.split_once(':') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (c.to_owned(), String::new()),
            })
            .collect();
        for (name, value) in sets {
            pairs.retain(|(k, _)| k != name);
            if let Some(v) = value {
                pairs.push(((*name).to_owned(), (*v).to_owned()));
            }
        }
        let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        joined.join(",")
    }

    proptest::proptest! {
        #[test]
        fn collected_writes_equal_one_write_per_action(
            caps in "([abc]{1,2}(:[xy]{0,2})?,?){0,5}",
            sets in proptest::collection::vec(("[abcd]{1,2}", proptest::option::of("[xyz]{0,2}")), 0..8),
            interleave in proptest::option::of(0usize..8),
        ) {
            let node = json!({"properties": {"capabilities": caps}});
            let mut actions: Vec<serde_json::Value> = sets
                .iter()
                .map(|(n, v)| json!({"action": "set-capability", "name": n, "value": v}))
                .collect();
            // A set-attribute in between writes what came before it.
            let at = interleave.map(|i| i.min(actions.len()));
            if let Some(i) = at {
                actions.insert(i, json!({"action": "set-attribute", "path": "/extra/x", "value": 1}));
            }
            if actions.is_empty() {
                return Ok(());
            }
            let rule = Rule::parse(&json!({"actions": actions}))
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let effects = apply([&rule], &node, &json!({}))
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let refs: Vec<(&str, Option<&str>)> = sets.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
            let want = one_by_one(&caps, &refs);
            let got = effects.node.iter().find(|o| o.path() == "/properties/capabilities");
            if sets.is_empty() {
                proptest::prop_assert!(got.is_none());
            } else {
                proptest::prop_assert_eq!(
                    got.map(|o| serde_json::to_value(o).unwrap_or_default()["value"].clone()),
                    Some(json!(want))
                );
                // The patch order: the capabilities op after the set-attribute
                // unless every set-capability came before it.
                let paths: Vec<&str> = effects.node.iter().map(|o| o.path()).collect();
                let last_cap = at.is_some_and(|i| i >= sets.len());
                let want_order: Vec<&str> = match (at, last_cap) {
                    (None, _) => vec!["/properties/capabilities"],
                    (Some(0), _) => vec!["/extra/x", "/properties/capabilities"],
                    (Some(_), true) => vec!["/properties/capabilities", "/extra/x"],
                    (Some(_), false) => vec!["/extra/x", "/properties/capabilities"],
                };
                proptest::prop_assert_eq!(paths, want_order);
            }
        }
    }
}
