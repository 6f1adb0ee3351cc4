//! Log set-up shared by both binaries (the `logging` feature): `tracing`
//! to stderr, text or JSON lines, `info` or `debug` by default.
//!
//! Colour escapes only when stderr is a terminal: a log file or a pipe
//! gets plain text. Under systemd, when stderr *is* the journal stream
//! (`JOURNAL_STREAM` names stderr's device and inode), events go to
//! journald natively instead (tracing-journald): one journal entry per
//! event with its fields as journal fields and the level as the syslog
//! priority (error 3, warn 4, info 5, debug 6, trace 7).
//!
//! `RUST_LOG` overrides the whole filter for targeted debugging
//! (`RUST_LOG=discoverd::ironic=trace`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. `quiet` lists directives for noisy
/// dependencies (`"hyper=warn"`). Safe to call once per process; a second
/// call says so on stderr.
pub fn init(debug: bool, json: bool, quiet: &[&str]) {
    let default = if debug { "debug" } else { "info" };
    let directives = std::iter::once(default)
        .chain(quiet.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let journald = if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => Some(layer),
            Err(e) => {
                eprintln!("cannot log to journald natively ({e}); logging text to stderr");
                None
            }
        }
    } else {
        None
    };
    let result = if let Some(layer) = journald {
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init()
            .map_err(|e| e.to_string())
    } else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        if json {
            builder.json().flatten_event(true).try_init()
        } else {
            builder.try_init()
        }
        .map_err(|e| e.to_string())
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
    }
}

/// Whether `JOURNAL_STREAM` (`device:inode`, set by systemd) names stderr.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().is_ok_and(|d| d == meta.dev()) && ino.parse::<u64>().is_ok_and(|i| i == meta.ino())
}
