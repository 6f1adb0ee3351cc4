//! The embedded [`NodeStore`]: one SQLite file (WAL), so that statuses
//! survive restarts.
//!
//! SQLite calls block; every operation runs on the blocking pool with one
//! connection behind a mutex, so the async runtime never waits on the
//! disk. The `nodes` table is mirrored in memory, updated under that mutex
//! after each commit, so a status read (the API's hottest path) touches
//! neither the disk nor the pool and never shows an uncommitted status.

mod mirror;
mod rows;
mod rules;
pub mod schema;

use std::collections::HashSet;
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
use mirror::Mirror;
use rows::Tx;

/// The SQLite store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    mirror: Arc<RwLock<Mirror>>,
    path: PathBuf,
    /// Moved after every rule write commits (one daemon per file).
    rules_version: Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let p = path.clone();
        let location = path.display().to_string();
        let (conn, mirror) = tokio::task::spawn_blocking(move || {
            let conn = schema::open(&p).map_err(|e| backend("open", &p, e))?;
            let mirror = Mirror::load(&conn).map_err(|e| backend("read statuses", &p, e))?;
            Ok::<_, StoreError>((conn, mirror))
        })
        .await
        .map_err(|e| StoreError::Backend {
            action: "open",
            location,
            source: Box::new(e),
        })??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            mirror: Arc::new(RwLock::new(mirror)),
            path,
            rules_version: Arc::default(),
        })
    }

    fn mirror(&self) -> std::sync::RwLockReadGuard<'_, Mirror> {
        self.mirror
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
        mirror: impl FnOnce(&mut Mirror, &T) + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let copy = self.mirror.clone();
        let path = self.path.clone();
        self.blocking(action, move || {
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // IMMEDIATE: the write lock is taken at BEGIN, where the busy
            // timeout applies. A DEFERRED transaction that reads first and
            // then writes fails at once (SQLITE_BUSY) when another process
            // holds the file's write lock.
            let tx = guard
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| backend(action, &path, e))?;
            let out = f(&Tx { tx: &tx, path: &path })?;
            tx.commit().map_err(|e| backend(action, &path, e))?;
            let mut m = copy.write().unwrap_or_else(std::sync::PoisonError::into_inner);
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
    async fn record(
        &self,
        new: &NewIntrospection,
        expected: Option<State>,
        at: Timestamp,
        state: State,
    ) -> Result<Status, StoreError> {
        let new = new.clone();
        let bmc = new.bmc_address.clone();
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
                tx.insert_node(new.node, at, state)?;
                if let Some(bmc) = new.bmc_address.as_deref().filter(|b| !b.is_empty()) {
                    tx.add_attributes(new.node, "bmc_address", &[bmc.to_owned()])?;
                }
                for (name, value) in &new.options {
                    tx.set_option(new.node, name, value)?;
                }
                Ok(Status {
                    node: new.node,
                    state,
                    started_at: at,
                    finished_at: None,
                    error: None,
                })
            },
            move |m, s| {
                m.forget_attributes(s.node);
                if let Some(bmc) = bmc.filter(|b| !b.is_empty()) {
                    m.add_attributes(s.node, "bmc_address", &[bmc]);
                }
                m.statuses.insert(s.node, s.clone());
            },
        )
        .await
    }

    async fn add_macs(&self, node: NodeId, macs: &[MacAddr]) -> Result<(), StoreError> {
        let values: Vec<String> = macs.iter().map(MacAddr::to_string).collect();
        let mirrored = values.clone();
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
            move |m, _| m.add_attributes(node, "mac", &mirrored),
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
                m.statuses.insert(s.node, s.clone());
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
                m.forget_attributes(e.status.node);
                m.statuses.insert(e.status.node, e.status.clone());
            },
        )
        .await
    }

    async fn reopen(
        &self,
        node: NodeId,
        from: State,
        to: State,
        at: Timestamp,
    ) -> Result<Status, StoreError> {
        self.write(
            "reopen an introspection",
            move |tx| {
                let actual = tx.state(node)?;
                if actual != Some(from) || !from.is_final() || to.is_final() {
                    return Err(StoreError::StateChanged {
                        node,
                        expected: Some(from),
                        actual,
                    });
                }
                tx.reopen(node, to, at)?;
                tx.status(node)?.ok_or(StoreError::NotFound(node))
            },
            |m, s| {
                m.statuses.insert(s.node, s.clone());
            },
        )
        .await
    }

    async fn get(&self, node: NodeId) -> Result<Status, StoreError> {
        self.mirror()
            .statuses
            .get(&node)
            .cloned()
            .ok_or(StoreError::NotFound(node))
    }

    async fn find(&self, key: &LookupKey) -> Result<Status, StoreError> {
        self.mirror().find(key)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Status>, StoreError> {
        let m = self.mirror();
        let mut all: Vec<&Status> = m
            .statuses
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
        let m = self.mirror();
        Ok(m.statuses
            .values()
            .filter(|s| s.state == state && !s.finished())
            .cloned()
            .collect())
    }

    async fn started_before(&self, t: Timestamp) -> Result<Vec<Status>, StoreError> {
        let m = self.mirror();
        Ok(m.statuses
            .values()
            .filter(|s| !s.finished() && s.started_at < t)
            .cloned()
            .collect())
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        self.write(
            "purge old statuses",
            move |tx| tx.purge(finished_before),
            move |m, _| {
                m.statuses
                    .retain(|_, s| s.finished_at.is_none_or(|f| f >= finished_before))
            },
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
        Ok(self.mirror().statuses.values().filter(|s| !s.finished()).count() as u64)
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
    /// Whether the in-memory copy equals the file (statuses and lookup
    /// attributes); tests check it after every kind of write.
    #[doc(hidden)]
    pub async fn mirror_matches_file_for_tests(&self) -> Result<bool, StoreError> {
        let copy = self.mirror.clone();
        self.read("read statuses", move |tx| {
            let file = Mirror::load(tx.tx).map_err(|e| backend("read statuses", tx.path, e))?;
            Ok(file == *copy.read().unwrap_or_else(std::sync::PoisonError::into_inner))
        })
        .await
    }

    /// How many statuses memory holds.
    #[doc(hidden)]
    pub fn status_count_for_tests(&self) -> usize {
        self.mirror().statuses.len()
    }
}
