//! Who may use the operator API (`auth_strategy`): a Keystone token with
//! the admin role, an htpasswd user, or anyone (`noauth`). `/v1/continue`
//! and version discovery are never behind this: the ramdisk has no
//! credentials.
//!
//! Identity headers a client sends are always removed first; only this
//! module's verdict reaches the handlers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::api::ApiError;
use crate::config::{AuthStrategy, Config};
use crate::keystone::{KeystoneError, Session, ValidationCache, v3_url};

/// Headers keystonemiddleware sets; a client must not be able to forge them.
const IDENTITY_HEADERS: &[&str] = &[
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
];

/// Largest htpasswd file read.
const MAX_HTPASSWD: u64 = 1024 * 1024;

/// Why the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Keystone(#[from] KeystoneError),
}

/// An htpasswd file and the bcrypt entries last read from it.
#[derive(Debug)]
pub struct Htpasswd {
    path: PathBuf,
    /// (mtime, len) of the file the entries came from.
    stamp: Option<(SystemTime, u64)>,
    entries: Vec<(String, String)>,
    /// Verified against for unknown users, so that they cost as much as
    /// a wrong password: a bcrypt hash with the file's own cost.
    dummy: String,
}

impl Htpasswd {
    fn load(&mut self) -> Result<(), String> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("failed to read {}: {e}", self.path.display()))?;
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        if self.stamp == Some(stamp) {
            return Ok(());
        }
        if meta.len() > MAX_HTPASSWD {
            return Err(format!(
                "{} is larger than {MAX_HTPASSWD} bytes",
                self.path.display()
            ));
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("failed to read {}: {e}", self.path.display()))?;
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, hash))
                    if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") =>
                {
                    entries.push((user.to_owned(), hash.to_owned()));
                }
                Some((user, _)) => tracing::warn!(
                    file = %self.path.display(), line = n + 1, %user,
                    "htpasswd entry is not bcrypt; ignored (create it with htpasswd -B)"
                ),
                None => {
                    tracing::warn!(file = %self.path.display(), line = n + 1, "malformed htpasswd line ignored")
                }
            }
        }
        let cost = entries
            .first()
            .and_then(|(_, h)| h.get(4..6))
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(bcrypt::DEFAULT_COST);
        self.dummy = bcrypt::hash("not a password", cost).unwrap_or_default();
        tracing::info!(file = %self.path.display(), users = entries.len(), "htpasswd file loaded");
        self.entries = entries;
        self.stamp = Some(stamp);
        Ok(())
    }
}

/// The configured strategy, ready to check requests.
#[derive(Debug)]
pub enum Authenticator {
    NoAuth,
    HttpBasic(Mutex<Htpasswd>),
    Keystone {
        session: Arc<Session>,
        identity_url: String,
        role: String,
        cache: ValidationCache,
    },
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
                let path = config
                    .http_basic_auth_user_file
                    .clone()
                    .ok_or_else(|| AuthError::Config("http_basic needs http_basic_auth_user_file".into()))?;
                let mut h = Htpasswd {
                    path,
                    stamp: None,
                    entries: Vec::new(),
                    dummy: String::new(),
                };
                h.load().map_err(AuthError::Config)?;
                Authenticator::HttpBasic(Mutex::new(h))
            }
            AuthStrategy::Keystone => {
                let session = session.ok_or_else(|| {
                    AuthError::Config(format!(
                        "{}: auth_strategy = keystone needs the service user (os_username, os_password, os_tenant_name) to validate tokens",
                        config.source.display()
                    ))
                })?;
                // identity_uri as in 1.0 when set; its 1.0 default (the
                // admin port 35357) is gone from modern Keystone, so the
                // default falls back to os_auth_url.
                let identity = if config.identity_uri != "http://127.0.0.1:35357" {
                    v3_url(&config.identity_uri)
                } else {
                    v3_url(&config.os_auth_url)
                };
                Authenticator::Keystone {
                    session,
                    identity_url: identity,
                    role: config.keystone_admin_role.clone(),
                    cache: ValidationCache::new(config.token_cache_time, 10_000),
                }
            }
        }))
    }

    /// Checks one request's credentials.
    async fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), Response> {
        match self {
            Authenticator::NoAuth => Ok(()),
            Authenticator::HttpBasic(file) => check_basic(file, headers).await,
            Authenticator::Keystone {
                session,
                identity_url,
                role,
                cache,
            } => {
                let Some(token) = headers
                    .get("x-auth-token")
                    .and_then(|v| v.to_str().ok())
                    .filter(|t| !t.is_empty())
                else {
                    return Err(
                        ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required").into_response()
                    );
                };
                if token.len() > 8192 {
                    return Err(
                        ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required").into_response()
                    );
                }
                let identity = match cache.get(token) {
                    Some(id) => id,
                    None => match session.validate(identity_url, token).await {
                        Ok(Some(id)) if SystemTime::now() < id.expires_at => {
                            cache.put(token, id.clone());
                            id
                        }
                        Ok(_) => {
                            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required")
                                .into_response());
                        }
                        Err(e) => {
                            tracing::error!("cannot validate a token: {e}");
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
                    Ok(())
                } else {
                    tracing::info!(user = %identity.user, "refused: no {role} role");
                    Err(ApiError::new(StatusCode::FORBIDDEN, "Access denied").into_response())
                }
            }
        }
    }
}

async fn check_basic(file: &Mutex<Htpasswd>, headers: &axum::http::HeaderMap) -> Result<(), Response> {
    let challenge = || {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required").into_response();
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
    let hash = {
        let mut f = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Re-read when the file changed; on error keep the last good copy.
        if let Err(e) = f.load() {
            tracing::error!("{e}");
        }
        let found = f.entries.iter().find(|(u, _)| u == user).map(|(_, h)| h.clone());
        (found.is_some(), found.unwrap_or_else(|| f.dummy.clone()))
    };
    let (known, hash) = hash;
    let password = password.to_owned();
    // bcrypt is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok && known {
        Ok(())
    } else {
        tracing::info!(%user, "refused: bad credentials");
        Err(challenge())
    }
}

/// Middleware for the operator routes.
pub async fn require_operator(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    for h in IDENTITY_HEADERS {
        req.headers_mut().remove(*h);
    }
    match auth.check(req.headers()).await {
        Ok(()) => next.run(req).await,
        Err(resp) => resp,
    }
}
