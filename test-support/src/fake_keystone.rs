//! An in-process fake of the Keystone v3 token API (issue and validate),
//! for auth unit and failure tests. Real-Keystone behaviour it copies:
//! the token comes in `X-Subject-Token`, validation needs a service token,
//! a garbage subject token is a 404 (shared/spec/keystone.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The service user the fake accepts.
pub const SERVICE_USER: &str = "discoverd";
pub const SERVICE_PASSWORD: &str = "s3rvice-pass";
pub const SERVICE_TOKEN: &str = "gAAAAA-service-token";
/// Subject tokens the fake knows.
pub const ADMIN_TOKEN: &str = "gAAAAA-admin-token";
pub const MEMBER_TOKEN: &str = "gAAAAA-member-token";
pub const EXPIRED_TOKEN: &str = "gAAAAA-expired-token";

/// A subject token added by a test: (user, roles, expires_at).
type ExtraToken = (String, Vec<String>, String);

#[derive(Debug, Default)]
struct Inner {
    validations: AtomicUsize,
    issued: AtomicUsize,
    down: AtomicBool,
    ironic_url: std::sync::Mutex<String>,
    /// Tokens added with `add_token`, by token.
    extra: std::sync::Mutex<std::collections::HashMap<String, ExtraToken>>,
    /// Validation answers this status instead (failure injection).
    validate_status: std::sync::Mutex<Option<StatusCode>>,
    /// Validation waits this long before answering.
    validate_delay: std::sync::Mutex<Option<std::time::Duration>>,
}

/// A running fake Keystone.
#[derive(Debug, Clone)]
pub struct FakeKeystone {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

fn err(status: StatusCode, msg: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "message": msg, "title": "Error"}})),
    )
        .into_response()
}

impl FakeKeystone {
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/v3/auth/tokens", post(issue).get(validate))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeKeystone { inner, addr })
    }

    /// `http://127.0.0.1:PORT/v3`.
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// Token validations answered so far.
    pub fn validations(&self) -> usize {
        self.inner.validations.load(Ordering::SeqCst)
    }

    /// Service tokens issued so far.
    pub fn issued(&self) -> usize {
        self.inner.issued.load(Ordering::SeqCst)
    }

    /// While down, every call answers 503.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Adds a subject token with these roles; `expires_at` as Keystone
    /// writes it (`2015-02-03T15:19:23.000000Z`), `None` for an hour.
    pub fn add_token(&self, token: &str, user: &str, roles: &[&str], expires_at: Option<&str>) {
        let expires = expires_at.map_or_else(in_an_hour, str::to_owned);
        self.inner
            .extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                token.to_owned(),
                (
                    user.to_owned(),
                    roles.iter().map(|r| (*r).to_owned()).collect(),
                    expires,
                ),
            );
    }

    /// Token validation answers `status` (e.g. 500) until set to `None`.
    pub fn set_validate_status(&self, status: Option<StatusCode>) {
        *self
            .inner
            .validate_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
    }

    /// Token validation answers only after `delay` (timeout injection).
    pub fn set_validate_delay(&self, delay: Option<std::time::Duration>) {
        *self
            .inner
            .validate_delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = delay;
    }

    /// The baremetal endpoint the catalog advertises.
    pub fn set_ironic_url(&self, url: &str) {
        *self
            .inner
            .ironic_url
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = url.to_owned();
    }
}

fn in_an_hour() -> String {
    let t = discoverd::domain::Timestamp::now().plus(std::time::Duration::from_secs(3600));
    format!("{}Z", t.iso8601())
}

async fn issue(State(s): State<Arc<Inner>>, axum::Json(body): axum::Json<Value>) -> Response {
    if s.down.load(Ordering::SeqCst) {
        return err(StatusCode::SERVICE_UNAVAILABLE, "down");
    }
    let user = &body["auth"]["identity"]["password"]["user"];
    if user["name"] != SERVICE_USER || user["password"] != SERVICE_PASSWORD {
        return err(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
    }
    s.issued.fetch_add(1, Ordering::SeqCst);
    let ironic = s
        .ironic_url
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let token = json!({"token": {
        "expires_at": in_an_hour(), "user": {"name": SERVICE_USER}, "project": {"name": "service"},
        "roles": [{"name": "admin"}],
        "catalog": [{"type": "baremetal", "endpoints": [{"interface": "public", "url": ironic}]}]
    }});
    let mut r = (StatusCode::CREATED, axum::Json(token)).into_response();
    if let Ok(v) = SERVICE_TOKEN.parse() {
        r.headers_mut().insert("X-Subject-Token", v);
    }
    r
}

async fn validate(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if s.down.load(Ordering::SeqCst) {
        return err(StatusCode::SERVICE_UNAVAILABLE, "down");
    }
    if headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) != Some(SERVICE_TOKEN) {
        return err(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
    }
    s.validations.fetch_add(1, Ordering::SeqCst);
    let delay = *s
        .validate_delay
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let injected = *s
        .validate_status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(status) = injected {
        return err(status, "injected failure");
    }
    let subject = headers
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let extra = s
        .extra
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(subject)
        .cloned();
    if let Some((user, roles, expires)) = extra {
        let roles: Vec<Value> = roles.into_iter().map(|r| json!({"name": r})).collect();
        return axum::Json(json!({"token": {"expires_at": expires, "user": {"name": user}, "project": {"name": "demo"}, "roles": roles}}))
            .into_response();
    }
    let (user, roles, expires) = match subject {
        ADMIN_TOKEN => (
            "admin",
            vec!["admin", "manager", "member", "reader"],
            in_an_hour(),
        ),
        MEMBER_TOKEN => ("operator-member", vec!["member", "reader"], in_an_hour()),
        EXPIRED_TOKEN => ("admin", vec!["admin"], "2015-02-03T15:19:23.000000Z".to_owned()),
        _ => return err(StatusCode::NOT_FOUND, "Could not recognize Fernet token"),
    };
    let roles: Vec<Value> = roles.into_iter().map(|r| json!({"name": r})).collect();
    axum::Json(json!({"token": {"expires_at": expires, "user": {"name": user}, "project": {"name": "demo"}, "roles": roles}}))
        .into_response()
}
