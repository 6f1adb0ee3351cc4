//! `ops/grafana-dashboard.json` and `ops/alerts.yml` use only metrics the
//! daemon exports: every `ironic_discoverd_*` name in them must be a
//! series of a family in a real scrape of `/metrics` (TestApp's router),
//! and the alerts an operator needs are there.

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use test_support::{FakeIronic, TestApp};
use tower::ServiceExt;

const NODE: &str = "0b4a3e70-2b2a-4e55-9a8f-5b0d6a0c0a77";

/// Series names the scrape's `# TYPE` lines allow.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `ironic_discoverd_*` identifier in `text`.
fn used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ironic_discoverd_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_metrics() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.77");
    let t = TestApp::new(&ironic.url(), "metrics_public = true").await?;
    // Labelled families appear once they have a series: an Ironic call
    // that works (a start), one that fails (a node Ironic does not know)
    // and a ramdisk callback.
    for (method, uri, body) in [
        ("POST", format!("/v1/introspection/{NODE}"), ""),
        (
            "POST",
            "/v1/introspection/0b4a3e70-2b2a-4e55-9a8f-5b0d6a0cffff".to_owned(),
            "",
        ),
        ("POST", "/v1/continue".to_owned(), "[]"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))?;
        t.router.clone().oneshot(req).await?;
    }
    let resp = t
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty())?)
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let scrape = String::from_utf8(resp.into_body().collect().await?.to_bytes().to_vec())?;
    let exported = exported(&scrape);
    for family in [
        "ironic_call_seconds_count",
        "ironic_call_errors_total",
        "continue_requests_total",
    ] {
        assert!(
            exported.contains(&format!("ironic_discoverd_{family}")),
            "{family} missing from the scrape: {scrape}"
        );
    }

    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops");
    let dashboard = std::fs::read_to_string(ops.join("grafana-dashboard.json"))?;
    let parsed: serde_json::Value = serde_json::from_str(&dashboard)?;
    let panels = parsed["panels"].as_array().map_or(0, Vec::len);
    assert!(panels >= 6, "dashboard has {panels} panels");
    let alerts = std::fs::read_to_string(ops.join("alerts.yml"))?;

    for (file, text) in [("grafana-dashboard.json", &dashboard), ("alerts.yml", &alerts)] {
        let names = used(text);
        assert!(!names.is_empty(), "{file} uses no metric");
        let unknown: Vec<_> = names.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the daemon does not export: {unknown:?}"
        );
    }
    // The alerts an operator needs, each on the metric that shows it.
    for (alert, metric) in [
        (
            "IronicDiscoverdIntrospectionsFailing",
            "ironic_discoverd_introspections_failed_total",
        ),
        (
            "IronicDiscoverdHelperDisconnected",
            "ironic_discoverd_firewall_helper_connected",
        ),
        (
            "IronicDiscoverdIronicErrors",
            "ironic_discoverd_ironic_call_errors_total",
        ),
    ] {
        let rule = alerts
            .split("- alert: ")
            .find(|r| r.starts_with(alert))
            .unwrap_or_default();
        assert!(rule.contains(metric), "alert {alert} must use {metric}: {rule:?}");
    }
    Ok(())
}
