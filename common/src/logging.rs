//! Log set-up shared by both binaries (the `logging` feature): `tracing`
//! to stderr, text or JSON lines, `info` or `debug` by default.
//!
//! `RUST_LOG` overrides the whole filter for targeted debugging
//! (`RUST_LOG=discoverd::ironic=trace`).

use tracing_subscriber::EnvFilter;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
    }
}
