//! A client library for the ironic-discoverd API (what
//! `ironic_discoverd.client` was in 1.0), used by the CLI.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::keystone::Session;

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    None,
    /// A Keystone token (`X-Auth-Token`).
    Token(String),
    /// HTTP basic credentials.
    Basic {
        user: String,
        password: String,
    },
    /// A token fetched (and refreshed) from Keystone with a password.
    Keystone(Arc<Session>),
}

/// An API failure, grouped by what the caller does next; the message is
/// the server's own.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not authorized ({status}): {message}")]
    Auth { status: u16, message: String },
    #[error("server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("cannot reach ironic-discoverd at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("ironic-discoverd did not answer in time")]
    Timeout,
    #[error("unexpected answer: {0}")]
    Protocol(String),
    #[error("invalid UUID {0:?}")]
    InvalidUuid(String),
}

/// Options of an introspection start.
#[derive(Debug, Clone, Default)]
pub struct IntrospectOptions {
    pub new_ipmi_username: Option<String>,
    pub new_ipmi_password: Option<String>,
}

/// An introspection status.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Status {
    pub finished: bool,
    pub error: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: ClientAuth,
}

/// 1.0's base URL rule: strip a trailing `/`, append `/v1` unless the
/// URL already ends in `v1`.
pub fn base_url(url: &str) -> String {
    let u = url.trim_end_matches('/');
    if u.ends_with("v1") {
        u.to_owned()
    } else {
        format!("{u}/v1")
    }
}

impl Client {
    pub fn new(url: &str, auth: ClientAuth, timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            http,
            base: base_url(url),
            auth,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        req = match &self.auth {
            ClientAuth::None => req,
            ClientAuth::Token(t) => req.header("X-Auth-Token", t),
            ClientAuth::Basic { user, password } => req.basic_auth(user, Some(password)),
            ClientAuth::Keystone(s) => {
                let t = s.token().await.map_err(|e| ClientError::Auth {
                    status: 401,
                    message: e.to_string(),
                })?;
                req.header("X-Auth-Token", t)
            }
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                ClientError::Timeout
            } else {
                ClientError::Unreachable {
                    url: self.base.clone(),
                    message: e.to_string(),
                }
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = crate::http_body::read_limited(resp, MAX_RESPONSE)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.chars().take(300).collect());
        Err(match status {
            404 => ClientError::NotFound(message),
            400 | 413 => ClientError::BadRequest(message),
            401 | 403 => ClientError::Auth { status, message },
            _ => ClientError::Server { status, message },
        })
    }

    fn check(uuid: &str) -> Result<(), ClientError> {
        uuid::Uuid::parse_str(uuid)
            .map(drop)
            .map_err(|_| ClientError::InvalidUuid(uuid.to_owned()))
    }

    /// Starts introspection of `uuid`.
    pub async fn introspect(&self, uuid: &str, opts: &IntrospectOptions) -> Result<(), ClientError> {
        Self::check(uuid)?;
        let mut path = format!("/introspection/{uuid}");
        let mut query = Vec::new();
        if let Some(u) = &opts.new_ipmi_username {
            query.push(("new_ipmi_username", u.as_str()));
        }
        if let Some(p) = &opts.new_ipmi_password {
            query.push(("new_ipmi_password", p.as_str()));
        }
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", url_encode(v)))
                .collect();
            path = format!("{path}?{}", q.join("&"));
        }
        self.send(reqwest::Method::POST, &path, None).await.map(drop)
    }

    /// The status of `uuid`.
    pub async fn get_status(&self, uuid: &str) -> Result<Status, ClientError> {
        Self::check(uuid)?;
        let v = self
            .send(reqwest::Method::GET, &format!("/introspection/{uuid}"), None)
            .await?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The deprecated bulk start of 1.0.
    pub async fn discover(&self, uuids: &[String]) -> Result<(), ClientError> {
        for u in uuids {
            Self::check(u)?;
        }
        let body = serde_json::to_value(uuids).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send(reqwest::Method::POST, "/discover", Some(&body))
            .await
            .map(drop)
    }
}

/// Largest answer the client reads: a status is a few hundred bytes, an
/// error message a few more; anything near this is not ironic-discoverd.
const MAX_RESPONSE: usize = 1024 * 1024;

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_follows_1_0() {
        assert_eq!(base_url("http://127.0.0.1:5050"), "http://127.0.0.1:5050/v1");
        assert_eq!(base_url("http://127.0.0.1:5050/"), "http://127.0.0.1:5050/v1");
        assert_eq!(base_url("http://h/v1/"), "http://h/v1");
    }

    #[tokio::test]
    async fn an_oversized_answer_is_a_typed_error() -> Result<(), Box<dyn std::error::Error>> {
        let huge = "x".repeat(MAX_RESPONSE + 1);
        let app = axum::Router::new().route(
            "/v1/introspection/{uuid}",
            axum::routing::get(move || {
                let huge = huge.clone();
                async move { huge }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = Client::new(&url, ClientAuth::None, Duration::from_secs(10))?;
        let e = c.get_status("0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01").await;
        assert!(
            matches!(&e, Err(ClientError::Protocol(m)) if m.contains("larger than")),
            "{e:?}"
        );
        Ok(())
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url_encode("a b&c"), "a%20b%26c");
    }
}
