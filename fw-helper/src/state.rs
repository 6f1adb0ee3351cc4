//! The helper's state file: the last filter state the daemon gave it, so a
//! restarted helper puts back exactly that (and not an open filter) before
//! the daemon has reconnected.
//!
//! The file is opened once at start-up, while the helper may still be
//! root, and kept open: after dropping to `nobody` it could not create or
//! rename files in a root-owned directory. So a save rewrites the one open
//! file in place (truncate, write, fdatasync). A crash in the middle of a
//! save leaves a file that does not parse; a file that does not parse is
//! treated as no state, which starts the helper closed: the failure mode is
//! "drop DHCP", never "let it through".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use common::FilterState;
use serde::{Deserialize, Serialize};

/// A state file larger than this is not read: [`common::protocol::MAX_MACS`]
/// addresses take about 5 MiB as JSON.
pub const MAX_STATE_FILE_LEN: u64 = 16 * 1024 * 1024;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    /// `None` after a teardown: nothing to restore.
    state: Option<FilterState>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("failed to open the state file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the state file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("failed to write the state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The open state file.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    file: File,
}

impl StateFile {
    /// Opens (creating, mode 0600) the state file.
    pub fn open(path: &Path) -> Result<Self, StateFileError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StateFileError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(StateFile {
            path: path.to_owned(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state last saved; `Ok(None)` for an empty file or one saved
    /// after a teardown.
    pub fn load(&mut self) -> Result<Option<FilterState>, StateFileError> {
        let read_err = |message: String| StateFileError::Read {
            path: self.path.clone(),
            message,
        };
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| read_err(e.to_string()))?;
        let mut text = Vec::new();
        (&mut self.file)
            .take(MAX_STATE_FILE_LEN + 1)
            .read_to_end(&mut text)
            .map_err(|e| read_err(e.to_string()))?;
        if text.is_empty() {
            return Ok(None);
        }
        if text.len() as u64 > MAX_STATE_FILE_LEN {
            return Err(read_err(format!("larger than {MAX_STATE_FILE_LEN} bytes")));
        }
        let on_disk: OnDisk = serde_json::from_slice(&text).map_err(|e| read_err(e.to_string()))?;
        if on_disk.version != FORMAT_VERSION {
            return Err(read_err(format!(
                "format version {} (this helper reads {FORMAT_VERSION})",
                on_disk.version
            )));
        }
        Ok(on_disk.state)
    }

    /// Replaces the file's content with `state`, durably.
    pub fn save(&mut self, state: Option<&FilterState>) -> Result<(), StateFileError> {
        let write_err = |source: std::io::Error| StateFileError::Write {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_vec(&OnDisk {
            version: FORMAT_VERSION,
            state: state.cloned(),
        })
        .map_err(|e| write_err(std::io::Error::other(e)))?;
        self.file.set_len(0).map_err(write_err)?;
        self.file.seek(SeekFrom::Start(0)).map_err(write_err)?;
        self.file.write_all(&text).map_err(write_err)?;
        self.file.sync_data().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{FilterMode, InterfaceName, MacAddr};

    fn state(n: u8) -> FilterState {
        FilterState {
            interfaces: vec![InterfaceName::new("br0").unwrap_or_else(|e| panic!("{e}"))],
            mode: FilterMode::Deny,
            macs: (0..n).map(|i| MacAddr::new([2, 0, 0, 0, 0, i])).collect(),
        }
    }

    #[test]
    fn saves_replace_and_survive_a_reopen() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("state");
        let mut f = StateFile::open(&p)?;
        assert_eq!(f.load()?, None);
        f.save(Some(&state(9)))?;
        // A shorter state after a longer one leaves no tail behind.
        f.save(Some(&state(1)))?;
        drop(f);
        let mut f = StateFile::open(&p)?;
        assert_eq!(f.load()?, Some(state(1)));
        f.save(None)?;
        assert_eq!(f.load()?, None);
        Ok(())
    }

    #[test]
    fn a_torn_or_foreign_file_is_an_error_not_a_state() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("state");
        let mut f = StateFile::open(&p)?;
        f.save(Some(&state(3)))?;
        let full = std::fs::read(&p)?;
        std::fs::write(&p, &full[..full.len() / 2])?;
        assert!(f.load().is_err());
        std::fs::write(&p, br#"{"version": 7, "state": null}"#)?;
        assert!(f.load().is_err());
        Ok(())
    }
}
