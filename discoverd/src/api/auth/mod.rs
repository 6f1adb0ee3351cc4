//! Who may use the operator API (`auth_strategy`): a Keystone token with
//! the admin role, an htpasswd user, or anyone (`noauth`). `/v1/continue`
//! and version discovery are never behind this: the ramdisk has no
//! credentials.
//!
//! Apply it to the operator routes only:
//! `route_layer(axum::middleware::from_fn_with_state(auth, auth::require_operator))`.
//! Identity headers a client sends are always removed first; after a
//! successful check the handlers find an [`Operator`] in the request
//! extensions, and nothing else says who the caller is.
//!
//! Which Keystone validates tokens: `identity_uri` as in 1.0, turned into
//! its v3 root by [`v3_url`]. Its 1.0 default (`http://127.0.0.1:35357`,
//! the admin port that modern Keystone no longer has) means "not set", and
//! then `os_auth_url`'s v3 root is used.

mod htpasswd;

pub use htpasswd::{Htpasswd, HtpasswdError};

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::api::error::ApiError;
use crate::config::{AuthStrategy, Config};
use crate::keystone::{KeystoneError, Session, ValidationCache, v3_url};

/// Headers keystonemiddleware sets; a client must not be able to forge them.
pub const IDENTITY_HEADERS: &[&str] = &[
    "x-identity-status",
    "x-service-identity-status",
    "x-roles",
    "x-service-roles",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-domain-id",
    "x-domain-name",
    "x-is-admin-project",
    "x-tenant-id",
    "x-tenant-name",
    "x-tenant",
    "x-user",
    "x-role",
    "x-service-catalog",
];

/// The 1.0 default of `identity_uri`, read as "not set".
const IDENTITY_URI_DEFAULT: &str = "http://127.0.0.1:35357";
/// Longest `X-Auth-Token` sent on to Keystone (Fernet tokens are ~200).
const MAX_TOKEN: usize = 8192;
/// Positive validations kept at most.
const CACHE_ENTRIES: usize = 10_000;

/// Why the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    #[error(transparent)]
    Keystone(#[from] KeystoneError),
}

/// Who passed the check, for handlers that want to log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// User name (Keystone or htpasswd); `None` under noauth.
    pub user: Option<String>,
    /// Keystone roles; empty otherwise.
    pub roles: Vec<String>,
}

/// The configured strategy, ready to check requests.
#[derive(Debug)]
pub enum Authenticator {
    NoAuth,
    HttpBasic(Htpasswd),
    Keystone {
        session: Arc<Session>,
        identity_url: String,
        role: String,
        cache: ValidationCache,
    },
}

/// The Keystone v3 root that validates operator tokens (see the module doc).
pub fn identity_url(config: &Config) -> String {
    if config.identity_uri.trim_end_matches('/') != IDENTITY_URI_DEFAULT {
        v3_url(&config.identity_uri)
    } else {
        v3_url(&config.os_auth_url)
    }
}

fn unauthorized() -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required").into_response()
}

impl Authenticator {
    /// Builds the strategy `config` names. `session` is the service
    /// user's Keystone session (required for `keystone`).
    pub fn from_config(config: &Config, session: Option<Arc<Session>>) -> Result<Arc<Self>, AuthError> {
        Ok(Arc::new(match config.auth_strategy {
            AuthStrategy::NoAuth => {
                tracing::warn!("Starting unauthenticated, please check configuration");
                Authenticator::NoAuth
            }
            AuthStrategy::HttpBasic => {
                let path = config.http_basic_auth_user_file.as_deref().ok_or_else(|| {
                    AuthError::Config(format!(
                        "{}: auth_strategy = http_basic needs http_basic_auth_user_file",
                        config.source.display()
                    ))
                })?;
                Authenticator::HttpBasic(Htpasswd::open(path)?)
            }
            AuthStrategy::Keystone => {
                let session = session.ok_or_else(|| {
                    AuthError::Config(format!(
                        "{}: auth_strategy = keystone needs the service user (os_username, os_password, os_tenant_name) to validate tokens",
                        config.source.display()
                    ))
                })?;
                let identity_url = identity_url(config);
                tracing::info!(%identity_url, role = %config.keystone_admin_role, "operator tokens are validated by Keystone");
                Authenticator::Keystone {
                    session,
                    identity_url,
                    role: config.keystone_admin_role.clone(),
                    cache: ValidationCache::new(config.token_cache_time, CACHE_ENTRIES),
                }
            }
        }))
    }

    /// Checks one request's credentials.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Operator, Response> {
        match self {
            Authenticator::NoAuth => Ok(Operator {
                user: None,
                roles: Vec::new(),
            }),
            Authenticator::HttpBasic(file) => check_basic(file, headers).await,
            Authenticator::Keystone {
                session,
                identity_url,
                role,
                cache,
            } => check_keystone(session, identity_url, role, cache, headers).await,
        }
    }
}

async fn check_keystone(
    session: &Session,
    identity_url: &str,
    role: &str,
    cache: &ValidationCache,
    headers: &HeaderMap,
) -> Result<Operator, Response> {
    let Some(token) = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
    else {
        return Err(unauthorized());
    };
    let identity = match cache.get(token) {
        Some(id) => id,
        None => match session.validate(identity_url, token).await {
            Ok(Some(id)) if SystemTime::now() < id.expires_at => {
                cache.put(token, id.clone());
                id
            }
            Ok(_) => {
                tracing::info!("refused: the token is not valid or has expired");
                return Err(unauthorized());
            }
            Err(e) => {
                tracing::error!("failed to validate an operator token: {e}");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Cannot validate the token: Keystone is not available",
                )
                .into_response());
            }
        },
    };
    if identity.roles.iter().any(|r| r == role) {
        tracing::debug!(user = %identity.user, "authorized");
        Ok(Operator {
            user: Some(identity.user),
            roles: identity.roles,
        })
    } else {
        tracing::info!(user = %identity.user, "refused: no {role} role");
        Err(ApiError::new(StatusCode::FORBIDDEN, "Access denied").into_response())
    }
}

async fn check_basic(file: &Htpasswd, headers: &HeaderMap) -> Result<Operator, Response> {
    let challenge = || {
        let mut r = unauthorized();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ironic-discoverd\""),
        );
        r
    };
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .filter(|v| v.len() <= 4096)
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(challenge());
    };
    let (file, u, p) = (file.clone(), user.to_owned(), password.to_owned());
    // bcrypt is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || file.verify(&u, &p))
        .await
        .unwrap_or(false);
    if ok {
        tracing::debug!(%user, "authorized");
        Ok(Operator {
            user: Some(user.to_owned()),
            roles: Vec::new(),
        })
    } else {
        tracing::info!(%user, "refused: bad credentials");
        Err(challenge())
    }
}

/// Middleware for the operator routes: strips client-sent identity
/// headers, checks the credentials, and passes an [`Operator`] on.
pub async fn require_operator(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    for h in IDENTITY_HEADERS {
        req.headers_mut().remove(*h);
    }
    match auth.check(req.headers()).await {
        Ok(operator) => {
            req.extensions_mut().insert(operator);
            next.run(req).await
        }
        Err(resp) => resp,
    }
}
