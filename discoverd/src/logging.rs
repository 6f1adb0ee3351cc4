//! Log set-up: `tracing` to stderr, text or JSON lines, level from `debug`.
//!
//! `RUST_LOG` overrides the level for targeted debugging
//! (`RUST_LOG=discoverd::ironic=trace`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(debug: bool, json: bool) {
    let default = if debug { "debug" } else { "info" };
    // Dependencies stay quieter than our own code, as in 1.0 (urllib3,
    // keystonemiddleware at WARNING).
    let directives = format!("{default},hyper=warn,reqwest=warn,rustls=warn,h2=warn,tower=warn");
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
