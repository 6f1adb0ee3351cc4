//! A typed Ironic REST client: the calls discoverd makes, with an explicit
//! API microversion, a timeout on every call, retries where Ironic asks for
//! them, and errors grouped by what the caller does next.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::TokenSource;
use super::model::{InterfaceValidation, Node, PatchOp, Port};
use crate::http_body::ReadError;

/// Largest Ironic response body we read (a page of 1000 ports is ~0.5 MiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Page size when listing ports.
const PAGE: usize = 1000;
/// Attempts on 503 and connection errors, with doubling backoff.
const UNAVAILABLE_ATTEMPTS: u32 = 4;
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(250);

/// Why an Ironic call failed, grouped by the caller's next move.
#[derive(Debug, thiserror::Error)]
pub enum IronicError {
    /// The resource does not exist: report it, do not retry.
    #[error("{0}")]
    NotFound(String),
    /// Still locked or already exists after every retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Ironic down, overloaded or unreachable after retries: try later.
    #[error("Ironic is unavailable: {0}")]
    Unavailable(String),
    /// Our credentials were refused.
    #[error("Ironic refused our credentials: {0}")]
    Auth(String),
    /// Ironic refused the request itself (4xx).
    #[error("Ironic rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// Ironic answered something we cannot read.
    #[error("unexpected answer from Ironic: {0}")]
    Protocol(String),
}

impl IronicError {
    /// True when retrying the whole operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, IronicError::Unavailable(_) | IronicError::Conflict(_))
    }
}

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts on 409 "node locked" (1.0: 12).
    pub conflict_attempts: u32,
    /// Pause between them (1.0: 5 s).
    pub conflict_period: Duration,
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IronicClient {
    http: reqwest::Client,
    base: String,
    api_version: String,
    token: Option<Arc<dyn TokenSource>>,
    retry: RetryPolicy,
    /// Tries on 503 and connection errors ([`UNAVAILABLE_ATTEMPTS`], or 1
    /// for callers with a retry loop of their own).
    unavailable_attempts: u32,
    metrics: Option<crate::metrics::Metrics>,
}

/// Extracts Ironic's error text from its JSON error body.
fn error_message(body: &[u8]) -> String {
    let text = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(500)
            .collect::<String>()
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return text();
    };
    // Ironic: {"error_message": "{\"faultstring\": \"...\"}"} (a JSON string inside JSON).
    if let Some(inner) = v.get("error_message") {
        let inner = match inner {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.clone())),
            other => other.clone(),
        };
        if let Some(f) = inner.get("faultstring").and_then(Value::as_str) {
            return f.to_owned();
        }
        if let Some(s) = inner.as_str() {
            return s.to_owned();
        }
    }
    if let Some(f) = v.get("faultstring").and_then(Value::as_str) {
        return f.to_owned();
    }
    text()
}

impl IronicClient {
    /// `base` is Ironic's root URL (`http://127.0.0.1:6385`).
    pub fn new(
        base: &str,
        api_version: &str,
        timeout: Duration,
        token: Option<Arc<dyn TokenSource>>,
        retry: RetryPolicy,
    ) -> Result<Self, IronicError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ironic-discoverd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IronicError::Protocol(format!("failed to build the HTTP client: {e}")))?;
        Ok(IronicClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_version: api_version.to_owned(),
            token,
            retry,
            unavailable_attempts: UNAVAILABLE_ATTEMPTS,
            metrics: None,
        })
    }

    /// A client that makes one try on 503 and connection errors, for
    /// callers that retry on their own terms (start-up's
    /// `ironic_retry_attempts`, readiness checks), so tries do not multiply.
    pub fn single_attempt(&self) -> Self {
        IronicClient {
            unavailable_attempts: 1,
            ..self.clone()
        }
    }

    /// Records every call's latency and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The base URL, for logs.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One request with the 409/503/connection retry loop around it.
    async fn call(
        &self,
        name: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, IronicError> {
        let start = std::time::Instant::now();
        let result = self.call_retrying(method, path, body).await;
        if let Some(m) = &self.metrics {
            m.ironic_call(name, start.elapsed(), result.is_ok());
        }
        result
    }

    async fn call_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, IronicError> {
        let mut conflicts = 0;
        let mut unavailable = 0;
        let mut reauth = false;
        loop {
            let result = self.once(method.clone(), path, body).await;
            match result {
                Err(IronicError::Conflict(msg)) if conflicts + 1 < self.retry.conflict_attempts => {
                    conflicts += 1;
                    tracing::debug!(%path, attempt = conflicts, "Ironic answered 409 ({msg}), retrying");
                    tokio::time::sleep(self.retry.conflict_period).await;
                }
                Err(IronicError::Unavailable(msg)) if unavailable + 1 < self.unavailable_attempts => {
                    unavailable += 1;
                    let pause = UNAVAILABLE_BACKOFF * 2u32.pow(unavailable - 1);
                    tracing::debug!(%path, attempt = unavailable, ?pause, "Ironic unavailable ({msg}), retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(IronicError::Auth(_)) if !reauth && self.token.is_some() => {
                    reauth = true;
                    if let Some(t) = &self.token {
                        t.invalidate();
                    }
                }
                other => return other,
            }
        }
    }

    async fn once(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Vec<u8>, IronicError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, &url)
            .header("X-OpenStack-Ironic-API-Version", &self.api_version)
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            let token = t.token().await.map_err(|e| {
                if e.retryable {
                    IronicError::Unavailable(e.to_string())
                } else {
                    IronicError::Auth(e.to_string())
                }
            })?;
            req = req.header("X-Auth-Token", token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| IronicError::Unavailable(format!("{url}: {e}")))?;
        let status = resp.status();
        let bytes = read_limited(resp).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let message = error_message(&bytes);
        Err(match status {
            StatusCode::NOT_FOUND => IronicError::NotFound(message),
            StatusCode::CONFLICT => IronicError::Conflict(message),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => IronicError::Auth(message),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
                IronicError::Unavailable(format!("{status}: {message}"))
            }
            s => IronicError::Rejected {
                status: s.as_u16(),
                message,
            },
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        name: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, IronicError> {
        let bytes = self.call(name, method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| IronicError::Protocol(format!("{path}: {e}")))
    }

    /// `GET /v1/nodes/{uuid}`.
    pub async fn get_node(&self, uuid: &str) -> Result<Node, IronicError> {
        self.json("get_node", Method::GET, &format!("/v1/nodes/{uuid}"), None)
            .await
    }

    /// The `power` part of `GET /v1/nodes/{uuid}/validate`.
    pub async fn validate_power(&self, uuid: &str) -> Result<InterfaceValidation, IronicError> {
        let v: Value = self
            .json(
                "validate",
                Method::GET,
                &format!("/v1/nodes/{uuid}/validate"),
                None,
            )
            .await?;
        serde_json::from_value(v.get("power").cloned().unwrap_or(Value::Null))
            .map_err(|e| IronicError::Protocol(format!("validate: {e}")))
    }

    /// Every page of a port listing.
    async fn ports(&self, first: String) -> Result<Vec<Port>, IronicError> {
        #[derive(serde::Deserialize)]
        struct Page {
            ports: Vec<Port>,
            #[serde(default)]
            next: Option<String>,
        }
        let mut out = Vec::new();
        let mut path = first;
        // A malicious or broken Ironic could link pages forever.
        for _ in 0..10_000 {
            let page: Page = self.json("list_ports", Method::GET, &path, None).await?;
            let got = page.ports.len();
            out.extend(page.ports);
            match page.next {
                Some(next) if got > 0 => {
                    let rel = next.find("/v1/").map(|i| next[i..].to_owned());
                    path = rel.ok_or_else(|| IronicError::Protocol(format!("bad next link {next:?}")))?;
                }
                _ => return Ok(out),
            }
        }
        Err(IronicError::Protocol("port listing did not end".into()))
    }

    /// `GET /v1/nodes/{uuid}/ports`, all pages.
    pub async fn list_node_ports(&self, uuid: &str) -> Result<Vec<Port>, IronicError> {
        self.ports(format!(
            "/v1/nodes/{uuid}/ports?limit={PAGE}&fields=uuid,address,node_uuid,extra"
        ))
        .await
    }

    /// `GET /v1/ports`, all pages.
    pub async fn list_all_ports(&self) -> Result<Vec<Port>, IronicError> {
        self.ports(format!("/v1/ports?limit={PAGE}&fields=uuid,address,node_uuid"))
            .await
    }

    /// `PATCH /v1/nodes/{uuid}`; returns the updated node.
    pub async fn patch_node(&self, uuid: &str, ops: &[PatchOp]) -> Result<Node, IronicError> {
        let body = serde_json::to_value(ops).map_err(|e| IronicError::Protocol(e.to_string()))?;
        self.json(
            "patch_node",
            Method::PATCH,
            &format!("/v1/nodes/{uuid}"),
            Some(&body),
        )
        .await
    }

    /// `PATCH /v1/ports/{uuid}`.
    pub async fn patch_port(&self, uuid: &str, ops: &[PatchOp]) -> Result<Port, IronicError> {
        let body = serde_json::to_value(ops).map_err(|e| IronicError::Protocol(e.to_string()))?;
        self.json(
            "patch_port",
            Method::PATCH,
            &format!("/v1/ports/{uuid}"),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/ports`. A MAC that already exists is a `Conflict`
    /// (returned at once: this 409 does not go away with retries).
    pub async fn create_port(&self, node_uuid: &str, address: &str) -> Result<Port, IronicError> {
        let body = serde_json::json!({"node_uuid": node_uuid, "address": address});
        match self.once(Method::POST, "/v1/ports", Some(&body)).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| IronicError::Protocol(format!("create port: {e}")))
            }
            Err(IronicError::Unavailable(_)) => {
                self.json("create_port", Method::POST, "/v1/ports", Some(&body))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// `PUT /v1/nodes/{uuid}/management/boot_device` (PXE, one boot only).
    pub async fn set_pxe_boot(&self, uuid: &str) -> Result<(), IronicError> {
        let body = serde_json::json!({"boot_device": "pxe", "persistent": false});
        self.call(
            "set_boot_device",
            Method::PUT,
            &format!("/v1/nodes/{uuid}/management/boot_device"),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `PUT /v1/nodes/{uuid}/states/power`.
    pub async fn set_power_state(&self, uuid: &str, target: &str) -> Result<(), IronicError> {
        let body = serde_json::json!({"target": target});
        self.call(
            "set_power_state",
            Method::PUT,
            &format!("/v1/nodes/{uuid}/states/power"),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// Checks Ironic answers and supports our microversion (`GET /v1`).
    /// Returns Ironic's maximum version.
    pub async fn check_api_version(&self) -> Result<String, IronicError> {
        let v: Value = self.json("version", Method::GET, "/v1", None).await?;
        let max = v["version"]["version"]
            .as_str()
            .ok_or_else(|| IronicError::Protocol("GET /v1 has no version.version".into()))?
            .to_owned();
        let parse = |s: &str| -> Option<(u32, u32)> {
            let (a, b) = s.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        match (parse(&max), parse(&self.api_version)) {
            (Some(have), Some(want)) if have >= want => Ok(max),
            (Some(_), Some(_)) => Err(IronicError::Rejected {
                status: 406,
                message: format!(
                    "Ironic supports API versions up to {max}, but ironic_api_version = {} is configured; upgrade Ironic or lower the option",
                    self.api_version
                ),
            }),
            _ => Err(IronicError::Protocol(format!(
                "cannot compare API versions {max:?} and {:?}",
                self.api_version
            ))),
        }
    }
}

async fn read_limited(resp: reqwest::Response) -> Result<Vec<u8>, IronicError> {
    crate::http_body::read_limited(resp, MAX_RESPONSE)
        .await
        .map_err(|e| match e {
            ReadError::Read(_) => IronicError::Unavailable(e.to_string()),
            ReadError::TooLarge(_) => IronicError::Protocol(e.to_string()),
        })
}

/// Node traits (introspection rules' `add-trait` / `remove-trait`). They
/// need Ironic API 1.37: sent with at least that version whatever
/// `ironic_api_version` says.
impl IronicClient {
    const TRAITS_VERSION: (u32, u32) = (1, 37);

    fn with_traits_version(&self) -> Self {
        let parse = |v: &str| {
            v.split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        };
        let (maj, min) = Self::TRAITS_VERSION;
        match parse(&self.api_version) {
            Some(v) if v >= Self::TRAITS_VERSION => self.clone(),
            _ => IronicClient {
                api_version: format!("{maj}.{min}"),
                ..self.clone()
            },
        }
    }

    /// `PUT /v1/nodes/{uuid}/traits/{trait}`.
    pub async fn add_node_trait(&self, uuid: &str, name: &str) -> Result<(), IronicError> {
        self.with_traits_version()
            .call(
                "add_node_trait",
                Method::PUT,
                &format!("/v1/nodes/{uuid}/traits/{name}"),
                None,
            )
            .await
            .map(drop)
    }

    /// `DELETE /v1/nodes/{uuid}/traits/{trait}`; a trait the node does not
    /// have is not an error (as the inspector).
    pub async fn remove_node_trait(&self, uuid: &str, name: &str) -> Result<(), IronicError> {
        match self
            .with_traits_version()
            .call(
                "remove_node_trait",
                Method::DELETE,
                &format!("/v1/nodes/{uuid}/traits/{name}"),
                None,
            )
            .await
        {
            Ok(_) | Err(IronicError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ironic_error_bodies_are_unwrapped() {
        let nested = br#"{"error_message": "{\"faultstring\": \"Node abc could not be found.\", \"debuginfo\": null}"}"#;
        assert_eq!(error_message(nested), "Node abc could not be found.");
        assert_eq!(error_message(br#"{"faultstring": "x"}"#), "x");
        assert_eq!(error_message(b"plain text"), "plain text");
        assert!(error_message(&vec![b'a'; 10_000]).len() <= 500);
    }
}
