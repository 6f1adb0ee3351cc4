//! Log set-up: `tracing` to stderr, text or JSON lines.

use tracing_subscriber::EnvFilter;

pub fn init(debug: bool, json: bool) {
    let default = if debug { "debug" } else { "info" };
    // rustables logs every attribute it does not parse at INFO.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},rustables=warn")));
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
