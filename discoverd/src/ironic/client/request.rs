//! One Ironic request and the retry loop around it: every try is timed
//! out within the budget, reported to the observer, and classified
//! (success, permanent refusal, or transient and retried after a pause).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::IronicClient;
use crate::http_body::ReadError;
use crate::ironic::error::{IronicError, IronicErrorKind as Kind};
use crate::ironic::model::PatchOp;
use crate::ironic::observer::{CallOutcome, CallRecord};
use crate::ironic::retry::{Budget, current_deadline, retry_after, transient_status};

/// Largest Ironic response body we read (a page of 1000 ports is ~0.5 MiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// One request: what to send and how to name it.
pub(super) struct Req<'a> {
    /// The operation, for observers (`get_node`).
    pub call: &'static str,
    pub method: Method,
    pub path: &'a str,
    /// The path without identifiers (`/v1/nodes/{uuid}`).
    pub template: &'static str,
    pub body: Option<&'a Value>,
}

impl Req<'_> {
    pub fn err(&self, kind: Kind) -> IronicError {
        IronicError::new(self.method.as_str(), self.path, kind)
    }

    /// GET and PUT leave the same result however often they are repeated.
    fn idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::PUT | Method::HEAD)
    }

    /// Whether a try may follow one that may have been applied: a PATCH
    /// unless it appends; a port creation (Ironic refuses a second port
    /// with the MAC, which `create_port` resolves); not a node creation
    /// (a repeat makes a second node).
    fn repeatable(&self) -> bool {
        match self.method {
            Method::PATCH => self.body.is_some_and(|b| {
                serde_json::from_value::<Vec<PatchOp>>(b.clone()).is_ok_and(|ops| patch_repeatable(&ops))
            }),
            Method::POST => self.call != "create_node",
            _ => true,
        }
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
pub(super) fn error_message(body: &[u8]) -> String {
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
/// check after a replayed PATCH was refused). Only the last operation on
/// a path shows (an add then a remove of the same path leaves nothing).
pub(super) fn patch_applied(resource: &Value, ops: &[PatchOp]) -> bool {
    let last = |i: usize, op: &PatchOp| ops[i + 1..].iter().all(|later| later.path() != op.path());
    ops.iter()
        .enumerate()
        .filter(|(i, op)| last(*i, op))
        .all(|(_, op)| match op {
            PatchOp::Add { path, value } | PatchOp::Replace { path, value } => {
                resource.pointer(path) == Some(value)
            }
            PatchOp::Remove { path } => resource.pointer(path).is_none(),
        })
}

/// A patch is safe to repeat unless it appends to an array (`/-`).
pub(super) fn patch_repeatable(ops: &[PatchOp]) -> bool {
    ops.iter().all(|op| !op.path().ends_with("/-"))
}

/// A GET request.
pub(super) fn get<'a>(call: &'static str, path: &'a str, template: &'static str) -> Req<'a> {
    Req {
        call,
        method: Method::GET,
        path,
        template,
        body: None,
    }
}

impl IronicClient {
    /// One request with transient failures retried within the budget.
    pub(super) async fn call(&self, req: &Req<'_>) -> Result<Vec<u8>, IronicError> {
        let mut budget = Budget::new(&self.retry, current_deadline());
        self.retrying(req, &mut budget, false).await
    }

    /// The retry loop. With `conflict_is_final`, a 409 is returned to the
    /// caller (who knows what it means) instead of retried as "locked".
    pub(super) async fn retrying(
        &self,
        req: &Req<'_>,
        budget: &mut Budget,
        conflict_is_final: bool,
    ) -> Result<Vec<u8>, IronicError> {
        let mut reauth = false;
        loop {
            // A try is never cut short by the budget: a slow Ironic is not
            // a failing one (cutting it turned load into failures). The
            // budget decides whether another try starts.
            let timeout = self.timeout;
            budget.attempts += 1;
            // A slot among `ironic_max_requests`; the wait for it is not
            // part of the try's timeout.
            let slot = self.in_flight.acquire().await;
            let began = Instant::now();
            let tried = match slot {
                Ok(_slot) => match tokio::time::timeout(timeout, self.once(req)).await {
                    Ok(t) => t,
                    Err(_) => Try::TimedOut,
                },
                Err(_) => Try::NotSent("the Ironic client is closed".into()),
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
            if budget.maybe_applied && !req.repeatable() {
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

    pub(super) async fn json<T: DeserializeOwned>(&self, req: &Req<'_>) -> Result<T, IronicError> {
        let bytes = self.call(req).await?;
        serde_json::from_slice(&bytes).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }
}
