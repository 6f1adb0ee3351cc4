//! The cheap periodic check for backends without change notifications
//! (iptables): every so often, under the filter's lock — so never in the
//! middle of a sync, add or remove — compare the kernel with the last
//! applied state and put it back on any difference ([`Filter::check`],
//! which logs what it found and restored).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Filter;

/// Checks `filter` every `every`, forever (run it on its own thread).
pub fn run(filter: Arc<Mutex<Filter>>, every: Duration) {
    let mut failing = false;
    loop {
        std::thread::sleep(every);
        let Ok(mut f) = filter.lock() else {
            tracing::error!("filter lock poisoned; the periodic check stops");
            return;
        };
        match f.check() {
            Ok(_) if failing => {
                tracing::info!("the periodic filter check works again");
                failing = false;
            }
            Ok(_) => {}
            // Logged once per failing stretch, not every interval.
            Err(e) if !failing => {
                tracing::error!(error = %e, "the periodic filter check failed; trying again every interval");
                failing = true;
            }
            Err(e) => tracing::debug!(error = %e, "the periodic filter check failed again"),
        }
    }
}
