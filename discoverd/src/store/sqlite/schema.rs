//! The SQLite file: opening it (WAL), its numbered migrations, and the
//! check that a write can succeed before one is promised.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

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
    // 2: stored introspection data (raw and processed), purged with the
    // statuses; an index for listing newest first.
    "CREATE TABLE IF NOT EXISTS data (uuid TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
                                      PRIMARY KEY (uuid, kind));
     CREATE INDEX IF NOT EXISTS nodes_started_at ON nodes (started_at);",
    // 3: introspection rules (ironic-inspector's /v1/rules), in creation
    // order: `seq` never reuses a deleted rule's number.
    "CREATE TABLE IF NOT EXISTS rules (seq INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,
                                       body TEXT NOT NULL);",
];

/// How many migrations this build knows.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Free space below which the file system counts as full: a start writes
/// a few pages, a WAL checkpoint more.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Opens (creating it and its directory if needed) and migrates the file.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| OpenError::Directory {
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&mut conn)?;
    // SQLite falls back to read-only when the file is not writable: say so
    // now, not at the first refused start.
    let read_only = if conn.is_readonly(rusqlite::MAIN_DB)? {
        Some("the file is read-only".to_owned())
    } else {
        writable(path).err()
    };
    if let Some(why) = read_only {
        tracing::warn!(
            path = %path.display(),
            "the node store cannot be written ({why}): statuses are served, starts and ramdisk reports \
             are refused with 503 until it is writable and the daemon restarted"
        );
    }
    Ok(conn)
}

/// Why the file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("failed to create the directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Applies the migrations not yet recorded in `user_version`.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "node store schema migrated");
    }
    Ok(())
}

/// Why a write would fail now, if it would: the file system is read-only
/// or nearly full, or the file, its WAL and shared-memory files or its
/// directory are not writable by us.
pub fn writable(path: &Path) -> Result<(), String> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    use nix::unistd::{AccessFlags, access};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fs = statvfs(dir).map_err(|e| format!("statvfs of {}: {e}", dir.display()))?;
    if fs.flags().contains(FsFlags::ST_RDONLY) {
        return Err("read-only file system".into());
    }
    let free = fs.blocks_available().saturating_mul(fs.fragment_size());
    if free < MIN_FREE_BYTES {
        return Err(format!(
            "disk full: {free} bytes free, at least {MIN_FREE_BYTES} needed"
        ));
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
        access(p, AccessFlags::W_OK).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_from_an_empty_file_and_are_idempotent() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub/discoverd.sqlite");
        drop(open(&path)?);
        let again = open(&path)?;
        let version: usize = again.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = again.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        assert_eq!(mode, "wal");
        Ok(())
    }

    #[test]
    fn a_version_1_file_is_migrated_and_keeps_its_rows() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&path)?;
            c.execute_batch(MIGRATIONS[0])?;
            c.pragma_update(None, "user_version", 1)?;
            c.execute(
                "INSERT INTO nodes (uuid, started_at, state) VALUES ('n', 1.5, 'waiting')",
                [],
            )?;
        }
        let c = open(&path)?;
        let state: String = c.query_row("SELECT state FROM nodes WHERE uuid = 'n'", [], |r| r.get(0))?;
        assert_eq!(state, "waiting");
        c.execute(
            "INSERT INTO data (uuid, kind, value) VALUES ('n', 'raw', '{}')",
            [],
        )?;
        Ok(())
    }
}
