//! The node cache: nodes under introspection, their lookup attributes (BMC
//! address, MACs) and options, in one SQLite file, so that statuses
//! survive restarts. Semantics and messages follow discoverd 1.0 (spec §6).
//!
//! SQLite calls are blocking; every operation runs on the blocking pool
//! (`spawn_blocking`) with one connection behind a mutex, so the async
//! runtime never waits on the disk. The `nodes` table is also mirrored in
//! memory, updated under that mutex after each commit, so a status read
//! (the API's hottest path) touches neither the disk nor the pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Schema migrations, applied in order; `PRAGMA user_version` holds how
/// many ran. Never edit one that shipped: add another.
const MIGRATIONS: &[&str] = &[
    // 1: discoverd 1.0's schema, plus a state column for inspector-style
    // status and an index for per-node attribute deletes.
    "CREATE TABLE IF NOT EXISTS nodes (uuid TEXT PRIMARY KEY, started_at REAL, finished_at REAL, error TEXT);
     CREATE TABLE IF NOT EXISTS attributes (name TEXT, value TEXT, uuid TEXT, PRIMARY KEY (name, value));
     CREATE TABLE IF NOT EXISTS options (uuid TEXT, name TEXT, value TEXT, PRIMARY KEY (uuid, name));
     ALTER TABLE nodes ADD COLUMN state TEXT NOT NULL DEFAULT 'starting';
     CREATE INDEX IF NOT EXISTS attributes_uuid ON attributes (uuid);",
];

/// A cached node's status.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub uuid: String,
    /// Epoch seconds.
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub error: Option<String>,
    /// `starting`, `waiting`, `processing`, `finished` or `error`.
    pub state: String,
}

impl NodeInfo {
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

/// Why a cache operation failed. The messages are discoverd 1.0's.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("Could not find node {0} in cache")]
    NotFound(String),
    #[error("Could not find a node for attributes {0}")]
    NoMatch(String),
    #[error("Multiple matching nodes found for attributes {0}")]
    Ambiguous(String),
    #[error("Introspection for node {uuid} already finished on {at}")]
    AlreadyFinished { uuid: String, at: String },
    #[error("Some or all of {name}'s {values:?} are already on introspection")]
    Duplicate { name: String, values: Vec<String> },
    #[error("failed to use the node cache {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to prepare the node cache directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database cannot take writes (read-only file system, disk full,
    /// no permission): found before a write is attempted.
    #[error("the node cache {path} cannot be written: {reason}")]
    Unwritable { path: PathBuf, reason: String },
    #[error("node cache task failed: {0}")]
    Task(String),
}

/// Free space below which the cache counts as full: a start writes a few
/// pages, a WAL checkpoint more; well under this is a disk about to fail.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// The cache handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeCache {
    conn: Arc<Mutex<Connection>>,
    statuses: Statuses,
    path: PathBuf,
}

/// The in-memory copy of the `nodes` table: written only while the
/// connection's mutex is held and after the transaction committed, so it
/// changes in commit order and never shows an uncommitted status.
#[derive(Debug, Clone, Default)]
struct Statuses(Arc<RwLock<HashMap<String, NodeInfo>>>);

impl Statuses {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, NodeInfo>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, NodeInfo>> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every row of the `nodes` table, by uuid.
    fn load(conn: &Connection) -> rusqlite::Result<HashMap<String, NodeInfo>> {
        let mut q = conn.prepare(SELECT)?;
        let rows = q.query_map([], row)?;
        rows.map(|r| r.map(|info| (info.uuid.clone(), info))).collect()
    }

    /// Mirrors `UPDATE nodes SET finished_at, error, state WHERE uuid`.
    fn finish(&self, uuid: &str, at: f64, error: Option<String>) {
        if let Some(n) = self.write().get_mut(uuid) {
            n.state = if error.is_some() { "error" } else { "finished" }.into();
            n.finished_at = Some(at);
            n.error = error.filter(|e| !e.is_empty());
        }
    }
}

/// Seconds since the epoch, as 1.0 stored them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Epoch seconds as ISO 8601 UTC (`2026-11-25T05:19:46.767531`), the form
/// ironic-inspector returns; no time-zone library needed for UTC.
pub fn iso8601(ts: f64) -> String {
    let secs = ts.floor() as i64;
    let micros = ((ts - ts.floor()) * 1e6).round() as i64 % 1_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Python's repr of the attribute dict, as 1.0's messages show it.
fn describe(bmc: Option<&str>, macs: &[String]) -> String {
    let mut parts = Vec::new();
    if let Some(b) = bmc {
        parts.push(format!("'bmc_address': '{b}'"));
    }
    if !macs.is_empty() {
        let list: Vec<String> = macs.iter().map(|m| format!("'{m}'")).collect();
        parts.push(format!("'mac': [{}]", list.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeInfo> {
    Ok(NodeInfo {
        uuid: r.get(0)?,
        started_at: r.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
        finished_at: r.get(2)?,
        error: r.get::<_, Option<String>>(3)?.filter(|e| !e.is_empty()),
        state: r.get(4)?,
    })
}

const SELECT: &str = "SELECT uuid, started_at, finished_at, error, state FROM nodes";

impl NodeCache {
    /// Opens (creating if needed) the cache at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, CacheError> {
        let path = path.to_owned();
        let p = path.clone();
        let (conn, statuses) = tokio::task::spawn_blocking(move || {
            let conn = open_sync(&p)?;
            let statuses = Statuses::load(&conn).map_err(|source| CacheError::Storage {
                path: p.clone(),
                source,
            })?;
            let statuses = Statuses(Arc::new(RwLock::new(statuses)));
            Ok::<_, CacheError>((conn, statuses))
        })
        .await
        .map_err(|e| CacheError::Task(e.to_string()))??;
        Ok(NodeCache {
            conn: Arc::new(Mutex::new(conn)),
            statuses,
            path,
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, CacheError> + Send + 'static,
    ) -> Result<T, CacheError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| CacheError::Task(e.to_string()))?
    }

    fn storage(&self) -> impl Fn(rusqlite::Error) -> CacheError + Send + Clone + 'static {
        let path = self.path.clone();
        move |source| CacheError::Storage {
            path: path.clone(),
            source,
        }
    }

    /// Starts caching `uuid` afresh: its old rows go, a new `nodes` row and
    /// one attribute row per value come, in one transaction. A BMC or MAC
    /// held by another active node is a [`CacheError::Duplicate`].
    pub async fn add_node(
        &self,
        uuid: &str,
        bmc: Option<String>,
        macs: Vec<String>,
    ) -> Result<NodeInfo, CacheError> {
        let uuid = uuid.to_owned();
        let st = self.storage();
        let statuses = self.statuses.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(&st)?;
            for table in ["nodes", "attributes", "options"] {
                tx.execute(&format!("DELETE FROM {table} WHERE uuid = ?1"), [&uuid])
                    .map_err(&st)?;
            }
            let started = now();
            tx.execute(
                "INSERT INTO nodes (uuid, started_at, state) VALUES (?1, ?2, 'starting')",
                params![uuid, started],
            )
            .map_err(&st)?;
            let attrs: Vec<(&str, Vec<String>)> =
                vec![("bmc_address", bmc.into_iter().collect()), ("mac", macs)];
            for (name, values) in attrs {
                for v in &values {
                    let r = tx.execute(
                        "INSERT INTO attributes (name, value, uuid) VALUES (?1, ?2, ?3)",
                        params![name, v, uuid],
                    );
                    if let Err(rusqlite::Error::SqliteFailure(e, _)) = &r
                        && e.code == rusqlite::ErrorCode::ConstraintViolation
                    {
                        return Err(CacheError::Duplicate {
                            name: name.to_owned(),
                            values: values.clone(),
                        });
                    }
                    r.map_err(&st)?;
                }
            }
            tx.commit().map_err(&st)?;
            let info = NodeInfo {
                uuid,
                started_at: started,
                finished_at: None,
                error: None,
                state: "starting".into(),
            };
            statuses.write().insert(info.uuid.clone(), info.clone());
            Ok(info)
        })
        .await
    }

    /// The cached status of `uuid`, from memory (see the module docs).
    pub async fn get_node(&self, uuid: &str) -> Result<NodeInfo, CacheError> {
        self.statuses
            .read()
            .get(uuid)
            .cloned()
            .ok_or_else(|| CacheError::NotFound(uuid.to_owned()))
    }

    /// Sets the inspector-style state of an unfinished node.
    pub async fn set_state(&self, uuid: &str, state: &'static str) -> Result<(), CacheError> {
        self.change_state(uuid, None, state).await.map(drop)
    }

    /// Moves an unfinished node from state `from` to `to`; a node in any
    /// other state is left alone (a ramdisk report that raced ahead has
    /// already moved it on). Returns whether it moved.
    pub async fn advance(
        &self,
        uuid: &str,
        from: &'static str,
        to: &'static str,
    ) -> Result<bool, CacheError> {
        self.change_state(uuid, Some(from), to).await
    }

    /// `to` for an unfinished node (in state `from`, when given); the
    /// in-memory copy follows what the file did.
    async fn change_state(
        &self,
        uuid: &str,
        from: Option<&'static str>,
        to: &'static str,
    ) -> Result<bool, CacheError> {
        let uuid = uuid.to_owned();
        let st = self.storage();
        let statuses = self.statuses.clone();
        self.with(move |c| {
            let moved = c
                .execute(
                    "UPDATE nodes SET state = ?3 WHERE uuid = ?1 AND finished_at IS NULL \
                     AND (?2 IS NULL OR state = ?2)",
                    params![uuid, from, to],
                )
                .map_err(&st)?
                > 0;
            if moved && let Some(n) = statuses.write().get_mut(&uuid) {
                n.state = to.into();
            }
            Ok(moved)
        })
        .await
    }

    /// Finds the one active node matching the BMC address or any MAC:
    /// exact, case-sensitive, the union over all attributes (spec §6).
    pub async fn find_node(&self, bmc: Option<String>, macs: Vec<String>) -> Result<NodeInfo, CacheError> {
        let st = self.storage();
        self.with(move |c| {
            let bmc = bmc.filter(|b| !b.is_empty());
            let described = describe(bmc.as_deref(), &macs);
            let mut found = std::collections::BTreeSet::new();
            let mut q = c
                .prepare_cached("SELECT DISTINCT uuid FROM attributes WHERE name = ?1 AND value = ?2")
                .map_err(&st)?;
            let lookups = bmc
                .iter()
                .map(|b| ("bmc_address", b))
                .chain(macs.iter().map(|m| ("mac", m)));
            for (name, value) in lookups {
                let uuids = q
                    .query_map(params![name, value], |r| r.get::<_, String>(0))
                    .map_err(&st)?;
                for u in uuids {
                    found.insert(u.map_err(&st)?);
                }
            }
            drop(q);
            let uuid = match found.len() {
                0 => return Err(CacheError::NoMatch(described)),
                1 => found.into_iter().next().unwrap_or_default(),
                _ => return Err(CacheError::Ambiguous(described)),
            };
            let info = c
                .query_row(&format!("{SELECT} WHERE uuid = ?1"), [&uuid], row)
                .optional()
                .map_err(&st)?
                .ok_or_else(|| CacheError::NoMatch(described.clone()))?;
            if let Some(at) = info.finished_at {
                return Err(CacheError::AlreadyFinished {
                    uuid: info.uuid,
                    at: iso8601(at),
                });
            }
            Ok(info)
        })
        .await
    }

    /// Every MAC of every active node.
    pub async fn active_macs(&self) -> Result<HashSet<String>, CacheError> {
        let st = self.storage();
        self.with(move |c| {
            let mut q = c
                .prepare_cached("SELECT value FROM attributes WHERE name = 'mac'")
                .map_err(&st)?;
            let rows = q.query_map([], |r| r.get::<_, String>(0)).map_err(&st)?;
            rows.collect::<Result<HashSet<_>, _>>().map_err(&st)
        })
        .await
    }

    /// The MACs recorded for `uuid` (empty once finished).
    pub async fn node_macs(&self, uuid: &str) -> Result<Vec<String>, CacheError> {
        let uuid = uuid.to_owned();
        let st = self.storage();
        self.with(move |c| {
            let mut q = c
                .prepare_cached(
                    "SELECT value FROM attributes WHERE name = 'mac' AND uuid = ?1 ORDER BY value",
                )
                .map_err(&st)?;
            let rows = q.query_map([&uuid], |r| r.get::<_, String>(0)).map_err(&st)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(&st)
        })
        .await
    }

    /// Stores an option (JSON) for `uuid`.
    pub async fn set_option(&self, uuid: &str, name: &str, value: &Value) -> Result<(), CacheError> {
        let (uuid, name, value) = (uuid.to_owned(), name.to_owned(), value.to_string());
        let st = self.storage();
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO options (uuid, name, value) VALUES (?1, ?2, ?3)",
                params![uuid, name, value],
            )
            .map_err(&st)?;
            Ok(())
        })
        .await
    }

    /// All options of `uuid`, decoded; undecodable ones are skipped.
    pub async fn options(&self, uuid: &str) -> Result<BTreeMap<String, Value>, CacheError> {
        let uuid = uuid.to_owned();
        let st = self.storage();
        self.with(move |c| {
            let mut q = c
                .prepare_cached("SELECT name, value FROM options WHERE uuid = ?1")
                .map_err(&st)?;
            let rows = q
                .query_map([&uuid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(&st)?;
            let mut out = BTreeMap::new();
            for r in rows {
                let (k, v) = r.map_err(&st)?;
                if let Ok(v) = serde_json::from_str(&v) {
                    out.insert(k, v);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Marks `uuid` finished (with an error or not) and forgets its
    /// attributes and options, as 1.0 did. Returns the MACs it held.
    pub async fn finished(&self, uuid: &str, error: Option<String>) -> Result<Vec<String>, CacheError> {
        let uuid = uuid.to_owned();
        let st = self.storage();
        let statuses = self.statuses.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(&st)?;
            let macs = {
                let mut q = tx
                    .prepare_cached("SELECT value FROM attributes WHERE name = 'mac' AND uuid = ?1")
                    .map_err(&st)?;
                let rows = q.query_map([&uuid], |r| r.get::<_, String>(0)).map_err(&st)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(&st)?
            };
            let state = if error.is_some() { "error" } else { "finished" };
            let at = now();
            tx.execute(
                "UPDATE nodes SET finished_at = ?2, error = ?3, state = ?4 WHERE uuid = ?1",
                params![uuid, at, error, state],
            )
            .map_err(&st)?;
            tx.execute("DELETE FROM attributes WHERE uuid = ?1", [&uuid])
                .map_err(&st)?;
            tx.execute("DELETE FROM options WHERE uuid = ?1", [&uuid])
                .map_err(&st)?;
            tx.commit().map_err(&st)?;
            statuses.finish(&uuid, at, error);
            Ok(macs)
        })
        .await
    }

    /// Purges statuses older than `keep` and times out nodes started more
    /// than `timeout` ago (spec §6 `clean_up`). Returns the timed-out uuids
    /// and the MACs they held.
    pub async fn clean_up(
        &self,
        timeout: Option<Duration>,
        keep: Duration,
    ) -> Result<(Vec<String>, Vec<String>), CacheError> {
        let st = self.storage();
        let statuses = self.statuses.clone();
        self.with(move |c| {
            let t = now();
            let purge_before = t - keep.as_secs_f64();
            let purge = |statuses: &Statuses| {
                statuses
                    .write()
                    .retain(|_, n| n.finished_at.is_none_or(|f| f >= purge_before));
            };
            let tx = c.transaction().map_err(&st)?;
            tx.execute("DELETE FROM nodes WHERE finished_at < ?1", [purge_before]).map_err(&st)?;
            let Some(timeout) = timeout else {
                tx.commit().map_err(&st)?;
                purge(&statuses);
                return Ok((Vec::new(), Vec::new()));
            };
            let limit = t - timeout.as_secs_f64();
            let uuids: Vec<String> = {
                let mut q = tx
                    .prepare("SELECT uuid FROM nodes WHERE started_at < ?1 AND finished_at IS NULL")
                    .map_err(&st)?;
                let rows = q.query_map([limit], |r| r.get::<_, String>(0)).map_err(&st)?;
                rows.collect::<Result<_, _>>().map_err(&st)?
            };
            let mut macs = Vec::new();
            for u in &uuids {
                let mut q = tx
                    .prepare_cached("SELECT value FROM attributes WHERE name = 'mac' AND uuid = ?1")
                    .map_err(&st)?;
                let rows = q.query_map([u], |r| r.get::<_, String>(0)).map_err(&st)?;
                for m in rows {
                    macs.push(m.map_err(&st)?);
                }
                drop(q);
                tx.execute(
                    "UPDATE nodes SET finished_at = ?2, error = 'Introspection timeout', state = 'error' WHERE uuid = ?1",
                    params![u, t],
                )
                .map_err(&st)?;
                tx.execute("DELETE FROM attributes WHERE uuid = ?1", [u]).map_err(&st)?;
                tx.execute("DELETE FROM options WHERE uuid = ?1", [u]).map_err(&st)?;
            }
            tx.commit().map_err(&st)?;
            purge(&statuses);
            for u in &uuids {
                statuses.finish(u, t, Some("Introspection timeout".into()));
            }
            Ok((uuids, macs))
        })
        .await
    }

    /// How many nodes are under introspection.
    pub async fn count_active(&self) -> Result<u64, CacheError> {
        let st = self.storage();
        self.with(move |c| {
            c.query_row("SELECT count(*) FROM nodes WHERE finished_at IS NULL", [], |r| {
                r.get(0)
            })
            .map_err(&st)
        })
        .await
    }

    /// Checks that a write can succeed before one is promised: the file
    /// system is writable and has [`MIN_FREE_BYTES`] free, and the file
    /// and its directory (WAL and shared-memory files) are writable by us.
    pub async fn check_writable(&self) -> Result<(), CacheError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || writable(&path))
            .await
            .map_err(|e| CacheError::Task(e.to_string()))?
    }

    /// Reloads the in-memory statuses from the file (tests that edit the
    /// file behind the cache's back).
    #[cfg(test)]
    async fn reload_statuses(&self) -> Result<(), CacheError> {
        let st = self.storage();
        let statuses = self.statuses.clone();
        self.with(move |c| {
            *statuses.write() = Statuses::load(c).map_err(&st)?;
            Ok(())
        })
        .await
    }

    /// Checks the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), CacheError> {
        let st = self.storage();
        self.with(move |c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(&st))
            .await
    }
}

fn writable(path: &Path) -> Result<(), CacheError> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    use nix::unistd::{AccessFlags, access};
    let unwritable = |reason: String| CacheError::Unwritable {
        path: path.to_owned(),
        reason,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fs = statvfs(dir).map_err(|e| unwritable(format!("statvfs of {}: {e}", dir.display())))?;
    if fs.flags().contains(FsFlags::ST_RDONLY) {
        return Err(unwritable("read-only file system".into()));
    }
    let free = fs.blocks_available().saturating_mul(fs.fragment_size());
    if free < MIN_FREE_BYTES {
        return Err(unwritable(format!(
            "disk full: {free} bytes free, at least {MIN_FREE_BYTES} needed"
        )));
    }
    // SQLite creates the -wal and -shm files with the database file's
    // mode: a file once read-only leaves them read-only after it is fixed.
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let (wal, shm) = (side("-wal"), side("-shm"));
    for p in [path, wal.as_path(), shm.as_path(), dir] {
        if p != dir && !p.exists() {
            continue;
        }
        access(p, AccessFlags::W_OK).map_err(|e| unwritable(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

fn open_sync(path: &Path) -> Result<Connection, CacheError> {
    let storage = |source| CacheError::Storage {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| CacheError::Directory {
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut conn = Connection::open(path).map_err(storage)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(storage)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(storage)?;
    migrate(&mut conn).map_err(storage)?;
    // SQLite falls back to read-only when the file is not writable: say so
    // now, not at the first refused start.
    let read_only = if conn.is_readonly(rusqlite::MAIN_DB).map_err(storage)? {
        Some("the file is read-only".to_owned())
    } else {
        writable(path).err().map(|e| e.to_string())
    };
    if let Some(why) = read_only {
        tracing::warn!(
            path = %path.display(),
            "the node cache cannot be written ({why}): statuses are served, starts and ramdisk reports \
             are refused with 503 until it is writable and the daemon restarted"
        );
    }
    Ok(conn)
}

/// Applies the migrations not yet recorded in `user_version`.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "node cache schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cache() -> Result<(tempfile::TempDir, NodeCache), CacheError> {
        let dir = tempfile::tempdir().map_err(|e| CacheError::Task(e.to_string()))?;
        let c = NodeCache::open(&dir.path().join("sub/discoverd.sqlite")).await?;
        Ok((dir, c))
    }

    #[tokio::test]
    async fn migrations_run_from_an_empty_file_and_are_idempotent() -> Result<(), CacheError> {
        let (dir, _c) = cache().await?;
        let path = dir.path().join("sub/discoverd.sqlite");
        let again = NodeCache::open(&path).await?;
        let version: usize = again
            .with(|c| {
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(|e| CacheError::Task(e.to_string()))
            })
            .await?;
        assert_eq!(version, MIGRATIONS.len());
        let mode: String = again
            .with(|c| {
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(|e| CacheError::Task(e.to_string()))
            })
            .await?;
        assert_eq!(mode, "wal");
        Ok(())
    }

    #[tokio::test]
    async fn add_find_finish_cycle() -> Result<(), CacheError> {
        let (_d, c) = cache().await?;
        c.add_node("n1", Some("1.2.3.4".into()), vec!["11:22:33:44:55:66".into()])
            .await?;
        assert_eq!(c.find_node(Some("1.2.3.4".into()), vec![]).await?.uuid, "n1");
        assert_eq!(
            c.find_node(None, vec!["11:22:33:44:55:66".into()]).await?.uuid,
            "n1"
        );
        // Case-sensitive, like 1.0.
        c.add_node("n9", None, vec!["aa:bb:cc:dd:ee:ff".into()]).await?;
        assert!(matches!(
            c.find_node(None, vec!["AA:BB:CC:DD:EE:FF".into()]).await,
            Err(CacheError::NoMatch(_))
        ));
        c.finished("n9", None).await?;
        assert_eq!(
            c.active_macs().await?,
            HashSet::from(["11:22:33:44:55:66".to_owned()])
        );
        let macs = c.finished("n1", Some("boom".into())).await?;
        assert_eq!(macs, vec!["11:22:33:44:55:66"]);
        let n = c.get_node("n1").await?;
        assert!(n.finished());
        assert_eq!((n.error.as_deref(), n.state.as_str()), (Some("boom"), "error"));
        assert!(c.active_macs().await?.is_empty());
        // Attributes are gone, so a repeated callback is "not found", as in 1.0.
        let e = c
            .find_node(Some("1.2.3.4".into()), vec![])
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Could not find a node for attributes {'bmc_address': '1.2.3.4'}")
        );
        Ok(())
    }

    #[tokio::test]
    async fn duplicates_and_ambiguity_use_1_0_messages() -> Result<(), CacheError> {
        let (_d, c) = cache().await?;
        c.add_node("n1", Some("1.2.3.4".into()), vec!["aa".into()])
            .await?;
        let e = c
            .add_node("n2", None, vec!["bb".into(), "aa".into()])
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Some or all of mac's [\"bb\", \"aa\"] are already on introspection")
        );
        // The failed add rolled back: n2 is not cached, bb is free.
        assert!(matches!(c.get_node("n2").await, Err(CacheError::NotFound(_))));
        c.add_node("n2", None, vec!["bb".into()]).await?;
        let e = c
            .find_node(Some("1.2.3.4".into()), vec!["bb".into()])
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Multiple matching nodes found for attributes {'bmc_address': '1.2.3.4', 'mac': ['bb']}")
        );
        Ok(())
    }

    #[tokio::test]
    async fn finished_node_found_by_stale_attribute_reports_already_finished() -> Result<(), CacheError> {
        let (_d, c) = cache().await?;
        c.add_node("n1", None, vec!["aa".into()]).await?;
        // Simulate an attribute left behind by a crash between updates.
        c.with(|c| {
            c.execute("UPDATE nodes SET finished_at = 0 WHERE uuid = 'n1'", [])
                .map_err(|e| CacheError::Task(e.to_string()))
        })
        .await?;
        let e = c
            .find_node(None, vec!["aa".into()])
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Introspection for node n1 already finished on 1970-01-01T00:00:00.000000")
        );
        Ok(())
    }

    /// Every row of `nodes`, read from the file.
    async fn table(c: &NodeCache) -> Result<BTreeMap<String, NodeInfo>, CacheError> {
        c.with(|c| {
            let mut q = c.prepare(SELECT).map_err(|e| CacheError::Task(e.to_string()))?;
            let rows = q
                .query_map([], row)
                .map_err(|e| CacheError::Task(e.to_string()))?;
            rows.map(|r| r.map(|n| (n.uuid.clone(), n)))
                .collect::<Result<_, _>>()
                .map_err(|e| CacheError::Task(e.to_string()))
        })
        .await
    }

    async fn assert_mirrored(c: &NodeCache, step: &str) -> Result<(), CacheError> {
        let file = table(c).await?;
        let memory: BTreeMap<String, NodeInfo> = c
            .statuses
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(memory, file, "after {step}");
        Ok(())
    }

    #[tokio::test]
    async fn statuses_in_memory_match_the_file_after_every_kind_of_write() -> Result<(), CacheError> {
        let (dir, c) = cache().await?;
        c.add_node("a", Some("1.2.3.4".into()), vec!["aa".into()]).await?;
        c.add_node("b", None, vec!["bb".into()]).await?;
        c.add_node("c", None, vec![]).await?;
        assert_mirrored(&c, "add_node").await?;
        c.set_state("a", "waiting").await?;
        c.set_state("nobody", "waiting").await?;
        assert_mirrored(&c, "set_state").await?;
        assert!(c.advance("a", "waiting", "processing").await?);
        assert!(
            !c.advance("a", "starting", "waiting").await?,
            "a processing node went back to waiting"
        );
        assert_eq!(c.get_node("a").await?.state, "processing");
        assert_mirrored(&c, "advance").await?;
        c.finished("b", Some("boom".into())).await?;
        c.finished("c", Some(String::new())).await?;
        c.finished("nobody", None).await?;
        assert_mirrored(&c, "finished").await?;
        // A finished node's state no longer moves.
        c.set_state("b", "processing").await?;
        assert_mirrored(&c, "set_state after finish").await?;
        // Restarting "b" replaces its row.
        c.add_node("b", None, vec!["bb".into()]).await?;
        assert_mirrored(&c, "add_node again").await?;
        c.with(|c| {
            c.execute_batch(
                "UPDATE nodes SET started_at = started_at - 100 WHERE uuid = 'a';
                 UPDATE nodes SET finished_at = finished_at - 1000 WHERE uuid = 'c';",
            )
            .map_err(|e| CacheError::Task(e.to_string()))
        })
        .await?;
        c.reload_statuses().await?;
        c.clean_up(Some(Duration::from_secs(50)), Duration::from_secs(500))
            .await?;
        assert_mirrored(&c, "clean_up").await?;
        assert_eq!(c.get_node("a").await?.state, "error");
        // And a reopened cache starts from the same statuses.
        drop(c);
        let c2 = NodeCache::open(&dir.path().join("sub/discoverd.sqlite")).await?;
        assert_mirrored(&c2, "reopening").await?;
        assert_eq!(c2.statuses.read().len(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn clean_up_times_out_and_purges() -> Result<(), CacheError> {
        let (_d, c) = cache().await?;
        c.add_node("old", None, vec!["aa".into()]).await?;
        c.add_node("new", None, vec!["bb".into()]).await?;
        c.add_node("done", None, vec![]).await?;
        c.finished("done", None).await?;
        c.with(|c| {
            c.execute(
                "UPDATE nodes SET started_at = started_at - 100 WHERE uuid = 'old'",
                [],
            )
            .and_then(|_| {
                c.execute(
                    "UPDATE nodes SET finished_at = finished_at - 1000 WHERE uuid = 'done'",
                    [],
                )
            })
            .map_err(|e| CacheError::Task(e.to_string()))
        })
        .await?;
        c.reload_statuses().await?;
        // Timeout disabled: nothing times out (purging still runs here; the
        // caller skips clean-up entirely when the timeout is disabled, as 1.0).
        let (timed_out, _) = c.clean_up(None, Duration::from_secs(10_000)).await?;
        assert!(timed_out.is_empty());
        let (timed_out, macs) = c
            .clean_up(Some(Duration::from_secs(50)), Duration::from_secs(500))
            .await?;
        assert_eq!((timed_out, macs), (vec!["old".to_owned()], vec!["aa".to_owned()]));
        let old = c.get_node("old").await?;
        assert_eq!(old.error.as_deref(), Some("Introspection timeout"));
        assert!(matches!(c.get_node("done").await, Err(CacheError::NotFound(_))));
        assert!(!c.get_node("new").await?.finished());
        Ok(())
    }

    #[tokio::test]
    async fn status_survives_reopening_the_file() -> Result<(), CacheError> {
        let (dir, c) = cache().await?;
        c.add_node("n1", None, vec!["aa".into()]).await?;
        c.set_option("n1", "setup_ipmi_credentials", &Value::Bool(true))
            .await?;
        drop(c);
        let c = NodeCache::open(&dir.path().join("sub/discoverd.sqlite")).await?;
        assert!(!c.get_node("n1").await?.finished());
        assert_eq!(
            c.options("n1").await?.get("setup_ipmi_credentials"),
            Some(&Value::Bool(true))
        );
        assert_eq!(c.node_macs("n1").await?, vec!["aa"]);
        Ok(())
    }

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000000");
        assert_eq!(iso8601(1_422_976_763.5), "2015-02-03T15:19:23.500000");
        assert_eq!(iso8601(1_795_583_986.0), "2026-11-25T05:19:46.000000");
    }

    #[tokio::test]
    async fn read_only_file_gives_a_typed_error() -> Result<(), CacheError> {
        let (dir, c) = cache().await?;
        drop(c);
        let path = dir.path().join("sub/discoverd.sqlite");
        let ro = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| CacheError::Task(e.to_string()))?;
        let c = NodeCache {
            conn: Arc::new(Mutex::new(ro)),
            statuses: Statuses::default(),
            path: path.clone(),
        };
        let e = c.add_node("n1", None, vec![]).await;
        assert!(matches!(e, Err(CacheError::Storage { .. })), "{e:?}");
        Ok(())
    }
}
