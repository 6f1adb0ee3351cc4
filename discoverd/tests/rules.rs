//! Introspection rules through the API and in processing, in-process
//! against the fake Ironic and a real SQLite file.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use test_support::{FakeIronic, TestApp};
use tower::ServiceExt;

async fn call_v(
    r: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    version: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(v) = version {
        req = req.header("X-OpenStack-Ironic-Inspector-API-Version", v);
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
    let resp = r.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok((status, v))
}

async fn call(
    r: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    call_v(r, method, uri, body, None).await
}

const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";

fn add_trait(name: &str) -> Value {
    json!({"action": "add-trait", "name": name})
}

#[tokio::test]
async fn rules_api_create_list_show_delete() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    let r = &t.router;
    // 200 below API 1.6, 201 from it (and with no version header, the
    // newest, as the inspector); the answer is the rule as stored.
    let (code, v) = call_v(
        r,
        Method::POST,
        "/v1/rules",
        Some(json!({"uuid": U1, "actions": [add_trait("CUSTOM_A")]})),
        Some("1.5"),
    )
    .await?;
    anyhow::ensure!(code == StatusCode::OK, "{code} {v}");
    anyhow::ensure!(
        v["uuid"] == U1 && v["conditions"] == json!([]) && v["scope"].is_null(),
        "{v}"
    );
    anyhow::ensure!(v["links"][0]["href"] == format!("/v1/rules/{U1}"), "{v}");
    let body = json!({"uuid": U2, "description": "big", "scope": "rack",
                      "conditions": [{"op": "ge", "field": "memory_mb", "value": 1024}],
                      "actions": [add_trait("CUSTOM_BIG")]});
    let (code, v) = call_v(r, Method::POST, "/v1/rules", Some(body.clone()), Some("1.6")).await?;
    anyhow::ensure!(code == StatusCode::CREATED, "{code} {v}");
    anyhow::ensure!(
        v["conditions"][0]["multiple"] == "any" && v["conditions"][0]["invert"] == false,
        "{v}"
    );
    let (code, v) = call_v(r, Method::POST, "/v1/rules", Some(body), Some("1.6")).await?;
    anyhow::ensure!(code == StatusCode::CONFLICT, "{code} {v}");
    anyhow::ensure!(
        v["error"]["message"] == format!("Rule with UUID {U2} already exists"),
        "{v}"
    );
    // List: short, in creation order.
    let (code, v) = call(r, Method::GET, "/v1/rules", None).await?;
    anyhow::ensure!(code == StatusCode::OK, "{code}");
    let uuids: Vec<&Value> = v["rules"]
        .as_array()
        .map(|a| a.iter().map(|x| &x["uuid"]).collect())
        .unwrap_or_default();
    anyhow::ensure!(uuids == [&json!(U1), &json!(U2)], "{v}");
    anyhow::ensure!(
        v["rules"][1].get("conditions").is_none() && v["rules"][1]["description"] == "big",
        "{v}"
    );
    let (code, v) = call(r, Method::GET, &format!("/v1/rules/{U2}"), None).await?;
    anyhow::ensure!(
        code == StatusCode::OK && v["actions"] == json!([add_trait("CUSTOM_BIG")]),
        "{code} {v}"
    );
    // Delete one, then 404 for it; delete all.
    let (code, _) = call(r, Method::DELETE, &format!("/v1/rules/{U1}"), None).await?;
    anyhow::ensure!(code == StatusCode::NO_CONTENT, "{code}");
    let (code, v) = call(r, Method::GET, &format!("/v1/rules/{U1}"), None).await?;
    anyhow::ensure!(
        code == StatusCode::NOT_FOUND && v["error"]["message"] == format!("Rule {U1} was not found"),
        "{v}"
    );
    let (code, _) = call(r, Method::DELETE, &format!("/v1/rules/{U1}"), None).await?;
    anyhow::ensure!(code == StatusCode::NOT_FOUND, "{code}");
    let (code, _) = call(r, Method::DELETE, "/v1/rules", None).await?;
    anyhow::ensure!(code == StatusCode::NO_CONTENT, "{code}");
    let (_, v) = call(r, Method::GET, "/v1/rules", None).await?;
    anyhow::ensure!(v == json!({"rules": []}), "{v}");
    Ok(())
}

#[tokio::test]
async fn bad_rules_are_a_400_naming_the_culprit_and_store_nothing() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    let t = TestApp::new(&fake.url(), "").await?;
    let r = &t.router;
    let ok = add_trait("CUSTOM_A");
    let many: Vec<Value> = (0..5000)
        .map(|_| json!({"op": "is-empty", "field": "x"}))
        .collect();
    let nested = |levels: usize| {
        let mut v = json!("x");
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    };
    let (deep, shallow) = (nested(100), nested(20));
    for (body, want) in [
        (
            json!({"conditions": [{"op": "gt", "field": "a", "value": 1}, {"op": "bogus", "field": "a"}], "actions": [ok]}),
            "conditions[1]",
        ),
        (json!({"actions": [ok, {"action": "explode"}]}), "actions[1]"),
        (
            json!({"conditions": [{"op": "matches", "field": "a", "value": "(?<=x)y"}], "actions": [ok]}),
            "invalid regular expression",
        ),
        (
            json!({"conditions": [{"op": "in-net", "field": "a", "value": "300.1.1.1/8"}], "actions": [ok]}),
            "invalid IPNetwork",
        ),
        (
            json!({"conditions": [{"op": "eq", "field": "a[[", "value": 1}], "actions": [ok]}),
            "Unable to parse field JSON path",
        ),
        (
            json!({"actions": [{"action": "set-attribute", "path": "/extra/x", "value": "{nope}"}]}),
            "Invalid format string",
        ),
        (
            json!({"actions": [ok, {"action": "set-attribute", "path": "/extra/x", "value": deep}]}),
            "actions[1]: nested more than 32 levels deep",
        ),
        (
            json!({"conditions": [{"op": "eq", "field": "a", "value": nested(40)}], "actions": [ok]}),
            "conditions[0]: nested more than 32 levels deep",
        ),
        (
            json!({"actions": [{"action": "set-attribute", "path": "/extra/x", "value": shallow}]}),
            "",
        ),
        (
            json!({"conditions": [{"op": "matches", "field": "a", "value": "(\\w{100}){100}"}], "actions": [ok]}),
            "size limit",
        ),
        (
            json!({"conditions": [{"op": "eq", "field": "a.".repeat(600) + "b", "value": 1}], "actions": [ok]}),
            "longer than 1024 bytes",
        ),
        (
            json!({"conditions": [{"op": "eq", "field": "a.".repeat(70) + "b", "value": 1}], "actions": [ok]}),
            "more than 64 steps",
        ),
        (
            json!({"actions": [ok, {"action": "set-capability", "name": "x", "value": "{data[a]!r}"}]}),
            "actions[1]",
        ),
        (json!({"conditions": many, "actions": [ok]}), "more than"),
        (json!({"actions": []}), "too short"),
        (json!("a string"), "JSON object"),
    ] {
        let (code, v) = call(r, Method::POST, "/v1/rules", Some(body.clone())).await?;
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        if want.is_empty() {
            // Nesting within the bound is fine: stored, shown, deleted.
            anyhow::ensure!(code == StatusCode::CREATED, "{code} {v}");
            call(r, Method::DELETE, "/v1/rules", None).await?;
            continue;
        }
        anyhow::ensure!(
            code == StatusCode::BAD_REQUEST && msg.contains(want),
            "{body}: {code} {v}"
        );
    }
    let (_, v) = call(r, Method::GET, "/v1/rules", None).await?;
    anyhow::ensure!(v == json!({"rules": []}), "{v}");
    Ok(())
}

const NODE: &str = "00000000-0000-4000-8000-000000000001";

fn report() -> Value {
    json!({"ipmi_address": "10.0.0.1", "interfaces": {"eth0": {"mac": "52:54:00:00:00:01", "ip": "192.0.2.10"}},
           "cpus": 2, "cpu_arch": "x86_64", "memory_mb": 65536, "local_gb": 20})
}

async fn introspect(t: &TestApp) -> anyhow::Result<(StatusCode, Value, Value)> {
    let r = &t.router;
    let (code, v) = call(r, Method::POST, &format!("/v1/introspection/{NODE}"), None).await?;
    anyhow::ensure!(code == StatusCode::ACCEPTED, "{code} {v}");
    // The reboot was sent once the status says waiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = call(r, Method::GET, &format!("/v1/introspection/{NODE}"), None).await?;
        if s["state"] == "waiting" {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never waiting: {s}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (code, v) = call(r, Method::POST, "/v1/continue", Some(report())).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = call(r, Method::GET, &format!("/v1/introspection/{NODE}"), None).await?;
        if s["finished"] == true {
            return Ok((code, v, s));
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never finished: {s}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_set_attributes_capabilities_and_traits_after_the_hooks() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE, "10.0.0.1");
    fake.edit_node(NODE, |n| {
        n["properties"]["capabilities"] = json!("boot_mode:bios");
        n["properties"]["inspection_scope"] = json!("rack1");
        n["traits"] = json!(["CUSTOM_OLD"]);
    });
    let t = TestApp::new(&fake.url(), "").await?;
    let r = &t.router;
    for rule in [
        // Sees memory_mb as the scheduler hook wrote it (a string).
        json!({"conditions": [{"op": "ge", "field": "node://properties.memory_mb", "value": 65536},
                              {"op": "eq", "field": "memory_mb", "value": 65536}],
               "actions": [add_trait("CUSTOM_BIGMEM"), {"action": "remove-trait", "name": "CUSTOM_OLD"},
                           {"action": "set-capability", "name": "boot_mode", "value": "uefi"},
                           {"action": "set-attribute", "path": "/extra/bmc", "value": "{data[ipmi_address]}"}]}),
        json!({"scope": "rack2", "actions": [add_trait("CUSTOM_RACK2")]}),
        json!({"conditions": [{"op": "lt", "field": "memory_mb", "value": 1024}], "actions": [add_trait("CUSTOM_SMALL")]}),
    ] {
        let (code, v) = call(r, Method::POST, "/v1/rules", Some(rule)).await?;
        anyhow::ensure!(code == StatusCode::CREATED, "{code} {v}");
    }
    let (code, v, s) = introspect(&t).await?;
    anyhow::ensure!(code == StatusCode::OK && s["error"].is_null(), "{code} {v} {s}");
    let node = fake.node(NODE).unwrap_or_default();
    anyhow::ensure!(node["traits"] == json!(["CUSTOM_BIGMEM"]), "{node}");
    anyhow::ensure!(node["properties"]["capabilities"] == "boot_mode:uefi", "{node}");
    anyhow::ensure!(
        node["extra"]["bmc"] == "10.0.0.1" && node["properties"]["cpus"] == "2",
        "{node}"
    );
    // The rules' changes travel in the hooks' PATCH (no PATCH of their own).
    let patches = fake.calls_to("PATCH", &format!("/v1/nodes/{NODE}"));
    let processing: Vec<String> = patches
        .iter()
        .map(|c| c.body.clone().unwrap_or_default().to_string())
        .filter(|b| b.contains("/properties/") || b.contains("/extra/bmc"))
        .collect();
    anyhow::ensure!(
        processing.len() == 1 && processing[0].contains("/extra/bmc"),
        "{patches:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_rule_ends_the_introspection_with_its_message() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE, "10.0.0.1");
    let t = TestApp::new(&fake.url(), "").await?;
    let rule = json!({"conditions": [{"op": "gt", "field": "memory_mb", "value": 1024}],
                      "actions": [{"action": "fail", "message": "too much memory"}]});
    let (code, _) = call(&t.router, Method::POST, "/v1/rules", Some(rule)).await?;
    anyhow::ensure!(code == StatusCode::CREATED);
    let (code, v, s) = introspect(&t).await?;
    anyhow::ensure!(
        code == StatusCode::BAD_REQUEST && v["error"]["message"] == "too much memory",
        "{code} {v}"
    );
    anyhow::ensure!(s["state"] == "error" && s["error"] == "too much memory", "{s}");
    // Nothing of the run reached Ironic's node.
    let patches = fake.calls_to("PATCH", &format!("/v1/nodes/{NODE}"));
    anyhow::ensure!(
        patches.iter().all(|c| !c
            .body
            .clone()
            .unwrap_or_default()
            .to_string()
            .contains("/properties/")),
        "{patches:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramdisk_error_fails_the_node_at_once() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE, "10.0.0.1");
    let t = TestApp::new(
        &fake.url(),
        "processing_hooks = ramdisk_error,scheduler,validate_interfaces",
    )
    .await?;
    let r = &t.router;
    let (code, _) = call(r, Method::POST, &format!("/v1/introspection/{NODE}"), None).await?;
    anyhow::ensure!(code == StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = call(r, Method::GET, &format!("/v1/introspection/{NODE}"), None).await?;
        if s["state"] == "waiting" {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never waiting: {s}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut body = report();
    body["error"] = json!("collector 'lldp' failed");
    let (code, v) = call(r, Method::POST, "/v1/continue", Some(body)).await?;
    let want = "Ramdisk reported error: collector 'lldp' failed";
    anyhow::ensure!(
        code == StatusCode::BAD_REQUEST && v["error"]["message"] == want,
        "{code} {v}"
    );
    // Recorded before the answer: no wait for the timeout.
    let (_, s) = call(r, Method::GET, &format!("/v1/introspection/{NODE}"), None).await?;
    anyhow::ensure!(
        s["state"] == "error" && s["finished"] == true && s["error"] == want,
        "{s}"
    );
    // Two failures are reported together, as the inspector words it.
    let (_, v) = call(
        r,
        Method::POST,
        "/v1/continue",
        Some(json!({"error": "boom", "ipmi_address": "10.9.9.9"})),
    )
    .await?;
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    anyhow::ensure!(
        msg.starts_with("The following failures happened during running pre-processing hooks:\nPreprocessing hook ramdisk_error: Ramdisk reported error: boom\n"),
        "{v}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formatting_key_the_data_lacks_fails_the_node_naming_the_rule() -> anyhow::Result<()> {
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE, "10.0.0.1");
    let t = TestApp::new(&fake.url(), "").await?;
    // The syntax is fine at creation; the data decides when the rule runs.
    let rule = json!({"description": "rack note", "actions": [
        {"action": "set-attribute", "path": "/extra/rack", "value": "{data[inventory][rack]}"}]});
    let (code, v) = call(&t.router, Method::POST, "/v1/rules", Some(rule)).await?;
    anyhow::ensure!(code == StatusCode::CREATED, "{code} {v}");
    let (code, v, s) = introspect(&t).await?;
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    anyhow::ensure!(
        code == StatusCode::BAD_REQUEST && msg.contains("rack note") && msg.contains("data[inventory][rack]"),
        "{code} {v}"
    );
    anyhow::ensure!(
        s["state"] == "error" && s["error"].as_str().is_some_and(|e| e.contains("rack note")),
        "{s}"
    );
    Ok(())
}

/// Two daemons on one PostgreSQL database: a rule created on A is applied
/// by B's processing (B had parsed the rules before). When the rules
/// cannot be read, the report is a 503 and the node waits for the
/// ramdisk's retry instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_rule_created_on_one_daemon_runs_on_another() -> anyhow::Result<()> {
    let Some(db) = test_support::postgres::TestDatabase::create().await? else {
        return Ok(());
    };
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE, "10.0.0.1");
    let a = TestApp::on_database(&fake.url(), Some(&db.url), "").await?;
    let b = TestApp::on_database(&fake.url(), Some(&db.url), "").await?;
    let (code, v) = call(&b.router, Method::GET, "/v1/rules", None).await?;
    anyhow::ensure!(code == StatusCode::OK && v == json!({"rules": []}), "{code} {v}");
    let rule = json!({"description": "from A", "actions": [add_trait("CUSTOM_FROM_A")]});
    let (code, v) = call(&a.router, Method::POST, "/v1/rules", Some(rule)).await?;
    anyhow::ensure!(code == StatusCode::CREATED, "{code} {v}");
    let (_, v) = call(&b.router, Method::GET, "/v1/rules", None).await?;
    anyhow::ensure!(v["rules"][0]["description"] == "from A", "{v}");
    let (code, v, s) = introspect(&b).await?;
    anyhow::ensure!(code == StatusCode::OK && s["error"].is_null(), "{code} {v} {s}");
    let node = fake.node(NODE).unwrap_or_default();
    anyhow::ensure!(node["traits"] == json!(["CUSTOM_FROM_A"]), "{node}");

    // The rules cannot be read: 503, and the node waits again.
    let (code, v) = call(
        &b.router,
        Method::POST,
        &format!("/v1/introspection/{NODE}"),
        None,
    )
    .await?;
    anyhow::ensure!(code == StatusCode::ACCEPTED, "{code} {v}");
    let status = |t: &TestApp| {
        let r = t.router.clone();
        async move { call(&r, Method::GET, &format!("/v1/introspection/{NODE}"), None).await }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while status(&b).await?.1["state"] != "waiting" {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    db.execute("DROP TABLE rules_version").await?;
    let (code, v) = call(&b.router, Method::POST, "/v1/continue", Some(report())).await?;
    anyhow::ensure!(code == StatusCode::SERVICE_UNAVAILABLE, "{code} {v}");
    let (_, s) = status(&b).await?;
    anyhow::ensure!(s["state"] == "waiting" && s["finished"] == false, "{s}");
    db.execute(
        "CREATE TABLE rules_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL);
         INSERT INTO rules_version VALUES (TRUE, 100)",
    )
    .await?;
    let (code, v) = call(&b.router, Method::POST, "/v1/continue", Some(report())).await?;
    anyhow::ensure!(code == StatusCode::OK, "the retry: {code} {v}");
    Ok(())
}
