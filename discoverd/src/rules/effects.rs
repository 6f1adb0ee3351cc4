//! What the matching rules' actions change on the node ([`Effects`]), and
//! the working copy of the node they change it in: shared by the actions
//! and the capability edits.

use serde_json::{Map, Value};

use crate::ironic::PatchOp;

/// What the matching rules' actions change on the node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// JSON-patch operations for the node, one per path (the last wins).
    pub node: Vec<PatchOp>,
    pub add_traits: Vec<String>,
    pub remove_traits: Vec<String>,
}

/// One operation per path: a later one for the same path replaces it.
pub(super) fn push(out: &mut Effects, op: PatchOp) {
    out.node.retain(|o| o.path() != op.path());
    out.node.push(op);
}

/// Sets `path` (a JSON pointer) in the working copy, making objects on the way.
pub(super) fn set(node: &mut Value, path: &str, value: Value) {
    let mut cur = node;
    let mut parts = path
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        if parts.peek().is_none() {
            m.insert(part, value);
            return;
        }
        cur = m.entry(part).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// `node` with JSON-patch `ops` applied (objects made on the way; a
/// remove of a missing path does nothing): what rules see of a node that
/// the hooks' patches are about to change.
pub fn patched(node: &Value, ops: &[PatchOp]) -> Value {
    let mut v = node.clone();
    for op in ops {
        match op {
            PatchOp::Add { path, value } | PatchOp::Replace { path, value } => {
                set(&mut v, path, value.clone())
            }
            PatchOp::Remove { path } => {
                if let Some((parent, key)) = path.rsplit_once('/')
                    && let Some(Value::Object(m)) = v.pointer_mut(parent)
                {
                    m.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
            }
        }
    }
    v
}
