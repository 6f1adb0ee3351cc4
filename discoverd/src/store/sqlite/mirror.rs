//! The in-memory copy of the `nodes` and `attributes` tables: written only
//! under the connection's lock and after a commit, so it changes in commit
//! order and never shows an uncommitted row. Status reads and ramdisk
//! lookups are served from it without touching the disk or the blocking
//! pool.

use std::collections::{BTreeSet, HashMap};

use rusqlite::Connection;

use crate::domain::NodeId;
use crate::store::{LookupKey, Status, StoreError};

/// Statuses by node, and lookup attributes by name, then value (two
/// levels, so a lookup borrows the report's strings instead of building
/// a key).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Mirror {
    pub statuses: HashMap<NodeId, Status>,
    attrs: HashMap<String, HashMap<String, NodeId>>,
}

impl Mirror {
    /// Everything the file holds.
    pub fn load(c: &Connection) -> rusqlite::Result<Self> {
        let statuses = super::rows::all_statuses(c)?;
        let mut attrs: HashMap<String, HashMap<String, NodeId>> = HashMap::new();
        let mut q = c.prepare("SELECT name, value, uuid FROM attributes")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for r in rows {
            let (name, value, uuid) = r?;
            // A row another program wrote with a bad UUID is not ours to serve.
            if let Ok(node) = uuid.parse() {
                attrs.entry(name).or_default().insert(value, node);
            }
        }
        Ok(Mirror { statuses, attrs })
    }

    pub fn add_attributes(&mut self, node: NodeId, name: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let by_value = self.attrs.entry(name.to_owned()).or_default();
        for v in values {
            by_value.insert(v.clone(), node);
        }
    }

    pub fn forget_attributes(&mut self, node: NodeId) {
        for by_value in self.attrs.values_mut() {
            by_value.retain(|_, n| *n != node);
        }
        self.attrs.retain(|_, by_value| !by_value.is_empty());
    }

    /// The one active node matching the BMC address or any MAC: exact, the
    /// union over all attributes (spec §6).
    pub fn find(&self, key: &LookupKey) -> Result<Status, StoreError> {
        let get = |name: &str, value: &str| self.attrs.get(name)?.get(value).copied();
        let bmc = key.bmc_address.as_deref().filter(|b| !b.is_empty());
        let found: BTreeSet<NodeId> = bmc
            .and_then(|b| get("bmc_address", b))
            .into_iter()
            .chain(key.macs.iter().filter_map(|m| get("mac", &m.to_string())))
            .collect();
        let node = match (found.len(), found.into_iter().next()) {
            (1, Some(n)) => n,
            (0, _) => return Err(StoreError::NoMatch(key.to_string())),
            _ => return Err(StoreError::Ambiguous(key.to_string())),
        };
        let status = self
            .statuses
            .get(&node)
            .cloned()
            .ok_or_else(|| StoreError::NoMatch(key.to_string()))?;
        if let Some(at) = status.finished_at {
            return Err(StoreError::AlreadyFinished { node, at });
        }
        Ok(status)
    }
}
