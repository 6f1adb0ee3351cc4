//! The OpenAPI document against the real router: every route in
//! `api::router` is documented with its methods, nothing documented is
//! missing from the router, and the document is served as OpenAPI 3.1.

mod api_support;

use std::collections::BTreeSet;

use api_support::{Env, NODE};
use axum::http::{Method, StatusCode};

/// (path, method) of every `.route(...)` in the router's source.
fn routes_in_source() -> anyhow::Result<BTreeSet<(String, String)>> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs"))?;
    let mut out = BTreeSet::new();
    for part in src.split(".route(").skip(1) {
        let Some(rest) = part.trim_start().strip_prefix('"') else {
            continue;
        };
        let Some((path, tail)) = rest.split_once('"') else {
            continue;
        };
        // The method chain runs to the end of this `.route(...)`.
        let mut depth = 1usize;
        let mut end = tail.len();
        for (i, c) in tail.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let chain = &tail[..end];
        for m in ["get", "post", "put", "patch", "delete"] {
            if chain.contains(&format!("{m}(")) {
                out.insert((path.to_owned(), m.to_owned()));
            }
        }
    }
    Ok(out)
}

#[tokio::test]
async fn every_route_is_documented_and_nothing_else() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    let (code, doc) = e.call(Method::GET, "/v1/openapi.json", None).await?;
    assert_eq!(code, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap_or_default().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for m in item.as_object().into_iter().flatten().map(|(k, _)| k) {
            documented.insert((path.clone(), m.clone()));
        }
    }
    let routed: BTreeSet<_> = routes_in_source()?
        .into_iter()
        // The router names a node {uuid}; the document says {node} (a
        // UUID or a name). A rule is {uuid} in both.
        .map(|(p, m)| {
            let p = if p.starts_with("/v1/introspection/") {
                p.replace("{uuid}", "{node}")
            } else {
                p
            };
            (p, m)
        })
        .collect();
    assert!(
        routed.len() >= 15,
        "the source parse found the routes: {routed:?}"
    );
    assert_eq!(documented, routed, "documented vs routed");
    // And the router answers each documented route (not its fallback).
    for (path, m) in &documented {
        let uri = path
            .replace("{node}", NODE)
            .replace("{uuid}", NODE)
            .replace("{version}", "v9");
        let method = Method::from_bytes(m.to_uppercase().as_bytes())?;
        let req = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .body(axum::body::Body::empty())?;
        let resp = tower::ServiceExt::oneshot(e.router().clone(), req).await?;
        let code = resp.status();
        assert_ne!(code, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}");
        if uri == "/v1/events" {
            continue; // a stream that does not end
        }
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
        assert!(
            !String::from_utf8_lossy(&body).contains("The requested URL was not found"),
            "{m} {uri}"
        );
    }
    Ok(())
}
