//! `GET /v1/events`: Server-Sent Events of state changes, filtered by
//! node, with the current status first and keep-alive comments.

mod api_support;

use std::time::Duration;

use api_support::{BMC, Env, MAC, NODE, OTHER, report};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Reads SSE frames until `n` events (or comments, when `comments`) came.
struct Reader {
    stream: axum::body::BodyDataStream,
    buf: String,
}

impl Reader {
    async fn open(e: &Env, uri: &str) -> anyhow::Result<Reader> {
        let req = Request::builder().uri(uri).body(Body::empty())?;
        let resp = e.router().clone().oneshot(req).await?;
        anyhow::ensure!(resp.status() == StatusCode::OK, "{}", resp.status());
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        anyhow::ensure!(ct.starts_with("text/event-stream"), "{ct}");
        Ok(Reader {
            stream: resp.into_body().into_data_stream(),
            buf: String::new(),
        })
    }

    /// The next block (event or comment), within 5 s.
    async fn next(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block = self.buf[..i].to_owned();
                self.buf.drain(..i + 2);
                return Ok(block);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
            self.buf.push_str(std::str::from_utf8(&chunk)?);
        }
    }

    /// The next event (comments skipped): its name and JSON data.
    async fn event(&mut self) -> anyhow::Result<(String, Value)> {
        loop {
            let block = self.next().await?;
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !name.is_empty() {
                return Ok((name, serde_json::from_str(&data)?));
            }
        }
    }
}

#[tokio::test]
async fn a_node_is_followed_from_its_status_to_its_end() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    e.add_node(NODE, BMC, MAC);
    e.add_node(OTHER, "10.0.0.6", "52:54:00:12:34:57");
    e.start_waiting(NODE).await?;
    let mut r = Reader::open(&e, &format!("/v1/events?node={NODE}")).await?;
    let (name, v) = r.event().await?;
    assert_eq!(name, "status");
    assert_eq!(
        (v["uuid"].clone(), v["state"].clone()),
        (json!(NODE), json!("waiting"))
    );
    // Another node's changes are not shown.
    e.start_waiting(OTHER).await?;
    let (code, _) = e
        .call(Method::POST, "/v1/continue", Some(&report(BMC, MAC)))
        .await?;
    assert_eq!(code, StatusCode::OK);
    let (name, v) = r.event().await?;
    assert_eq!(name, "state");
    assert_eq!(
        (v["node"].clone(), v["from"].clone(), v["to"].clone()),
        (json!(NODE), json!("waiting"), json!("processing"))
    );
    let (_, v) = r.event().await?;
    assert_eq!(
        (v["to"].clone(), v["finished"].clone()),
        (json!("finished"), json!(true))
    );
    Ok(())
}

#[tokio::test]
async fn unfiltered_streams_see_every_node_and_idle_ones_keep_alive() -> anyhow::Result<()> {
    let e = Env::new("events_keep_alive = 0.1").await?;
    e.add_node(NODE, BMC, MAC);
    let mut r = Reader::open(&e, "/v1/events").await?;
    assert_eq!(r.next().await?, ": keep-alive", "a comment while idle");
    let (code, _) = e
        .call(Method::POST, &format!("/v1/introspection/{NODE}"), None)
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (name, v) = r.event().await?;
    assert_eq!(
        (name.as_str(), v["from"].clone(), v["to"].clone()),
        ("state", json!(null), json!("starting"))
    );
    Ok(())
}

#[tokio::test]
async fn bad_filters_are_typed_errors() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    for (q, code) in [
        ("node=", StatusCode::BAD_REQUEST),
        ("node=,", StatusCode::BAD_REQUEST),
        ("node=bad%20name", StatusCode::BAD_REQUEST),
        ("node=no-such-node", StatusCode::NOT_FOUND),
    ] {
        let (got, v) = e.call(Method::GET, &format!("/v1/events?{q}"), None).await?;
        assert_eq!(got, code, "{q}: {v}");
        assert!(v["error"]["message"].is_string());
    }
    let many = vec![NODE; 1001].join(",");
    let (got, _) = e
        .call(Method::GET, &format!("/v1/events?node={many}"), None)
        .await?;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn events_need_the_same_authentication_as_statuses() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("htpasswd");
    let hash = bcrypt::hash("secret", 4)?;
    std::fs::write(&file, format!("admin:{hash}\n"))?;
    let e = Env::new(&format!(
        "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}",
        file.display()
    ))
    .await?;
    let (code, v) = e.call(Method::GET, "/v1/events", None).await?;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{v}");
    Ok(())
}
