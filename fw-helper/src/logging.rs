//! Log set-up: `common::logging`, with rustables (which logs every
//! attribute it does not parse at INFO) at WARN.

/// Installs the global subscriber (see `common::logging::init`).
pub fn init(debug: bool, json: bool) {
    common::logging::init(debug, json, &["rustables=warn"]);
}
