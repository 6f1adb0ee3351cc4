//! The one mapping from typed errors to HTTP answers. Every error is JSON
//! `{"error": {"message": "..."}}`; a 500 never shows internals, only an
//! id to find them in the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::introspection::{AbortError, StartError};
use crate::processing::{ProcessError, ReapplyError};
use crate::rules::{ApplyError, RuleBookError};
use crate::store::StoreError;
use crate::store::rules::RuleStoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (503s the client should retry).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// Logs `detail` with an id and returns a 500 that shows only the id.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal server error (see the log for error id {id})"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) | StoreError::NoMatch(_) | StoreError::Ambiguous(_) => {
                ApiError::not_found(e.to_string())
            }
            StoreError::AlreadyFinished { .. } | StoreError::Duplicate { .. } => {
                ApiError::bad_request(e.to_string())
            }
            StoreError::StateChanged { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::DataTooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            // The database is unusable (PostgreSQL down or unreachable,
            // a read-only file, a full disk, locked): say so plainly; it
            // is the operator's to fix, not a bug.
            StoreError::Backend { .. } => {
                tracing::error!("node store failure: {e}");
                ApiError::unavailable(
                    "The node cache database is not available (unreachable, read-only or full?); see the log",
                )
            }
            StoreError::Unwritable { ref reason, .. } => {
                tracing::error!("node store failure: {e}");
                ApiError::unavailable(format!(
                    "The node cache database cannot be written ({reason}); nothing was changed"
                ))
            }
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Store(s) => s.into(),
            StartError::NodeNotFound(_) => ApiError::not_found(e.to_string()),
            StartError::IronicUnavailable { .. } => ApiError::unavailable(e.to_string()),
            StartError::Busy { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StartError::Ironic { .. }
            | StartError::IpmiSetupDisabled
            | StartError::CannotManageBoot
            | StartError::BadIpmiPassword
            | StartError::ProvisionState { .. }
            | StartError::PowerValidation { .. }
            | StartError::BadUuid { .. } => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<ProcessError> for ApiError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Store(s) => s.into(),
            ProcessError::Payload(_) | ProcessError::Hook(_) | ProcessError::Rules(ApplyError::Action(_)) => {
                ApiError::bad_request(e.to_string())
            }
            ProcessError::Rules(ApplyError::Load(_)) => ApiError::unavailable(e.to_string()),
            ProcessError::StillStarting { .. } => ApiError::unavailable(e.to_string()),
            ProcessError::Busy { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ProcessError::NotInIronic { .. } => ApiError::not_found(e.to_string()),
            // The node waits again: the ramdisk's retry can succeed.
            _ if e.is_transient() => ApiError::unavailable(e.to_string()),
            // The node failed; its status carries the same message.
            ProcessError::IronicGet { .. } | ProcessError::Ironic { .. } | ProcessError::Enroll(_) => {
                ApiError::bad_request(e.to_string())
            }
        }
    }
}

impl From<AbortError> for ApiError {
    fn from(e: AbortError) -> Self {
        match e {
            AbortError::Store(s) => s.into(),
            AbortError::NotAbortable { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

impl From<ReapplyError> for ApiError {
    fn from(e: ReapplyError) -> Self {
        match e {
            ReapplyError::Store(s) => s.into(),
            ReapplyError::StoreDisabled => ApiError::bad_request(e.to_string()),
            ReapplyError::NoData(_) => ApiError::not_found(e.to_string()),
            ReapplyError::Busy { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

impl From<RuleBookError> for ApiError {
    fn from(e: RuleBookError) -> Self {
        match e {
            RuleBookError::Invalid(_) => ApiError::bad_request(e.to_string()),
            RuleBookError::Store(RuleStoreError::Exists(_)) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            RuleBookError::Store(RuleStoreError::NotFound(_)) => ApiError::not_found(e.to_string()),
            RuleBookError::Store(RuleStoreError::TooMany) => ApiError::bad_request(e.to_string()),
            RuleBookError::Store(RuleStoreError::TooLarge(_)) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            RuleBookError::Store(RuleStoreError::Store(s)) => s.into(),
        }
    }
}
