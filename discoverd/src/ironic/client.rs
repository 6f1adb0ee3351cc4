//! A typed Ironic REST client: the calls discoverd makes, with an explicit
//! API microversion, a timeout on every try, and transient failures
//! retried within a budget ([`super::retry`]). Every request is reported
//! to a [`CallObserver`]. Calls that change something are made safe to
//! repeat: a port creation whose answer was lost is found by its MAC, a
//! replayed PATCH whose `remove` already happened is checked against the
//! resource.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::TokenSource;
use super::error::{IronicError, IronicErrorKind as Kind};
use super::model::{InterfaceValidation, Node, PatchOp, Port};
use super::observer::{CallOutcome, CallRecord, Observer, TraceCalls};
use super::retry::{Budget, RetryPolicy, current_deadline, retry_after, transient_status};
use crate::http_body::ReadError;

/// Largest Ironic response body we read (a page of 1000 ports is ~0.5 MiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Page size when listing ports.
const PAGE: usize = 1000;

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IronicClient {
    http: reqwest::Client,
    base: String,
    api_version: String,
    token: Option<Arc<dyn TokenSource>>,
    retry: RetryPolicy,
    timeout: Duration,
    observer: Observer,
}

/// One request: what to send and how to name it.
struct Req<'a> {
    /// The operation, for observers (`get_node`).
    call: &'static str,
    method: Method,
    path: &'a str,
    /// The path without identifiers (`/v1/nodes/{uuid}`).
    template: &'static str,
    body: Option<&'a Value>,
}

impl Req<'_> {
    fn err(&self, kind: Kind) -> IronicError {
        IronicError::new(self.method.as_str(), self.path, kind)
    }

    /// GET and PUT leave the same result however often they are repeated.
    fn idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::PUT | Method::HEAD)
    }
}

/// How one try ended, before classification.
enum Try {
    Answer {
        status: StatusCode,
        body: Vec<u8>,
        retry_after: Option<Duration>,
    },
    /// Failed before anything was sent (connection refused): never applied.
    NotSent(String),
    /// Failed after the request may have reached Ironic.
    Lost(String),
    TimedOut,
    /// Not a transport problem (no token): final.
    Fatal(Kind),
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

/// Whether `resource` already shows every operation of a patch (the
/// check after a replayed PATCH was refused).
fn patch_applied(resource: &Value, ops: &[PatchOp]) -> bool {
    ops.iter().all(|op| match op {
        PatchOp::Add { path, value } | PatchOp::Replace { path, value } => {
            resource.pointer(path) == Some(value)
        }
        PatchOp::Remove { path } => resource.pointer(path).is_none(),
    })
}

/// A patch is safe to repeat unless it appends to an array (`/-`).
fn patch_repeatable(ops: &[PatchOp]) -> bool {
    ops.iter().all(|op| !op.path().ends_with("/-"))
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
            .map_err(|e| {
                IronicError::new(
                    "",
                    base,
                    Kind::Protocol(format!("failed to build the HTTP client: {e}")),
                )
            })?;
        Ok(IronicClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_version: api_version.to_owned(),
            token,
            retry,
            timeout,
            observer: Arc::new(TraceCalls),
        })
    }

    /// A client that makes one try, for callers that retry on their own
    /// terms (start-up's `ironic_retry_attempts`, readiness checks), so
    /// tries do not multiply.
    pub fn single_attempt(&self) -> Self {
        IronicClient {
            retry: RetryPolicy {
                budget: Duration::ZERO,
                conflict_attempts: 1,
                ..self.retry
            },
            ..self.clone()
        }
    }

    /// Reports every request to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// The base URL, for logs.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// One request with transient failures retried within the budget.
    async fn call(&self, req: &Req<'_>) -> Result<Vec<u8>, IronicError> {
        let mut budget = Budget::new(&self.retry, current_deadline());
        self.retrying(req, &mut budget, false).await
    }

    /// The retry loop. With `conflict_is_final`, a 409 is returned to the
    /// caller (who knows what it means) instead of retried as "locked".
    async fn retrying(
        &self,
        req: &Req<'_>,
        budget: &mut Budget,
        conflict_is_final: bool,
    ) -> Result<Vec<u8>, IronicError> {
        let mut reauth = false;
        loop {
            let timeout = budget.attempt_timeout(self.timeout);
            budget.attempts += 1;
            let began = Instant::now();
            let tried = match tokio::time::timeout(timeout, self.once(req)).await {
                Ok(t) => t,
                Err(_) => Try::TimedOut,
            };
            let outcome = match &tried {
                Try::Answer { status, .. } => CallOutcome::Status(status.as_u16()),
                Try::TimedOut => CallOutcome::TimedOut,
                Try::NotSent(_) | Try::Lost(_) | Try::Fatal(_) => CallOutcome::ConnectionFailed,
            };
            self.observer.observe(&CallRecord {
                call: req.call,
                method: req.method.as_str(),
                path: req.template,
                outcome,
                took: began.elapsed(),
                attempt: budget.attempts,
            });
            let (last, asked, conflict) = match tried {
                Try::Answer { status, body, .. } if status.is_success() => return Ok(body),
                Try::Answer {
                    status,
                    body,
                    retry_after,
                } => {
                    let message = error_message(&body);
                    match status {
                        StatusCode::NOT_FOUND => return Err(req.err(Kind::NotFound(message))),
                        StatusCode::CONFLICT if conflict_is_final => {
                            return Err(req.err(Kind::Conflict(message)));
                        }
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => match &self.token {
                            Some(t) if !reauth => {
                                reauth = true;
                                t.invalidate();
                                continue;
                            }
                            _ => return Err(req.err(Kind::Auth(message))),
                        },
                        s if transient_status(s) => {
                            if s.is_server_error() && !req.idempotent() {
                                budget.maybe_applied = true;
                            }
                            if s == StatusCode::CONFLICT {
                                budget.conflicts += 1;
                            }
                            (format!("{s}: {message}"), retry_after, s == StatusCode::CONFLICT)
                        }
                        s => {
                            return Err(req.err(Kind::Rejected {
                                status: s.as_u16(),
                                message,
                            }));
                        }
                    }
                }
                Try::NotSent(m) => (m, None, false),
                Try::Lost(m) => {
                    budget.maybe_applied |= !req.idempotent();
                    (m, None, false)
                }
                Try::TimedOut => {
                    budget.maybe_applied |= !req.idempotent();
                    (
                        format!("no answer within {:.1} s", timeout.as_secs_f64()),
                        None,
                        false,
                    )
                }
                Try::Fatal(kind) => return Err(req.err(kind)),
            };
            if budget.maybe_applied
                && req.method == Method::PATCH
                && !req.body.is_some_and(|b| {
                    serde_json::from_value::<Vec<PatchOp>>(b.clone()).is_ok_and(|ops| patch_repeatable(&ops))
                })
            {
                return Err(req.err(Kind::OutcomeUnknown(last)));
            }
            let Some(pause) = budget.pause(&self.retry, conflict, asked) else {
                return Err(req.err(Kind::BudgetSpent {
                    attempts: budget.attempts,
                    waited: budget.waited(),
                    last,
                }));
            };
            tracing::debug!(
                call = req.call,
                path = req.path,
                attempt = budget.attempts,
                ?pause,
                "Ironic call failed ({last}), retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    async fn once(&self, req: &Req<'_>) -> Try {
        let url = format!("{}{}", self.base, req.path);
        let mut r = self
            .http
            .request(req.method.clone(), &url)
            .header("X-OpenStack-Ironic-API-Version", &self.api_version)
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            match t.token().await {
                Ok(token) => r = r.header("X-Auth-Token", token),
                Err(e) if e.retryable => return Try::NotSent(e.to_string()),
                Err(e) => return Try::Fatal(Kind::Auth(e.to_string())),
            }
        }
        if let Some(b) = req.body {
            r = r.json(b);
        }
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) if e.is_connect() => return Try::NotSent(format!("{url}: {e}")),
            Err(e) if e.is_timeout() => return Try::TimedOut,
            Err(e) => return Try::Lost(format!("{url}: {e}")),
        };
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        match crate::http_body::read_limited(resp, MAX_RESPONSE).await {
            Ok(body) => Try::Answer {
                status,
                body,
                retry_after,
            },
            Err(e @ ReadError::Read(_)) => Try::Lost(e.to_string()),
            Err(e @ ReadError::TooLarge(_)) => Try::Fatal(Kind::Protocol(e.to_string())),
        }
    }

    async fn json<T: DeserializeOwned>(&self, req: &Req<'_>) -> Result<T, IronicError> {
        let bytes = self.call(req).await?;
        serde_json::from_slice(&bytes).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }

    /// `GET /v1/nodes/{uuid}`.
    pub async fn get_node(&self, uuid: &str) -> Result<Node, IronicError> {
        self.json(&get("get_node", &format!("/v1/nodes/{uuid}"), "/v1/nodes/{uuid}"))
            .await
    }

    /// The `power` part of `GET /v1/nodes/{uuid}/validate`.
    pub async fn validate_power(&self, uuid: &str) -> Result<InterfaceValidation, IronicError> {
        let path = format!("/v1/nodes/{uuid}/validate");
        let req = get("validate", &path, "/v1/nodes/{uuid}/validate");
        let v: Value = self.json(&req).await?;
        serde_json::from_value(v.get("power").cloned().unwrap_or(Value::Null))
            .map_err(|e| req.err(Kind::Protocol(format!("validate: {e}"))))
    }

    /// Every page of a port listing.
    async fn ports(&self, first: String, template: &'static str) -> Result<Vec<Port>, IronicError> {
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
            let req = get("list_ports", &path, template);
            let page: Page = self.json(&req).await?;
            let got = page.ports.len();
            out.extend(page.ports);
            match page.next {
                Some(next) if got > 0 => {
                    let rel = next.find("/v1/").map(|i| next[i..].to_owned());
                    path = rel.ok_or_else(|| req.err(Kind::Protocol(format!("bad next link {next:?}"))))?;
                }
                _ => return Ok(out),
            }
        }
        Err(IronicError::new(
            "GET",
            &path,
            Kind::Protocol("port listing did not end".into()),
        ))
    }

    /// `GET /v1/nodes/{uuid}/ports`, all pages.
    pub async fn list_node_ports(&self, uuid: &str) -> Result<Vec<Port>, IronicError> {
        self.ports(
            format!("/v1/nodes/{uuid}/ports?limit={PAGE}&fields=uuid,address,node_uuid,extra"),
            "/v1/nodes/{uuid}/ports",
        )
        .await
    }

    /// `GET /v1/ports`, all pages.
    pub async fn list_all_ports(&self) -> Result<Vec<Port>, IronicError> {
        self.ports(
            format!("/v1/ports?limit={PAGE}&fields=uuid,address,node_uuid"),
            "/v1/ports",
        )
        .await
    }

    /// `GET /v1/ports?address=…`: the port with this MAC, if any.
    pub async fn find_port(&self, address: &str) -> Result<Option<Port>, IronicError> {
        let address = address.to_lowercase();
        let ports = self
            .ports(
                format!("/v1/ports?address={address}&fields=uuid,address,node_uuid,extra"),
                "/v1/ports?address={address}",
            )
            .await?;
        Ok(ports
            .into_iter()
            .find(|p| p.address.eq_ignore_ascii_case(&address)))
    }

    /// A PATCH, repeated on transient failures. Repeating add/replace
    /// changes nothing; a `remove` that already happened makes Ironic
    /// answer 400, so a 400 after a try whose answer was lost is checked
    /// against the resource: if it already shows the patch, it was
    /// applied. Patches that append (`/-`) are not repeated once a try
    /// may have been applied.
    async fn patch(&self, req: &Req<'_>, ops: &[PatchOp]) -> Result<Value, IronicError> {
        let mut budget = Budget::new(&self.retry, current_deadline());
        match self.retrying(req, &mut budget, false).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| req.err(Kind::Protocol(e.to_string()))),
            Err(e) if budget.maybe_applied && matches!(e.kind, Kind::Rejected { status: 400, .. }) => {
                match self.json::<Value>(&get(req.call, req.path, req.template)).await {
                    Ok(current) if patch_applied(&current, ops) => {
                        tracing::info!(
                            path = req.path,
                            "a repeated PATCH was refused, but the first one had been applied"
                        );
                        Ok(current)
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `PATCH /v1/nodes/{uuid}`; returns the updated node.
    pub async fn patch_node(&self, uuid: &str, ops: &[PatchOp]) -> Result<Node, IronicError> {
        let path = format!("/v1/nodes/{uuid}");
        let body = serde_json::to_value(ops)
            .map_err(|e| IronicError::new("PATCH", &path, Kind::Protocol(e.to_string())))?;
        let req = Req {
            call: "patch_node",
            method: Method::PATCH,
            path: &path,
            template: "/v1/nodes/{uuid}",
            body: Some(&body),
        };
        let v = self.patch(&req, ops).await?;
        serde_json::from_value(v).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }

    /// `PATCH /v1/ports/{uuid}`.
    pub async fn patch_port(&self, uuid: &str, ops: &[PatchOp]) -> Result<Port, IronicError> {
        let path = format!("/v1/ports/{uuid}");
        let body = serde_json::to_value(ops)
            .map_err(|e| IronicError::new("PATCH", &path, Kind::Protocol(e.to_string())))?;
        let req = Req {
            call: "patch_port",
            method: Method::PATCH,
            path: &path,
            template: "/v1/ports/{uuid}",
            body: Some(&body),
        };
        let v = self.patch(&req, ops).await?;
        serde_json::from_value(v).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }

    /// `POST /v1/ports`, made idempotent: a 409 means a port with this MAC
    /// exists; if it is this node's (our own creation whose answer was
    /// lost, or a concurrent one) it is returned, if it is another node's
    /// the result is a `Conflict`; if there is none the 409 was a lock
    /// and is retried.
    pub async fn create_port(&self, node_uuid: &str, address: &str) -> Result<Port, IronicError> {
        let body = serde_json::json!({"node_uuid": node_uuid, "address": address});
        let req = Req {
            call: "create_port",
            method: Method::POST,
            path: "/v1/ports",
            template: "/v1/ports",
            body: Some(&body),
        };
        let mut budget = Budget::new(&self.retry, current_deadline());
        loop {
            let conflict = match self.retrying(&req, &mut budget, true).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| req.err(Kind::Protocol(e.to_string())));
                }
                Err(e) if e.is_conflict() => e,
                Err(e) => return Err(e),
            };
            match self.find_port(address).await? {
                Some(p) if p.node_uuid.as_deref() == Some(node_uuid) => return Ok(p),
                Some(p) => {
                    return Err(req.err(Kind::Conflict(format!(
                        "MAC {address} already belongs to port {} of node {}",
                        p.uuid,
                        p.node_uuid.as_deref().unwrap_or("(none)")
                    ))));
                }
                None => {
                    budget.conflicts += 1;
                    let Some(pause) = budget.pause(&self.retry, true, None) else {
                        return Err(req.err(Kind::BudgetSpent {
                            attempts: budget.attempts,
                            waited: budget.waited(),
                            last: conflict.to_string(),
                        }));
                    };
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// A PUT whose answer we do not read (repeating it is harmless).
    async fn put(
        &self,
        call: &'static str,
        path: &str,
        template: &'static str,
        body: Value,
    ) -> Result<(), IronicError> {
        self.call(&Req {
            call,
            method: Method::PUT,
            path,
            template,
            body: Some(&body),
        })
        .await
        .map(drop)
    }

    /// `PUT /v1/nodes/{uuid}/management/boot_device` (PXE, one boot only).
    pub async fn set_pxe_boot(&self, uuid: &str) -> Result<(), IronicError> {
        self.put(
            "set_boot_device",
            &format!("/v1/nodes/{uuid}/management/boot_device"),
            "/v1/nodes/{uuid}/management/boot_device",
            serde_json::json!({"boot_device": "pxe", "persistent": false}),
        )
        .await
    }

    /// `PUT /v1/nodes/{uuid}/states/power`.
    pub async fn set_power_state(&self, uuid: &str, target: &str) -> Result<(), IronicError> {
        self.put(
            "set_power_state",
            &format!("/v1/nodes/{uuid}/states/power"),
            "/v1/nodes/{uuid}/states/power",
            serde_json::json!({"target": target}),
        )
        .await
    }

    /// Checks Ironic answers and supports our microversion (`GET /v1`).
    /// Returns Ironic's maximum version.
    pub async fn check_api_version(&self) -> Result<String, IronicError> {
        let req = get("version", "/v1", "/v1");
        let v: Value = self.json(&req).await?;
        let max = v["version"]["version"]
            .as_str()
            .ok_or_else(|| req.err(Kind::Protocol("GET /v1 has no version.version".into())))?
            .to_owned();
        let parse = |s: &str| -> Option<(u32, u32)> {
            let (a, b) = s.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        match (parse(&max), parse(&self.api_version)) {
            (Some(have), Some(want)) if have >= want => Ok(max),
            (Some(_), Some(_)) => Err(req.err(Kind::Rejected {
                status: 406,
                message: format!(
                    "Ironic supports API versions up to {max}, but ironic_api_version = {} is configured; upgrade Ironic or lower the option",
                    self.api_version
                ),
            })),
            _ => Err(req.err(Kind::Protocol(format!(
                "cannot compare API versions {max:?} and {:?}",
                self.api_version
            )))),
        }
    }
}

/// A GET request.
fn get<'a>(call: &'static str, path: &'a str, template: &'static str) -> Req<'a> {
    Req {
        call,
        method: Method::GET,
        path,
        template,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_patches_are_checked_against_the_resource() {
        let node = serde_json::json!({"extra": {"newly_discovered": "true"}, "properties": {"cpus": "4"}});
        let done = [
            PatchOp::add("/extra/newly_discovered", "true"),
            PatchOp::remove("/extra/on_discovery"),
        ];
        assert!(patch_applied(&node, &done));
        assert!(!patch_applied(&node, &[PatchOp::remove("/properties/cpus")]));
        assert!(!patch_applied(&node, &[PatchOp::add("/properties/cpus", "8")]));
        assert!(patch_repeatable(&done));
        assert!(!patch_repeatable(&[PatchOp::add("/extra/list/-", "x")]));
    }

    #[test]
    fn ironic_error_bodies_are_unwrapped() {
        let nested = br#"{"error_message": "{\"faultstring\": \"Node abc could not be found.\", \"debuginfo\": null}"}"#;
        assert_eq!(error_message(nested), "Node abc could not be found.");
        assert_eq!(error_message(br#"{"faultstring": "x"}"#), "x");
        assert_eq!(error_message(b"plain text"), "plain text");
        assert!(error_message(&vec![b'a'; 10_000]).len() <= 500);
    }
}
