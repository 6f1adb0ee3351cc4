//! Log set-up: `common::logging` with the daemon's dependencies kept
//! quieter than our own code, as in 1.0 (urllib3, keystonemiddleware at
//! WARNING).

/// Installs the global subscriber (see `common::logging::init`).
pub fn init(debug: bool, json: bool) {
    common::logging::init(
        debug,
        json,
        &[
            "hyper=warn",
            "reqwest=warn",
            "rustls=warn",
            "h2=warn",
            "tower=warn",
        ],
    );
}
