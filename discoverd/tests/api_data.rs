//! Stored introspection data (`store_data`), `GET …/data`,
//! `GET …/data/unprocessed`, and reapply with and without a body.

mod api_support;

use api_support::{BMC, Env, MAC, NODE, OTHER, report};
use axum::http::{Method, StatusCode};
use serde_json::json;

async fn introspected(e: &Env) -> anyhow::Result<()> {
    e.add_node(NODE, BMC, MAC);
    e.start_waiting(NODE).await?;
    let (code, v) = e
        .call(Method::POST, "/v1/continue", Some(&report(BMC, MAC)))
        .await?;
    anyhow::ensure!(code == StatusCode::OK, "continue: {code} {v}");
    e.wait_status(NODE, |v| v["finished"] == true).await?;
    Ok(())
}

#[tokio::test]
async fn data_is_stored_raw_and_processed_and_served() -> anyhow::Result<()> {
    let e = Env::new("store_data = database").await?;
    introspected(&e).await?;
    let (code, raw) = e
        .call(
            Method::GET,
            &format!("/v1/introspection/{NODE}/data/unprocessed"),
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::OK, "{raw}");
    assert_eq!(raw, report(BMC, MAC), "exactly as posted");
    let (code, processed) = e
        .call(Method::GET, &format!("/v1/introspection/{NODE}/data"), None)
        .await?;
    assert_eq!(code, StatusCode::OK, "{processed}");
    assert_eq!(processed["cpus"], json!(2));
    assert!(
        processed.get("macs").is_some() || processed.get("interfaces").is_some(),
        "{processed}"
    );
    let (code, _) = e
        .call(Method::GET, &format!("/v1/introspection/{OTHER}/data"), None)
        .await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Purged with the status.
    let later = discoverd::domain::Timestamp::from_micros(i64::MAX / 2);
    e.t.app.store.purge(later).await?;
    let (code, _) = e
        .call(Method::GET, &format!("/v1/introspection/{NODE}/data"), None)
        .await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn without_store_data_nothing_is_kept() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    introspected(&e).await?;
    for uri in ["data", "data/unprocessed"] {
        let (code, v) = e
            .call(Method::GET, &format!("/v1/introspection/{NODE}/{uri}"), None)
            .await?;
        assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("not configured to store")
        );
    }
    assert!(
        e.t.app
            .store
            .get_data(NODE.parse()?, discoverd::store::DataKind::Raw)
            .await?
            .is_none()
    );
    // Reapply needs stored data or a body.
    let (code, v) = e
        .call(
            Method::POST,
            &format!("/v1/introspection/{NODE}/data/unprocessed"),
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    Ok(())
}

#[tokio::test]
async fn reapply_runs_the_hooks_again_without_power_actions() -> anyhow::Result<()> {
    let e = Env::new("store_data = database\noverwrite_existing = true").await?;
    introspected(&e).await?;
    let powers = e
        .fake
        .calls_to("PUT", &format!("/v1/nodes/{NODE}/states/power"))
        .len();
    let mut events = e.t.app.bus.subscribe();
    let uri = format!("/v1/introspection/{NODE}/data/unprocessed");
    let (code, v) = e.call(Method::POST, &uri, None).await?;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        events.recv().await?.to.as_str(),
        "reapplying",
        "recorded before the 202"
    );
    let st = e.wait_status(NODE, |v| v["finished"] == true).await?;
    assert_eq!(
        (st["state"].clone(), st["error"].clone()),
        (json!("finished"), json!(null))
    );
    // With a body: it replaces the raw data and its values reach Ironic.
    let mut body = report(BMC, MAC);
    body["memory_mb"] = json!(4096);
    let (code, v) = e.call(Method::POST, &uri, Some(&body)).await?;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    e.wait_status(NODE, |v| v["finished"] == true).await?;
    let node = e.fake.node(NODE).unwrap_or_default();
    assert_eq!(node["properties"]["memory_mb"], json!("4096"), "{node}");
    let (_, raw) = e.call(Method::GET, &uri, None).await?;
    assert_eq!(raw["memory_mb"], json!(4096));
    assert_eq!(
        e.fake
            .calls_to("PUT", &format!("/v1/nodes/{NODE}/states/power"))
            .len(),
        powers,
        "no power action"
    );
    Ok(())
}

#[tokio::test]
async fn bad_reapplies_are_typed_errors_and_change_nothing() -> anyhow::Result<()> {
    let e = Env::new("store_data = database\nmax_body_size = 1024").await?;
    e.add_node(NODE, BMC, MAC);
    e.start_waiting(NODE).await?;
    let uri = format!("/v1/introspection/{NODE}/data/unprocessed");
    // Still waiting: 409; no data stored yet either way.
    let (code, v) = e.call(Method::POST, &uri, Some(&report(BMC, MAC))).await?;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    for (body, want) in [
        (&b"[1, 2]"[..], StatusCode::BAD_REQUEST),
        (b"{not json", StatusCode::BAD_REQUEST),
        (&[b'{'; 2048][..], StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let (code, _, v) = e.send(Method::POST, &uri, &[], Some(body)).await?;
        assert_eq!(code, want, "{v}");
        assert!(v["error"]["message"].is_string());
    }
    let (code, _) = e
        .call(
            Method::POST,
            &format!("/v1/introspection/{OTHER}/data/unprocessed"),
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let st = e.wait_status(NODE, |_| true).await?;
    assert_eq!(st["state"], json!("waiting"), "unchanged");
    // Ended without data: 404.
    let (code, _) = e
        .call(Method::POST, &format!("/v1/introspection/{NODE}/abort"), None)
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    e.wait_status(NODE, |v| v["finished"] == true).await?;
    let (code, v) = e.call(Method::POST, &uri, None).await?;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    Ok(())
}
