//! The SQL of the SQLite store, as synchronous functions on one
//! connection (inside the caller's transaction for writes).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use common::MacAddr;
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::{NodeId, State, Timestamp};
use crate::store::{DataKind, Options, Status, StoreError};

/// A connection (or transaction) and the file it belongs to, for errors.
pub(super) struct Tx<'a> {
    pub tx: &'a Connection,
    pub path: &'a Path,
}

const SELECT: &str = "SELECT uuid, started_at, finished_at, error, state FROM nodes";

fn secs(t: Timestamp) -> f64 {
    t.as_secs_f64()
}

/// One `nodes` row. A row another program wrote with an unknown state or
/// a bad UUID is a storage error, not a panic.
fn status(r: &rusqlite::Row<'_>) -> rusqlite::Result<Status> {
    let bad = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let uuid: String = r.get(0)?;
    let state: String = r.get(4)?;
    Ok(Status {
        node: uuid.parse().map_err(|e| bad(0, Box::new(e)))?,
        started_at: Timestamp::from_secs_f64(r.get::<_, Option<f64>>(1)?.unwrap_or(0.0)),
        finished_at: r.get::<_, Option<f64>>(2)?.map(Timestamp::from_secs_f64),
        error: r.get::<_, Option<String>>(3)?.filter(|e| !e.is_empty()),
        state: state.parse().map_err(|e| bad(4, Box::new(e)))?,
    })
}

/// Every row of `nodes`.
pub(super) fn all_statuses(c: &Connection) -> rusqlite::Result<HashMap<NodeId, Status>> {
    let mut q = c.prepare(SELECT)?;
    let rows = q.query_map([], status)?;
    rows.map(|r| r.map(|s| (s.node, s))).collect()
}

impl Tx<'_> {
    fn err(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| super::backend(action, self.path, e)
    }

    pub fn status(&self, node: NodeId) -> Result<Option<Status>, StoreError> {
        self.tx
            .query_row(&format!("{SELECT} WHERE uuid = ?1"), [node.to_string()], status)
            .optional()
            .map_err(self.err("read a status"))
    }

    pub fn state(&self, node: NodeId) -> Result<Option<State>, StoreError> {
        Ok(self.status(node)?.map(|s| s.state))
    }

    pub fn finished_at(&self, node: NodeId) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.status(node)?.and_then(|s| s.finished_at))
    }

    /// Drops every row of `node` (a restart replaces them).
    pub fn forget(&self, node: NodeId) -> Result<(), StoreError> {
        for table in ["nodes", "attributes", "options", "data"] {
            self.tx
                .execute(
                    &format!("DELETE FROM {table} WHERE uuid = ?1"),
                    [node.to_string()],
                )
                .map_err(self.err("forget a node"))?;
        }
        Ok(())
    }

    pub fn insert_node(&self, node: NodeId, at: Timestamp, state: State) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO nodes (uuid, started_at, state) VALUES (?1, ?2, ?3)",
                params![node.to_string(), secs(at), state.as_str()],
            )
            .map(drop)
            .map_err(self.err("record a node"))
    }

    /// Adds lookup attributes; a value another node holds is a
    /// [`StoreError::Duplicate`] (the caller's transaction rolls back).
    pub fn add_attributes(&self, node: NodeId, name: &str, values: &[String]) -> Result<(), StoreError> {
        let mut q = self
            .tx
            .prepare_cached("INSERT INTO attributes (name, value, uuid) VALUES (?1, ?2, ?3)")
            .map_err(self.err("add attributes"))?;
        for v in values {
            let held: Option<String> = self
                .tx
                .query_row(
                    "SELECT uuid FROM attributes WHERE name = ?1 AND value = ?2",
                    params![name, v],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err("add attributes"))?;
            match held {
                Some(u) if u == node.to_string() => continue,
                Some(_) => {
                    return Err(StoreError::Duplicate {
                        name: name.to_owned(),
                        values: values.to_vec(),
                    });
                }
                None => {}
            }
            q.execute(params![name, v, node.to_string()])
                .map_err(self.err("add attributes"))?;
        }
        Ok(())
    }

    pub fn set_option(&self, node: NodeId, name: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO options (uuid, name, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (uuid, name) DO UPDATE SET value = excluded.value",
                params![node.to_string(), name, value.to_string()],
            )
            .map(drop)
            .map_err(self.err("store an option"))
    }

    pub fn set_state(&self, node: NodeId, to: State) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE nodes SET state = ?2 WHERE uuid = ?1",
                params![node.to_string(), to.as_str()],
            )
            .map(drop)
            .map_err(self.err("change a state"))
    }

    /// An ended node in state `to` again: started at `at`, not finished.
    pub fn reopen(&self, node: NodeId, to: State, at: Timestamp) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE nodes SET state = ?2, started_at = ?3, finished_at = NULL, error = NULL WHERE uuid = ?1",
                params![node.to_string(), to.as_str(), secs(at)],
            )
            .map(drop)
            .map_err(self.err("reopen an introspection"))
    }

    /// Marks the end and forgets the node's attributes and options.
    pub fn end(&self, node: NodeId, error: Option<&str>, at: Timestamp) -> Result<(), StoreError> {
        let state = if error.is_some() {
            State::Error
        } else {
            State::Finished
        };
        let id = node.to_string();
        self.tx
            .execute(
                "UPDATE nodes SET finished_at = ?2, error = ?3, state = ?4 WHERE uuid = ?1",
                params![id, secs(at), error, state.as_str()],
            )
            .map_err(self.err("record an ending"))?;
        for table in ["attributes", "options"] {
            self.tx
                .execute(&format!("DELETE FROM {table} WHERE uuid = ?1"), [&id])
                .map_err(self.err("record an ending"))?;
        }
        Ok(())
    }

    fn mac_rows(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<MacAddr>, StoreError> {
        let mut q = self.tx.prepare_cached(sql).map_err(self.err("read MACs"))?;
        let rows = q
            .query_map(args, |r| r.get::<_, String>(0))
            .map_err(self.err("read MACs"))?;
        let mut out = Vec::new();
        for r in rows {
            let text = r.map_err(self.err("read MACs"))?;
            // A value this build cannot parse (written by hand) is skipped.
            if let Ok(m) = text.parse() {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub fn macs(&self, node: NodeId) -> Result<Vec<MacAddr>, StoreError> {
        self.mac_rows(
            "SELECT value FROM attributes WHERE name = 'mac' AND uuid = ?1 ORDER BY value",
            &[&node.to_string()],
        )
    }

    pub fn all_macs(&self) -> Result<HashSet<MacAddr>, StoreError> {
        Ok(self
            .mac_rows("SELECT value FROM attributes WHERE name = 'mac'", &[])?
            .into_iter()
            .collect())
    }

    pub fn options(&self, node: NodeId) -> Result<Options, StoreError> {
        let mut q = self
            .tx
            .prepare_cached("SELECT name, value FROM options WHERE uuid = ?1")
            .map_err(self.err("read options"))?;
        let rows = q
            .query_map([node.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err("read options"))?;
        let mut out = Options::new();
        for r in rows {
            let (k, v) = r.map_err(self.err("read options"))?;
            if let Ok(v) = serde_json::from_str(&v) {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// Deletes statuses finished before `t`, with their data.
    pub fn purge(&self, t: Timestamp) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "DELETE FROM data WHERE uuid IN (SELECT uuid FROM nodes WHERE finished_at < ?1)",
                [secs(t)],
            )
            .map_err(self.err("purge old statuses"))?;
        let n = self
            .tx
            .execute("DELETE FROM nodes WHERE finished_at < ?1", [secs(t)])
            .map_err(self.err("purge old statuses"))?;
        Ok(n as u64)
    }

    pub fn put_data(&self, node: NodeId, kind: DataKind, text: &str) -> Result<(), StoreError> {
        if self.status(node)?.is_none() {
            return Err(StoreError::NotFound(node));
        }
        self.tx
            .execute(
                "INSERT INTO data (uuid, kind, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (uuid, kind) DO UPDATE SET value = excluded.value",
                params![node.to_string(), kind.as_str(), text],
            )
            .map(drop)
            .map_err(self.err("store introspection data"))
    }

    pub fn get_data(&self, node: NodeId, kind: DataKind) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = self
            .tx
            .query_row(
                "SELECT value FROM data WHERE uuid = ?1 AND kind = ?2",
                params![node.to_string(), kind.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("read introspection data"))?;
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| super::backend("decode introspection data", self.path, e))
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.tx
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(self.err("answer a query"))
    }
}
