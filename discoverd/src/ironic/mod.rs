//! Talking to Ironic: typed resources ([`model`]) and, built on them, the
//! REST client, its retry rules ([`retry`]), its errors ([`error`]) and
//! the observer every request is reported to ([`observer`]).

pub mod client;
pub mod error;
pub mod model;
pub mod observer;
pub mod retry;

pub use client::{DEFAULT_MAX_REQUESTS, IronicClient};
pub use error::{IronicError, IronicErrorKind};
pub use model::{InterfaceValidation, Node, PatchOp, Port};
pub use observer::{CallObserver, CallOutcome, CallRecord};
pub use retry::{RetryPolicy, within_budget};

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, for object-safe async traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the Ironic client gets the `X-Auth-Token` it sends. Implemented
/// by the Keystone service-user session; standalone Ironic (noauth) needs
/// none.
pub trait TokenSource: Send + Sync + Debug {
    /// A valid token, fetching or refreshing one if needed.
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>>;
    /// Forget the cached token (Ironic answered 401 with it).
    fn invalidate(&self);
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[error("failed to obtain a Keystone token: {message}")]
pub struct TokenError {
    pub message: String,
    /// True when retrying later may help (Keystone unreachable or 5xx).
    pub retryable: bool,
}
