//! Shared by the `api_*` tests: a daemon in-process on the fake Ironic,
//! and requests through its router (`oneshot`).

#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use test_support::{FakeIronic, TestApp};
use tower::ServiceExt;

pub const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";
pub const OTHER: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";
pub const MAC: &str = "52:54:00:12:34:56";
pub const BMC: &str = "10.0.0.5";

pub struct Env {
    pub fake: FakeIronic,
    pub t: TestApp,
}

impl Env {
    pub async fn new(extra: &str) -> anyhow::Result<Env> {
        let fake = FakeIronic::start().await?;
        let t = TestApp::new(&fake.url(), extra).await?;
        Ok(Env { fake, t })
    }

    pub fn router(&self) -> &Router {
        &self.t.router
    }

    /// A request with optional headers and body; status, headers, JSON.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_vec())))?;
        let resp = self.t.router.clone().oneshot(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await?;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, headers, v))
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let text = body.map(ToString::to_string);
        let (s, _, v) = self
            .send(method, uri, &[], text.as_deref().map(str::as_bytes))
            .await?;
        Ok((s, v))
    }

    /// A node (with one port) in the fake Ironic.
    pub fn add_node(&self, uuid: &str, bmc: &str, mac: &str) {
        self.fake.add_node(uuid, bmc);
        self.fake.add_port(uuid, mac);
    }

    /// Starts introspection and waits for `waiting`.
    pub async fn start_waiting(&self, uuid: &str) -> anyhow::Result<()> {
        let (code, v) = self
            .call(Method::POST, &format!("/v1/introspection/{uuid}"), None)
            .await?;
        anyhow::ensure!(code == StatusCode::ACCEPTED, "start: {code} {v}");
        self.wait_status(uuid, |v| v["state"] == "waiting").await?;
        Ok(())
    }

    /// Waits until the node's status satisfies `f`.
    pub async fn wait_status(&self, uuid: &str, f: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (code, v) = self
                .call(Method::GET, &format!("/v1/introspection/{uuid}"), None)
                .await?;
            if code == StatusCode::OK && f(&v) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("status of {uuid} never matched; last: {code} {v}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A header's value as text.
pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A discoverd 1.0 style report for the node `add_node` made with `bmc`/`mac`.
pub fn report(bmc: &str, mac: &str) -> Value {
    serde_json::json!({"ipmi_address": bmc, "interfaces": {"eth0": {"mac": mac, "ip": "192.0.2.10"}},
           "cpus": 2, "cpu_arch": "x86_64", "memory_mb": 2048, "local_gb": 20})
}
