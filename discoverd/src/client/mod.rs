//! A client library for the ironic-discoverd API (what
//! `ironic_discoverd.client` was in 1.0), used by the CLI: 1.0's calls
//! here, ironic-inspector's v1 additions in `inspector.rs`, the event
//! stream in `events.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::keystone::Session;

mod events;
mod inspector;

pub use events::{EventStream, ServerEvent};
pub use inspector::ListQuery;

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
    #[error("the server does not offer {0}")]
    Unsupported(&'static str),
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
    #[serde(default)]
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
    /// For the event stream: no whole-request timeout (the stream does not
    /// end), a read timeout instead (the server sends a keep-alive comment
    /// every 15 s by default).
    stream_http: reqwest::Client,
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
        let stream_http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout.max(STREAM_READ_TIMEOUT))
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            http,
            stream_http,
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
        self.send_limited(method, path, body, MAX_RESPONSE).await
    }

    /// Adds the credentials to a request.
    async fn authorize(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(match &self.auth {
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
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout
        } else {
            ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            }
        }
    }

    /// One request; the answer's JSON (`null` when empty), at most `limit`
    /// bytes of it.
    async fn send_limited(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        limit: usize,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.authorize(self.http.request(method, &url)).await?;
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let bytes = crate::http_body::read_limited(resp, limit)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(answer_error(status, &value, &text))
    }

    fn check(uuid: &str) -> Result<(), ClientError> {
        uuid::Uuid::parse_str(uuid)
            .map(drop)
            .map_err(|_| ClientError::InvalidUuid(uuid.to_owned()))
    }

    /// A node (UUID, or name from API 1.5) as a path segment.
    fn node(node: &str) -> Result<String, ClientError> {
        if node.is_empty() || node.len() > 255 {
            return Err(ClientError::InvalidUuid(node.to_owned()));
        }
        Ok(url_encode(node))
    }

    /// Starts introspection of `node` (a UUID, or a name).
    pub async fn introspect(&self, node: &str, opts: &IntrospectOptions) -> Result<(), ClientError> {
        let mut path = format!("/introspection/{}", Self::node(node)?);
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

    /// The status of `node` (a UUID, or a name).
    pub async fn get_status(&self, node: &str) -> Result<Status, ClientError> {
        let v = self
            .send(
                reqwest::Method::GET,
                &format!("/introspection/{}", Self::node(node)?),
                None,
            )
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

/// The typed error of a non-2xx answer; the message is the server's.
fn answer_error(status: u16, value: &Value, text: &str) -> ClientError {
    let message = value["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(300).collect());
    match status {
        404 => ClientError::NotFound(message),
        400 | 413 => ClientError::BadRequest(message),
        401 | 403 => ClientError::Auth { status, message },
        _ => ClientError::Server { status, message },
    }
}

/// Least time the event stream may stay silent: well past the server's
/// default keep-alive interval (15 s).
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(60);

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
