//! The in-memory copy of the `nodes` and `attributes` tables: written only
//! under the connection's lock and after a commit, so it changes in commit
//! order and never shows an uncommitted row. Status reads and ramdisk
//! lookups are served from it without touching the disk or the blocking
//! pool.

use std::collections::{BTreeSet, HashMap};

use rusqlite::Connection;

use crate::domain::NodeId;
use crate::store::{LookupKey, Status, StoreError};

/// Statuses by node, and lookup attributes by (name, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Mirror {
    pub statuses: HashMap<NodeId, Status>,
    attrs: HashMap<(String, String), NodeId>,
}

impl Mirror {
    /// Everything the file holds.
    pub fn load(c: &Connection) -> rusqlite::Result<Self> {
        let statuses = super::rows::all_statuses(c)?;
        let mut attrs = HashMap::new();
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
                attrs.insert((name, value), node);
            }
        }
        Ok(Mirror { statuses, attrs })
    }

    pub fn add_attributes(&mut self, node: NodeId, name: &str, values: &[String]) {
        for v in values {
            self.attrs.insert((name.to_owned(), v.clone()), node);
        }
    }

    pub fn forget_attributes(&mut self, node: NodeId) {
        self.attrs.retain(|_, n| *n != node);
    }

    /// The one active node matching the BMC address or any MAC: exact, the
    /// union over all attributes (spec §6).
    pub fn find(&self, key: &LookupKey) -> Result<Status, StoreError> {
        let described = key.to_string();
        let bmc = key.bmc_address.as_deref().filter(|b| !b.is_empty());
        let wanted = bmc
            .map(|b| ("bmc_address", b.to_owned()))
            .into_iter()
            .chain(key.macs.iter().map(|m| ("mac", m.to_string())));
        let found: BTreeSet<NodeId> = wanted
            .filter_map(|(name, value)| self.attrs.get(&(name.to_owned(), value)).copied())
            .collect();
        let node = match (found.len(), found.into_iter().next()) {
            (1, Some(n)) => n,
            (0, _) => return Err(StoreError::NoMatch(described)),
            _ => return Err(StoreError::Ambiguous(described)),
        };
        let status = self
            .statuses
            .get(&node)
            .cloned()
            .ok_or(StoreError::NoMatch(described))?;
        if let Some(at) = status.finished_at {
            return Err(StoreError::AlreadyFinished { node, at });
        }
        Ok(status)
    }
}
