//! The embedded [`NodeStore`]: one SQLite file (WAL), so that statuses
//! survive restarts.
//!
//! SQLite calls block; every operation runs on the blocking pool with one
//! connection behind a mutex, so the async runtime never waits on the
//! disk. The `nodes` table is mirrored in memory, updated under that mutex
//! after each commit, so a status read (the API's hottest path) touches
//! neither the disk nor the pool and never shows an uncommitted status.

mod rows;
pub mod schema;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use common::MacAddr;
use rusqlite::Connection;
use serde_json::Value;

use super::{
    DataKind, Ended, ListQuery, LookupKey, MAX_DATA_BYTES, NewIntrospection, NodeStore, Options, Status,
    StoreError,
};
use crate::domain::{NodeId, State, Timestamp};
use rows::Tx;

/// The SQLite store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    statuses: Arc<RwLock<HashMap<NodeId, Status>>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let p = path.clone();
        let location = path.display().to_string();
        let (conn, statuses) = tokio::task::spawn_blocking(move || {
            let conn = schema::open(&p).map_err(|e| backend("open", &p, e))?;
            let statuses = rows::all_statuses(&conn).map_err(|e| backend("read statuses", &p, e))?;
            Ok::<_, StoreError>((conn, statuses))
        })
        .await
        .map_err(|e| StoreError::Backend {
            action: "open",
            location,
            source: Box::new(e),
        })??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            statuses: Arc::new(RwLock::new(statuses)),
            path,
        })
    }

    fn statuses(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeId, Status>> {
        self.statuses
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` in one transaction on the blocking pool; after it commits,
    /// `mirror` applies the same change to the in-memory statuses (still
    /// under the connection's mutex, so in commit order).
    async fn write<T: Send + 'static>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
        mirror: impl FnOnce(&mut HashMap<NodeId, Status>, &T) + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let statuses = self.statuses.clone();
        let path = self.path.clone();
        self.blocking(action, move || {
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let tx = guard.transaction().map_err(|e| backend(action, &path, e))?;
            let out = f(&Tx { tx: &tx, path: &path })?;
            tx.commit().map_err(|e| backend(action, &path, e))?;
            let mut m = statuses
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            mirror(&mut m, &out);
            Ok(out)
        })
        .await
    }

    /// Runs a read on the blocking pool (one connection, under its lock).
    async fn read<T: Send + 'static>(
        &self,
        action: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        self.blocking(action, move || {
            let guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&Tx {
                tx: &guard,
                path: &path,
            })
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        action: &'static str,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Backend {
                action,
                location: self.path.display().to_string(),
                source: Box::new(e),
            })?
    }

    /// The compare-and-swap every state change starts with, on the
    /// in-memory copy (exact: it changes only under the connection lock,
    /// which the caller holds).
    fn current(m: &HashMap<NodeId, Status>, node: NodeId) -> Option<Status> {
        m.get(&node).cloned()
    }
}

fn backend(
    action: &'static str,
    path: &Path,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Backend {
        action,
        location: path.display().to_string(),
        source: Box::new(e),
    }
}

#[async_trait::async_trait]
impl NodeStore for SqliteStore {
    async fn start(
        &self,
        new: &NewIntrospection,
        expected: Option<State>,
        at: Timestamp,
    ) -> Result<Status, StoreError> {
        let new = new.clone();
        self.write(
            "record a start",
            move |tx| {
                let actual = tx.state(new.node)?;
                if actual != expected {
                    return Err(StoreError::StateChanged {
                        node: new.node,
                        expected,
                        actual,
                    });
                }
                tx.forget(new.node)?;
                tx.insert_node(new.node, at)?;
                if let Some(bmc) = new.bmc_address.as_deref().filter(|b| !b.is_empty()) {
                    tx.add_attributes(new.node, "bmc_address", &[bmc.to_owned()])?;
                }
                for (name, value) in &new.options {
                    tx.set_option(new.node, name, value)?;
                }
                Ok(Status {
                    node: new.node,
                    state: State::Starting,
                    started_at: at,
                    finished_at: None,
                    error: None,
                })
            },
            |m, s| {
                m.insert(s.node, s.clone());
            },
        )
        .await
    }

    async fn add_macs(&self, node: NodeId, macs: &[MacAddr]) -> Result<(), StoreError> {
        let values: Vec<String> = macs.iter().map(MacAddr::to_string).collect();
        self.write(
            "add MACs",
            move |tx| {
                match tx.state(node)? {
                    Some(s) if !s.is_final() => {}
                    Some(_) => {
                        return Err(StoreError::AlreadyFinished {
                            node,
                            at: tx.finished_at(node)?.unwrap_or_default(),
                        });
                    }
                    None => return Err(StoreError::NotFound(node)),
                }
                tx.add_attributes(node, "mac", &values)
            },
            |_, _| {},
        )
        .await
    }

    async fn transition(&self, node: NodeId, from: State, to: State) -> Result<Status, StoreError> {
        self.write(
            "change a state",
            move |tx| {
                let actual = tx.state(node)?;
                if actual != Some(from) || from.is_final() || to.is_final() {
                    return Err(StoreError::StateChanged {
                        node,
                        expected: Some(from),
                        actual,
                    });
                }
                tx.set_state(node, to)?;
                tx.status(node)?.ok_or(StoreError::NotFound(node))
            },
            |m, s| {
                m.insert(s.node, s.clone());
            },
        )
        .await
    }

    async fn finish(
        &self,
        node: NodeId,
        from: State,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<Ended, StoreError> {
        let error = error.map(str::to_owned);
        self.write(
            "record an ending",
            move |tx| {
                let actual = tx.state(node)?;
                if actual != Some(from) || from.is_final() {
                    return Err(StoreError::StateChanged {
                        node,
                        expected: Some(from),
                        actual,
                    });
                }
                let macs = tx.macs(node)?;
                tx.end(node, error.as_deref(), at)?;
                let status = tx.status(node)?.ok_or(StoreError::NotFound(node))?;
                Ok(Ended { status, macs })
            },
            |m, e| {
                m.insert(e.status.node, e.status.clone());
            },
        )
        .await
    }

    async fn get(&self, node: NodeId) -> Result<Status, StoreError> {
        Self::current(&self.statuses(), node).ok_or(StoreError::NotFound(node))
    }

    async fn find(&self, key: &LookupKey) -> Result<Status, StoreError> {
        let key = key.clone();
        self.read("look a node up", move |tx| tx.find(&key)).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Status>, StoreError> {
        let m = self.statuses();
        let mut all: Vec<&Status> = m
            .values()
            .filter(|s| query.states.is_empty() || query.states.contains(&s.state))
            .collect();
        // Newest first; the UUID breaks ties so that a marker is exact.
        all.sort_by_key(|s| std::cmp::Reverse((s.started_at, s.node)));
        let skip = match query.marker {
            None => 0,
            Some(marker) => {
                let Some(pos) = all.iter().position(|s| s.node == marker) else {
                    return Err(StoreError::NotFound(marker));
                };
                pos + 1
            }
        };
        Ok(all.into_iter().skip(skip).take(query.limit).cloned().collect())
    }

    async fn in_state(&self, state: State) -> Result<Vec<Status>, StoreError> {
        let m = self.statuses();
        Ok(m.values()
            .filter(|s| s.state == state && !s.finished())
            .cloned()
            .collect())
    }

    async fn started_before(&self, t: Timestamp) -> Result<Vec<Status>, StoreError> {
        let m = self.statuses();
        Ok(m.values()
            .filter(|s| !s.finished() && s.started_at < t)
            .cloned()
            .collect())
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        self.write(
            "purge old statuses",
            move |tx| tx.purge(finished_before),
            move |m, _| m.retain(|_, s| s.finished_at.is_none_or(|f| f >= finished_before)),
        )
        .await
    }

    async fn active_macs(&self) -> Result<HashSet<MacAddr>, StoreError> {
        self.read("list active MACs", |tx| tx.all_macs()).await
    }

    async fn macs(&self, node: NodeId) -> Result<Vec<MacAddr>, StoreError> {
        self.read("list a node's MACs", move |tx| tx.macs(node)).await
    }

    async fn options(&self, node: NodeId) -> Result<Options, StoreError> {
        self.read("read options", move |tx| tx.options(node)).await
    }

    async fn put_data(&self, node: NodeId, kind: DataKind, data: &Value) -> Result<(), StoreError> {
        let text = data.to_string();
        if text.len() > MAX_DATA_BYTES {
            return Err(StoreError::DataTooLarge {
                node,
                size: text.len(),
            });
        }
        self.write(
            "store introspection data",
            move |tx| tx.put_data(node, kind, &text),
            |_, _| {},
        )
        .await
    }

    async fn get_data(&self, node: NodeId, kind: DataKind) -> Result<Option<Value>, StoreError> {
        self.read("read introspection data", move |tx| tx.get_data(node, kind))
            .await
    }

    async fn count_active(&self) -> Result<u64, StoreError> {
        Ok(self.statuses().values().filter(|s| !s.finished()).count() as u64)
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.blocking("check the file", move || {
            schema::writable(&path).map_err(|reason| StoreError::Unwritable {
                location: path.display().to_string(),
                reason,
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("answer a query", |tx| tx.ping()).await
    }
}

impl SqliteStore {
    /// Runs raw SQL (tests that edit the file behind the store's back),
    /// then reloads the in-memory statuses.
    #[doc(hidden)]
    pub async fn execute_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        let statuses = self.statuses.clone();
        self.read("run test SQL", move |tx| {
            tx.tx
                .execute_batch(&sql)
                .map_err(|e| backend("run test SQL", tx.path, e))?;
            let all = rows::all_statuses(tx.tx).map_err(|e| backend("read statuses", tx.path, e))?;
            *statuses
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = all;
            Ok(())
        })
        .await
    }

    /// Every status as the file has it (tests compare it with memory).
    #[doc(hidden)]
    pub async fn file_statuses_for_tests(&self) -> Result<HashMap<NodeId, Status>, StoreError> {
        self.read("read statuses", |tx| {
            rows::all_statuses(tx.tx).map_err(|e| backend("read statuses", tx.path, e))
        })
        .await
    }

    /// Every status as memory has it.
    #[doc(hidden)]
    pub fn memory_statuses_for_tests(&self) -> HashMap<NodeId, Status> {
        self.statuses().clone()
    }
}
