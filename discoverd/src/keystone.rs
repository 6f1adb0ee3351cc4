//! Keystone v3: the daemon's own service-user token (password auth, cached
//! until shortly before it expires, one refresh at a time), the service
//! catalog, and validation of operators' tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::config::{Config, Secret};
use crate::ironic::{BoxFuture, TokenError, TokenSource};

/// Refresh this long before the token expires (or at 90 % of a short
/// lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// Largest Keystone response read (a token with a big catalog is ~50 KiB).
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Turns a configured Keystone URL into its v3 root: a 1.0-style
/// `…/v2.0` suffix becomes `/v3`, a bare endpoint gets `/v3`.
pub fn v3_url(url: &str) -> String {
    let u = url.trim_end_matches('/');
    if let Some(base) = u.strip_suffix("/v2.0") {
        format!("{base}/v3")
    } else if u.ends_with("/v3") {
        u.to_owned()
    } else {
        format!("{u}/v3")
    }
}

/// Why Keystone did not give us what we needed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeystoneError {
    #[error("Keystone at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Keystone refused the service credentials: {0}")]
    BadCredentials(String),
    #[error("unexpected answer from Keystone: {0}")]
    Protocol(String),
    #[error("no {0} endpoint in the Keystone catalog")]
    NoEndpoint(String),
}

impl KeystoneError {
    pub fn retryable(&self) -> bool {
        matches!(self, KeystoneError::Unreachable { .. })
    }
}

/// A validated token's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub project: Option<String>,
    pub roles: Vec<String>,
    pub expires_at: SystemTime,
}

/// Parses Keystone's `expires_at` (`2026-11-25T06:38:10.000000Z`).
pub fn parse_expiry(s: &str) -> Option<SystemTime> {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.split('+').next()?;
    let mut t = time.split(':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant), UTC.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_secs_f64(ss.max(0.0)))
}

/// Password credentials of a Keystone user, scoped to a project.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Any Keystone URL: `…/v2.0` and bare hosts are turned into `…/v3`.
    pub auth_url: String,
    pub user: String,
    pub password: Secret,
    pub project: String,
    pub user_domain: String,
    pub project_domain: String,
}

#[derive(Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
    catalog: Value,
}

/// Never shows the token: a `Session` may be logged with `?`.
impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("token", &"***")
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// The daemon's Keystone session for its service user.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    auth_url: String,
    user: String,
    password: Secret,
    project: String,
    user_domain: String,
    project_domain: String,
    cached: Mutex<Option<Cached>>,
    /// One refresh at a time; others wait and reuse its result.
    refreshing: tokio::sync::Mutex<()>,
}

async fn read_json(
    resp: reqwest::Response,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Value), String> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = crate::http_body::read_limited(resp, MAX_RESPONSE)
        .await
        .map_err(|e| e.to_string())?;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, headers, v))
}

impl Session {
    /// From `os_auth_url`, `os_username`, `os_password`, `os_tenant_name`
    /// and the domain options; `None` when the credentials are not set.
    pub fn from_config(config: &Config) -> Result<Option<Arc<Self>>, KeystoneError> {
        let (Some(user), Some(password), Some(project)) = (
            config.os_username.clone(),
            config.os_password.clone(),
            config.os_tenant_name.clone(),
        ) else {
            return Ok(None);
        };
        let creds = Credentials {
            auth_url: config.os_auth_url.clone(),
            user,
            password,
            project,
            user_domain: config.os_user_domain_name.clone(),
            project_domain: config.os_project_domain_name.clone(),
        };
        Session::new(creds, config.ironic_timeout).map(Some)
    }

    /// A session for `creds`; every Keystone call is bounded by `timeout`.
    pub fn new(creds: Credentials, timeout: Duration) -> Result<Arc<Self>, KeystoneError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // No idle connections: Keystone commonly runs under uWSGI, whose
            // plain http-socket closes connections after each answer, so a
            // pooled one fails on reuse. Validations are cached anyway.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| KeystoneError::Protocol(format!("failed to build an HTTP client: {e}")))?;
        Ok(Arc::new(Session {
            http,
            auth_url: v3_url(&creds.auth_url),
            user: creds.user,
            password: creds.password,
            project: creds.project,
            user_domain: creds.user_domain,
            project_domain: creds.project_domain,
            cached: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The v3 root tokens are requested from.
    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    fn current(&self) -> Option<Cached> {
        let c = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.clone().filter(|c| Instant::now() < c.refresh_at)
    }

    /// A valid service token, fetched or refreshed as needed.
    pub async fn token(&self) -> Result<String, KeystoneError> {
        Ok(self.cached_or_fetch().await?.token)
    }

    async fn cached_or_fetch(&self) -> Result<Cached, KeystoneError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _guard = self.refreshing.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let fresh = self.fetch().await?;
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh.clone());
        Ok(fresh)
    }

    async fn fetch(&self) -> Result<Cached, KeystoneError> {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.user, "domain": {"name": self.user_domain}, "password": self.password.expose()}}},
            "scope": {"project": {"name": self.project, "domain": {"name": self.project_domain}}}
        }});
        let url = format!("{}/auth/tokens", self.auth_url);
        let unreachable = |message: String| KeystoneError::Unreachable {
            url: self.auth_url.clone(),
            message,
        };
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (status, headers, v) = read_json(resp).await.map_err(unreachable)?;
        if status.as_u16() == 401 || status.as_u16() == 403 || status.as_u16() == 404 {
            return Err(KeystoneError::BadCredentials(
                v["error"]["message"]
                    .as_str()
                    .unwrap_or("unauthorized")
                    .to_owned(),
            ));
        }
        if !status.is_success() {
            return Err(unreachable(format!("{status}")));
        }
        let token = headers
            .get("X-Subject-Token")
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| KeystoneError::Protocol("no X-Subject-Token in the answer".into()))?
            .to_owned();
        let expires = v["token"]["expires_at"].as_str().and_then(parse_expiry);
        let lifetime = expires
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_secs(300));
        let refresh_in = lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 10 + Duration::from_secs(1)));
        tracing::info!(user = %self.user, ?lifetime, "obtained a Keystone token for the service user");
        Ok(Cached {
            token,
            refresh_at: Instant::now() + refresh_in,
            catalog: v["token"]["catalog"].clone(),
        })
    }

    /// Forgets the cached token (a service answered 401 with it).
    pub fn invalidate(&self) {
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The `interface` endpoint of `service_type` from the catalog.
    pub async fn endpoint(&self, service_type: &str, interface: &str) -> Result<String, KeystoneError> {
        let c = self.cached_or_fetch().await?;
        c.catalog
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"] == service_type)
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| e["interface"] == interface)
            .and_then(|e| e["url"].as_str().map(str::to_owned))
            .ok_or_else(|| KeystoneError::NoEndpoint(service_type.to_owned()))
    }

    /// Validates an operator's token (`GET /v3/auth/tokens` at
    /// `identity_url`). `Ok(None)`: Keystone says the token is not valid.
    pub async fn validate(
        &self,
        identity_url: &str,
        subject: &str,
    ) -> Result<Option<Identity>, KeystoneError> {
        for attempt in 0..2 {
            let service = self.token().await?;
            let url = format!("{identity_url}/auth/tokens");
            let unreachable = |message: String| KeystoneError::Unreachable {
                url: identity_url.to_owned(),
                message,
            };
            let resp = self
                .http
                .get(&url)
                .header("X-Auth-Token", service)
                .header("X-Subject-Token", subject)
                .send()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let (status, _, v) = read_json(resp).await.map_err(unreachable)?;
            match status.as_u16() {
                200 => {
                    let t = &v["token"];
                    let roles = t["roles"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter_map(|x| x["name"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let expires_at = t["expires_at"]
                        .as_str()
                        .and_then(parse_expiry)
                        .ok_or_else(|| KeystoneError::Protocol("token without expires_at".into()))?;
                    return Ok(Some(Identity {
                        user: t["user"]["name"].as_str().unwrap_or_default().to_owned(),
                        project: t["project"]["name"].as_str().map(str::to_owned),
                        roles,
                        expires_at,
                    }));
                }
                404 => return Ok(None),
                // Our own token was refused: refresh it once.
                401 if attempt == 0 => self.invalidate(),
                401 | 403 => {
                    return Err(KeystoneError::BadCredentials(
                        "Keystone refused the service token".into(),
                    ));
                }
                _ => return Err(unreachable(format!("{status}"))),
            }
        }
        Err(KeystoneError::BadCredentials(
            "Keystone refused the service token".into(),
        ))
    }
}

/// The Ironic client's token comes from this session.
#[derive(Debug)]
pub struct SessionTokens(pub Arc<Session>);

impl TokenSource for SessionTokens {
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>> {
        Box::pin(async move {
            self.0.token().await.map_err(|e| TokenError {
                retryable: e.retryable(),
                message: e.to_string(),
            })
        })
    }

    fn invalidate(&self) {
        self.0.invalidate();
    }
}

/// Positive validations, reused until `ttl` or the token's expiry. Keyed
/// by the SHA-256 of the token, so no raw token is kept in memory longer
/// than its request.
#[derive(Debug)]
pub struct ValidationCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<[u8; 32], (Identity, tokio::time::Instant)>>,
}

fn token_key(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(d.as_ref());
    key
}

impl ValidationCache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        ValidationCache {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, token: &str) -> Option<Identity> {
        let key = token_key(token);
        let mut e = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match e.get(&key) {
            Some((id, until))
                if tokio::time::Instant::now() < *until && SystemTime::now() < id.expires_at =>
            {
                Some(id.clone())
            }
            Some(_) => {
                e.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, token: &str, id: Identity) {
        if self.ttl.is_zero() || self.max == 0 {
            return;
        }
        let now = tokio::time::Instant::now();
        let mut e = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if e.len() >= self.max {
            e.retain(|_, (_, until)| *until > now);
            if e.len() >= self.max {
                // Still full of live entries: start over rather than grow.
                e.clear();
            }
        }
        e.insert(token_key(token), (id, now + self.ttl));
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_urls_become_v3() {
        assert_eq!(v3_url("http://127.0.0.1:5000/v2.0"), "http://127.0.0.1:5000/v3");
        assert_eq!(v3_url("http://127.0.0.1:5000/v2.0/"), "http://127.0.0.1:5000/v3");
        assert_eq!(v3_url("http://127.0.0.1:35357"), "http://127.0.0.1:35357/v3");
        assert_eq!(v3_url("https://ks/identity/v3"), "https://ks/identity/v3");
    }

    #[test]
    fn expiry_parses_keystone_timestamps() {
        let t = parse_expiry("2015-02-03T15:19:23.500000Z");
        let want = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1_422_976_763.5);
        assert_eq!(t, Some(want));
        assert_eq!(parse_expiry("garbage"), None);
    }

    #[test]
    fn validation_cache_respects_ttl_and_expiry() {
        let c = ValidationCache::new(Duration::from_secs(60), 2);
        let id = |secs: u64| Identity {
            user: "u".into(),
            project: None,
            roles: vec!["admin".into()],
            expires_at: SystemTime::now() + Duration::from_secs(secs),
        };
        c.put("a", id(100));
        assert!(c.get("a").is_some());
        let mut expired = id(0);
        expired.expires_at = SystemTime::now() - Duration::from_secs(1);
        c.put("b", expired);
        assert!(
            c.get("b").is_none(),
            "an expired token is never served from the cache"
        );
        c.put("c", id(100));
        c.put("d", id(100));
        assert!(c.get("d").is_some());
        let zero = ValidationCache::new(Duration::ZERO, 10);
        zero.put("a", id(100));
        assert!(zero.get("a").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn validation_cache_forgets_after_ttl_and_stays_bounded() {
        let c = ValidationCache::new(Duration::from_secs(300), 3);
        let id = Identity {
            user: "u".into(),
            project: None,
            roles: vec!["admin".into()],
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        };
        c.put("t", id.clone());
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(c.get("t").is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(c.get("t").is_none(), "token_cache_time bounds reuse");
        for t in ["a", "b", "c", "d", "e"] {
            c.put(t, id.clone());
        }
        assert!(c.len() <= 3);
        assert!(c.get("e").is_some(), "the newest entry is kept");
    }
}
