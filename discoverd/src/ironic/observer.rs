//! What the Ironic client tells the rest of the daemon about its calls.
//! The client knows no metrics type: whoever wants to count, time or log
//! its requests implements [`CallObserver`] (the metrics do, wired in
//! `app.rs`), and every HTTP request the client sends — every attempt,
//! retries included — is reported to it once.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// How one HTTP request to Ironic ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Ironic answered with this status (2xx or not).
    Status(u16),
    /// The connection failed, was dropped, or its answer was unreadable.
    ConnectionFailed,
    /// No complete answer within the call's timeout.
    TimedOut,
}

impl CallOutcome {
    /// A 2xx answer.
    pub fn is_success(self) -> bool {
        matches!(self, CallOutcome::Status(s) if (200..300).contains(&s))
    }
}

/// One HTTP request to Ironic.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    /// The operation (`get_node`, `patch_node`, `create_port`, ...).
    pub call: &'a str,
    /// `GET`, `PATCH`, ...
    pub method: &'a str,
    /// The path with its identifiers left out (`/v1/nodes/{uuid}`), so
    /// observers can use it as a label.
    pub path: &'a str,
    pub outcome: CallOutcome,
    /// From sending the request to its answer (or failure).
    pub took: Duration,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
}

/// Receives every request the Ironic client makes.
pub trait CallObserver: Send + Sync + Debug {
    fn observe(&self, record: &CallRecord<'_>);
}

/// The observer a client has when none was given: tracing at debug level.
#[derive(Debug, Default)]
pub struct TraceCalls;

impl CallObserver for TraceCalls {
    fn observe(&self, r: &CallRecord<'_>) {
        tracing::debug!(
            call = r.call,
            method = r.method,
            path = r.path,
            outcome = ?r.outcome,
            took_ms = r.took.as_millis() as u64,
            attempt = r.attempt,
            "Ironic call"
        );
    }
}

/// Shared observer handle.
pub type Observer = Arc<dyn CallObserver>;
