//! Shared by the auth tests: a config for each strategy, and a tiny router
//! shaped like the daemon's (public version/continue routes, operator
//! routes behind `auth::require_operator`, applied the way `api` does)
//! whose handlers echo what the middleware handed them. The matrix is also
//! run on the product's router (`auth_matrix.rs`, last test).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{get, post};
use discoverd::api::auth::{self, Authenticator, Operator};
use discoverd::config::Config;
use discoverd::keystone::Session;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";

/// Operator routes: (method, path).
pub const OPERATOR_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/introspection/e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11"),
    ("GET", "/v1/introspection/e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11"),
    ("POST", "/v1/discover"),
];
/// Routes that are never behind auth.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[("GET", "/"), ("GET", "/v1"), ("POST", "/v1/continue")];

pub fn config(text: &str) -> anyhow::Result<Config> {
    let text = format!("[discoverd]\ndatabase = /nonexistent/discoverd.sqlite\n{text}\n");
    let ini = common::ini::IniFile::parse(Path::new("test.conf"), &text)?;
    Ok(Config::from_ini(&ini)?)
}

/// The config for the fake Keystone at `url` (the `…/v3` root).
pub fn keystone_config(url: &str, extra: &str) -> anyhow::Result<Config> {
    config(&format!(
        "auth_strategy = keystone\nos_auth_url = {url}\nos_username = {}\nos_password = {}\nos_tenant_name = service\n{extra}",
        test_support::fake_keystone::SERVICE_USER,
        test_support::fake_keystone::SERVICE_PASSWORD,
    ))
}

pub fn authenticator(config: &Config) -> anyhow::Result<Arc<Authenticator>> {
    let session = Session::from_config(config)?;
    Ok(Authenticator::from_config(config, session)?)
}

/// What an operator handler saw: identity headers and the extension.
async fn echo(req: Request) -> axum::Json<Value> {
    let seen: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .filter(|(k, _)| auth::IDENTITY_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
        .collect();
    let op = req.extensions().get::<Operator>().cloned();
    axum::Json(json!({
        "identity_headers": seen,
        "operator": op.map(|o| json!({"user": o.user, "roles": o.roles})),
    }))
}

async fn public() -> axum::Json<Value> {
    axum::Json(json!({}))
}

pub fn router(auth: Arc<Authenticator>) -> Router {
    let operator = Router::new()
        .route("/v1/introspection/{uuid}", post(echo).get(echo))
        .route("/v1/discover", post(echo))
        .route_layer(axum::middleware::from_fn_with_state(auth, auth::require_operator));
    Router::new()
        .route("/", get(public))
        .route("/v1", get(public))
        .route("/v1/continue", post(public))
        .merge(operator)
}

/// One request; returns status, headers and the JSON body (Null if empty).
pub async fn call(
    r: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes())?)
        .uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = r.clone().oneshot(req.body(Body::from("[]"))?).await?;
    let status = resp.status();
    let h = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        // Not every answer is JSON (/metrics is text).
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok((status, h, v))
}

/// `Authorization: Basic …` for user:password.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
