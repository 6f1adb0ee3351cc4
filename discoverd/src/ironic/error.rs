//! Why an Ironic call failed: which call, and whether waiting could
//! help. Transient failures (connection errors, timeouts, 408, 409 "node
//! locked", 429, 5xx) never reach the caller until the retry budget is
//! spent; every other kind is permanent: Ironic said no.

use std::fmt;
use std::time::Duration;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum IronicErrorKind {
    /// The resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A conflict that retrying cannot resolve (a MAC already belongs to
    /// another node's port).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Our credentials were refused (after one fresh token).
    #[error("Ironic refused our credentials: {0}")]
    Auth(String),
    /// Ironic refused the request itself (4xx other than the above).
    #[error("Ironic rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// Ironic answered something we cannot read.
    #[error("unexpected answer from Ironic: {0}")]
    Protocol(String),
    /// Every try met a transient failure until the retry budget ran out.
    #[error(
        "Ironic still failing after {attempts} attempt(s) in {:.1} s, retry budget spent: {last}",
        .waited.as_secs_f64()
    )]
    BudgetSpent {
        attempts: u32,
        waited: Duration,
        /// The last failure (`503: ...`, `connection reset`, `timed out`).
        last: String,
    },
    /// A request that is not safe to repeat may or may not have been
    /// applied (its answer was lost), and it could not be checked.
    #[error("outcome unknown (the answer was lost and the request is not safe to repeat): {0}")]
    OutcomeUnknown(String),
}

/// An Ironic call that failed: `PATCH /v1/nodes/<uuid>: <why>`.
#[derive(Debug, thiserror::Error)]
pub struct IronicError {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The concrete path called.
    pub path: String,
    /// Not a `#[source]`: the message already includes it.
    pub kind: IronicErrorKind,
}

impl fmt::Display for IronicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.method, self.path, self.kind)
    }
}

impl IronicError {
    pub fn new(method: &str, path: &str, kind: IronicErrorKind) -> Self {
        IronicError {
            method: method.to_owned(),
            path: path.to_owned(),
            kind,
        }
    }

    /// True when the same operation may succeed later (the retry budget
    /// was spent on transient failures); false when Ironic said no.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, IronicErrorKind::BudgetSpent { .. })
    }

    /// Ironic has no such resource.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, IronicErrorKind::NotFound(_))
    }

    /// A conflict retrying cannot resolve.
    pub fn is_conflict(&self) -> bool {
        matches!(self.kind, IronicErrorKind::Conflict(_))
    }

    /// Ironic refused the request as invalid (400).
    pub fn is_rejected(&self) -> bool {
        matches!(self.kind, IronicErrorKind::Rejected { status: 400, .. })
    }
}
