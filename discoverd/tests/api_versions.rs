//! Microversions: which version a request gets, 400/406 for bad ones, and
//! the minimum/maximum headers on every answer (errors included).

mod api_support;

use api_support::{Env, NODE, header};
use axum::http::{Method, StatusCode};
use serde_json::json;

const MIN: &str = "X-OpenStack-Ironic-Inspector-API-Minimum-Version";
const MAX: &str = "X-OpenStack-Ironic-Inspector-API-Maximum-Version";
const VER: &str = "X-OpenStack-Ironic-Inspector-API-Version";

#[tokio::test]
async fn every_answer_carries_the_range() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    for (method, uri, headers, code) in [
        (Method::GET, "/", vec![], StatusCode::OK),
        (Method::GET, "/v1", vec![], StatusCode::OK),
        (Method::GET, "/nowhere/at/all", vec![], StatusCode::NOT_FOUND),
        (
            Method::GET,
            &format!("/v1/introspection/{NODE}") as &str,
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/v1/continue",
            vec![],
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/", vec![(VER, "1.x")], StatusCode::BAD_REQUEST),
        (Method::GET, "/", vec![(VER, "1.19")], StatusCode::NOT_ACCEPTABLE),
        (Method::GET, "/", vec![(VER, "0.9")], StatusCode::NOT_ACCEPTABLE),
        (Method::GET, "/", vec![(VER, "2.0")], StatusCode::NOT_ACCEPTABLE),
        (Method::GET, "/", vec![(VER, "1.0")], StatusCode::OK),
        (Method::GET, "/", vec![(VER, "1.18")], StatusCode::OK),
        (Method::GET, "/", vec![(VER, "latest")], StatusCode::OK),
    ] {
        let (code_got, h, body) = e.send(method.clone(), uri, &headers, None).await?;
        assert_eq!(code_got, code, "{method} {uri} {headers:?}: {body}");
        assert_eq!(header(&h, MIN), Some("1.0"), "{method} {uri}");
        assert_eq!(header(&h, MAX), Some("1.18"), "{method} {uri}");
        if !code.is_success() {
            assert!(body["error"]["message"].is_string(), "{method} {uri}: {body}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn bad_versions_are_typed_errors_and_change_nothing() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    e.add_node(NODE, "10.0.0.5", "52:54:00:12:34:56");
    let start = format!("/v1/introspection/{NODE}");
    let (code, _, body) = e.send(Method::POST, &start, &[(VER, "1.99")], None).await?;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        body["error"]["message"],
        json!("Unsupported API version 1.99, supported range is 1.0 to 1.18")
    );
    let (code, _, body) = e.send(Method::POST, &start, &[(VER, "one")], None).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        json!("Malformed API version: expected string in form of X.Y or latest")
    );
    let (code, _, _) = e
        .send(
            Method::POST,
            &start,
            &[("OpenStack-API-Version", "baremetal-introspection 3.1")],
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);
    // Nothing was started.
    let (code, _) = e.call(Method::GET, &start, None).await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(e.fake.calls_to("GET", "/v1/nodes").is_empty());
    Ok(())
}

#[tokio::test]
async fn discovery_documents_match_the_inspector() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    let (code, _, v) = e.send(Method::GET, "/", &[("Host", "h:5050")], None).await?;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        v,
        json!({"versions": [{"id": "1.18", "status": "CURRENT",
            "links": [{"href": "http://h:5050/v1", "rel": "self"}]}]})
    );
    let (code, _, v) = e.send(Method::GET, "/v1", &[("Host", "h:5050")], None).await?;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = v["resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["continue", "introspection", "rules", "events"]);
    assert_eq!(
        v["resources"][1]["links"][0]["href"],
        json!("http://h:5050/v1/introspection")
    );
    let (code, _, v) = e.send(Method::GET, "/v2", &[], None).await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["message"], json!("Version v2 not found."));
    Ok(())
}
