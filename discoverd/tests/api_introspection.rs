//! The inspector's introspection endpoints: list (order, marker, limit,
//! state filter, bad input), node names (at every version), abort, manage_boot.

mod api_support;

use std::time::Duration;

use api_support::{BMC, Env, MAC, NODE, OTHER};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

fn uuids(v: &Value) -> Vec<String> {
    v["introspection"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["uuid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn node(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

#[tokio::test]
async fn list_is_newest_first_with_marker_limit_and_state() -> anyhow::Result<()> {
    let e = Env::new("api_max_limit = 3").await?;
    for i in 0..5 {
        e.add_node(
            &node(i),
            &format!("10.0.1.{i}"),
            &format!("52:54:00:00:01:{i:02x}"),
        );
        e.start_waiting(&node(i)).await?;
        // Distinct start times.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (code, v) = e.call(Method::GET, "/v1/introspection", None).await?;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        uuids(&v),
        [node(4), node(3), node(2)],
        "api_max_limit is the default"
    );
    let first = &v["introspection"][0];
    let mut keys: Vec<&str> = first
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "error",
            "finished",
            "finished_at",
            "links",
            "started_at",
            "state",
            "uuid"
        ]
    );
    let (_, v) = e
        .call(
            Method::GET,
            &format!("/v1/introspection?marker={}&limit=2", node(3)),
            None,
        )
        .await?;
    assert_eq!(uuids(&v), [node(2), node(1)]);
    let (_, v) = e.call(Method::GET, "/v1/introspection?limit=0", None).await?;
    assert_eq!(uuids(&v).len(), 3, "0 means the default");
    // One ends; the state filter sees it.
    let (code, _) = e
        .call(
            Method::POST,
            &format!("/v1/introspection/{}/abort", node(1)),
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    e.wait_status(&node(1), |v| v["finished"] == true).await?;
    let (_, v) = e.call(Method::GET, "/v1/introspection?state=error", None).await?;
    assert_eq!(uuids(&v), [node(1)]);
    let (_, v) = e
        .call(Method::GET, "/v1/introspection?state=error,waiting&limit=3", None)
        .await?;
    assert_eq!(uuids(&v), [node(4), node(3), node(2)]);
    Ok(())
}

#[tokio::test]
async fn bad_list_parameters_are_400s() -> anyhow::Result<()> {
    let e = Env::new("api_max_limit = 10").await?;
    for (q, code, msg) in [
        ("marker=nope", 400, "Bad request: Marker not UUID-like"),
        ("marker=", 400, "Bad request: Marker not UUID-like"),
        ("limit=-1", 400, "Bad request: Limit cannot be negative"),
        ("limit=11", 400, "Bad request: Limit over 10"),
        ("limit=99999999999999999999999", 400, ""),
        ("limit=ten", 400, ""),
        (
            "state=waiting,sleeping",
            400,
            "Bad request: State(s) \"sleeping\" are not valid",
        ),
        ("state=", 400, ""),
        (&format!("marker={NODE}") as &str, 404, ""),
    ] {
        let (got, v) = e
            .call(Method::GET, &format!("/v1/introspection?{q}"), None)
            .await?;
        assert_eq!(got.as_u16(), code, "{q}: {v}");
        let m = v["error"]["message"].as_str().unwrap_or_default();
        assert!(m.starts_with(msg) && !m.is_empty(), "{q}: {m}");
    }
    Ok(())
}

#[tokio::test]
/// Names resolve at every version, as with ironic-inspector (the
/// `openstack` command asks for 1.0 by default).
async fn names_resolve_at_every_version() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    e.add_node(NODE, BMC, MAC);
    e.fake.edit_node(NODE, |n| n["name"] = json!("rack1-node7"));
    let (code, v) = e
        .call(Method::POST, "/v1/introspection/rack1-node7", None)
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let st = e.wait_status("rack1-node7", |v| v["state"] == "waiting").await?;
    assert_eq!(st["uuid"], json!(NODE));
    for version in ["1.0", "1.4", "1.5", "latest"] {
        let (code, _, v) = e
            .send(
                Method::GET,
                "/v1/introspection/rack1-node7",
                &[("X-OpenStack-Ironic-Inspector-API-Version", version)],
                None,
            )
            .await?;
        assert_eq!(
            (code, &v["uuid"]),
            (StatusCode::OK, &json!(NODE)),
            "{version}: {v}"
        );
    }
    let (code, v) = e
        .call(Method::GET, "/v1/introspection/no-such-node", None)
        .await?;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (code, v) = e.call(Method::GET, "/v1/introspection/bad%20name", None).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    Ok(())
}

#[tokio::test]
async fn abort_powers_off_and_ends_with_the_inspector_message() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    e.add_node(NODE, BMC, MAC);
    e.start_waiting(NODE).await?;
    let mut events = e.t.app.bus.subscribe();
    let (code, _) = e
        .call(Method::POST, &format!("/v1/introspection/{NODE}/abort"), None)
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    // The 202 came after `aborting` was recorded. (The status shows a
    // state a moment before the bus publishes it: the move to `waiting`
    // may still come first.)
    let first = loop {
        let ev = events.recv().await?;
        if ev.to.as_str() != "waiting" {
            break ev;
        }
    };
    assert_eq!(first.to.as_str(), "aborting");
    let st = e.wait_status(NODE, |v| v["finished"] == true).await?;
    assert_eq!(st["state"], json!("error"));
    assert_eq!(st["error"], json!("Canceled by operator"));
    let powers = e.fake.calls_to("PUT", &format!("/v1/nodes/{NODE}/states/power"));
    assert_eq!(powers.len(), 2, "reboot, then power off: {powers:?}");
    assert_eq!(
        powers[1].body.as_ref().map(|b| b["target"].clone()),
        Some(json!("power off"))
    );
    // A finished node cannot be aborted; unknown ones are 404.
    let (code, v) = e
        .call(Method::POST, &format!("/v1/introspection/{NODE}/abort"), None)
        .await?;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    let (code, _) = e
        .call(Method::POST, &format!("/v1/introspection/{OTHER}/abort"), None)
        .await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn manage_boot_false_neither_boots_nor_powers_off() -> anyhow::Result<()> {
    let e = Env::new("").await?;
    e.add_node(NODE, BMC, MAC);
    let uri = format!("/v1/introspection/{NODE}?manage_boot=maybe");
    let (code, v) = e.call(Method::POST, &uri, None).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["error"]["message"],
        json!("Invalid boolean value for manage_boot: maybe")
    );
    let (code, _) = e
        .call(
            Method::POST,
            &format!("/v1/introspection/{NODE}?manage_boot=false"),
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    e.wait_status(NODE, |v| v["state"] == "waiting").await?;
    let (code, _) = e
        .call(Method::POST, &format!("/v1/introspection/{NODE}/abort"), None)
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    e.wait_status(NODE, |v| v["finished"] == true).await?;
    assert!(
        e.fake
            .calls_to("PUT", &format!("/v1/nodes/{NODE}/states/power"))
            .is_empty()
    );
    assert!(
        e.fake
            .calls_to("PUT", &format!("/v1/nodes/{NODE}/management"))
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn cannot_manage_boot_refuses_managed_starts() -> anyhow::Result<()> {
    let e = Env::new("can_manage_boot = false").await?;
    e.add_node(NODE, BMC, MAC);
    let (code, v) = e
        .call(Method::POST, &format!("/v1/introspection/{NODE}"), None)
        .await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    let (code, _) = e
        .call(
            Method::POST,
            &format!("/v1/introspection/{NODE}?manage_boot=0"),
            None,
        )
        .await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    Ok(())
}

#[tokio::test]
async fn introspection_delay_spaces_reboots() -> anyhow::Result<()> {
    let e = Env::new("introspection_delay = 0.3").await?;
    e.add_node(NODE, BMC, MAC);
    e.add_node(OTHER, "10.0.0.6", "52:54:00:12:34:57");
    let t0 = tokio::time::Instant::now();
    for n in [NODE, OTHER] {
        let (code, _) = e
            .call(Method::POST, &format!("/v1/introspection/{n}"), None)
            .await?;
        assert_eq!(code, StatusCode::ACCEPTED);
    }
    e.wait_status(NODE, |v| v["state"] == "waiting").await?;
    e.wait_status(OTHER, |v| v["state"] == "waiting").await?;
    assert!(t0.elapsed() >= Duration::from_millis(300), "{:?}", t0.elapsed());
    Ok(())
}
