//! An Apache htpasswd file for `auth_strategy = http_basic`: bcrypt
//! entries only, re-read when the file changes, and a verification that
//! costs the same whether or not the user exists.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// Largest htpasswd file read.
const MAX_HTPASSWD: u64 = 1024 * 1024;

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("failed to read htpasswd file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read htpasswd file {path}: larger than {MAX_HTPASSWD} bytes")]
    TooLarge { path: PathBuf },
}

#[derive(Debug)]
struct Loaded {
    /// (mtime, len) of the file the entries came from.
    stamp: Option<(SystemTime, u64)>,
    entries: Vec<(String, String)>,
    /// Verified against for unknown users, so that they cost as much as
    /// a wrong password: a bcrypt hash with the file's own cost.
    dummy: String,
    dummy_cost: u32,
}

/// The file and the bcrypt entries last read from it.
#[derive(Debug, Clone)]
pub struct Htpasswd {
    path: PathBuf,
    loaded: Arc<Mutex<Loaded>>,
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p))
}

fn cost_of(hash: &str) -> Option<u32> {
    hash.get(4..6).and_then(|c| c.parse().ok())
}

impl Htpasswd {
    /// Reads `path` once; an unreadable file at start-up is an error.
    pub fn open(path: &Path) -> Result<Self, HtpasswdError> {
        let h = Htpasswd {
            path: path.to_owned(),
            loaded: Arc::new(Mutex::new(Loaded {
                stamp: None,
                entries: Vec::new(),
                dummy: String::new(),
                dummy_cost: 0,
            })),
        };
        h.reload()?;
        Ok(h)
    }

    /// Re-reads the file when its mtime or size changed.
    fn reload(&self) -> Result<(), HtpasswdError> {
        let read_err = |source| HtpasswdError::Read {
            path: self.path.clone(),
            source,
        };
        let meta = std::fs::metadata(&self.path).map_err(read_err)?;
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        let mut l = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if l.stamp == Some(stamp) {
            return Ok(());
        }
        if meta.len() > MAX_HTPASSWD {
            return Err(HtpasswdError::TooLarge {
                path: self.path.clone(),
            });
        }
        let text = std::fs::read_to_string(&self.path).map_err(read_err)?;
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, hash)) if is_bcrypt(hash) => entries.push((user.to_owned(), hash.to_owned())),
                Some((user, _)) => tracing::warn!(
                    file = %self.path.display(), line = n + 1, %user,
                    "htpasswd entry is not bcrypt; ignored (create it with htpasswd -B)"
                ),
                None => {
                    tracing::warn!(file = %self.path.display(), line = n + 1, "malformed htpasswd line ignored")
                }
            }
        }
        let cost = entries
            .first()
            .and_then(|(_, h)| cost_of(h))
            .unwrap_or(bcrypt::DEFAULT_COST);
        if cost != l.dummy_cost {
            // Random, never told to anyone: nothing verifies against it.
            let secret = uuid::Uuid::new_v4().to_string();
            l.dummy = bcrypt::hash(secret, cost).unwrap_or_default();
            l.dummy_cost = cost;
        }
        tracing::info!(file = %self.path.display(), users = entries.len(), "htpasswd file loaded");
        l.entries = entries;
        l.stamp = Some(stamp);
        Ok(())
    }

    /// True when `user` is in the file with `password`. Blocking (bcrypt
    /// is deliberately slow): call it from `spawn_blocking`.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        // On error keep the last good copy: a half-written file must not
        // lock everyone out.
        if let Err(e) = self.reload() {
            tracing::error!("{e}");
        }
        let (known, hash) = {
            let l = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            match l.entries.iter().find(|(u, _)| u == user) {
                Some((_, h)) => (true, h.clone()),
                None => (false, l.dummy.clone()),
            }
        };
        // bcrypt compares the digests in constant time.
        let ok = bcrypt::verify(password, &hash).unwrap_or(false);
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_entries_verify_and_others_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("right", 4)?;
        std::fs::write(
            &path,
            format!(
                "# comment\nalice:{hash}\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncarol:$apr1$x$y\nnocolon\n"
            ),
        )?;
        let h = Htpasswd::open(&path)?;
        assert!(h.verify("alice", "right"));
        assert!(!h.verify("alice", "wrong"));
        assert!(!h.verify("bob", "password"), "SHA1 entries are refused");
        assert!(!h.verify("carol", "y"), "MD5 entries are refused");
        assert!(!h.verify("nobody", "right"));
        Ok(())
    }

    #[test]
    fn file_changes_are_picked_up_and_a_broken_file_keeps_the_last_copy()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, format!("alice:{}\n", bcrypt::hash("one", 4)?))?;
        let h = Htpasswd::open(&path)?;
        assert!(h.verify("alice", "one"));
        // A different size, so the change is seen even within one mtime tick.
        std::fs::write(&path, format!("alice:{}\n\n", bcrypt::hash("two", 4)?))?;
        assert!(h.verify("alice", "two"));
        assert!(!h.verify("alice", "one"));
        std::fs::remove_file(&path)?;
        assert!(h.verify("alice", "two"));
        Ok(())
    }
}
