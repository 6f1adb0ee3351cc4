//! The `ironic-discoverd-client` binary's ironic-inspector commands
//! against an in-process daemon on a real TCP port: `introspect --wait`
//! following the event stream to the end of two nodes (one finished, one
//! aborted), `list`, `abort`, `data save`, `reprocess` and `rule`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{FakeIronic, TestApp};

const CLI: &str = env!("CARGO_BIN_EXE_ironic-discoverd-client");
const A: &str = "8a1f0c2e-5b0d-4c1e-9f3a-7d2b6c5e4a01";
const B: &str = "8a1f0c2e-5b0d-4c1e-9f3a-7d2b6c5e4a02";
const MAC_A: &str = "52:54:00:00:0a:01";

async fn serve(t: &TestApp) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = t.router.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// Runs the CLI (off the async workers) against `url`; stdout is a pipe,
/// so `--wait` prints plain lines.
async fn cli(url: &str, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut all = vec!["--discoverd-url".to_owned(), url.to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(CLI)
            .args(&all)
            .env_remove("DISCOVERD_URL")
            .env_remove("OS_AUTH_TOKEN")
            .env_remove("OS_AUTH_URL")
            .output()
    })
    .await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Waits (a liveness bound) for a node's state through the HTTP API.
async fn wait_state(url: &str, node: &str, state: &str) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    for _ in 0..500 {
        let v: Value = http
            .get(format!("{url}/v1/introspection/{node}"))
            .send()
            .await?
            .json()
            .await?;
        if v["state"] == state {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("{node} never reached {state}")
}

fn report() -> Value {
    json!({"interfaces": {"em1": {"mac": MAC_A, "ip": "192.0.2.80"}},
           "ipmi_address": "192.0.2.8", "cpus": 2, "cpu_arch": "x86_64", "memory_mb": 2048, "local_gb": 20})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_follows_two_nodes_to_their_end_and_the_inspector_commands_work() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(A, "192.0.2.8");
    ironic.add_port(A, MAC_A);
    ironic.add_node(B, "192.0.2.9");
    let t = TestApp::new(&ironic.url(), "store_data = database").await?;
    let url = serve(&t).await?;

    // introspect --wait: runs until both nodes have ended.
    let waiting = {
        let url = url.clone();
        tokio::spawn(async move { cli(&url, &["introspect", A, B, "--wait"]).await })
    };
    wait_state(&url, A, "waiting").await?;
    wait_state(&url, B, "waiting").await?;
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/continue"))
        .json(&report())
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let (code, _, err) = cli(&url, &["abort", B]).await?;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tokio::time::timeout(Duration::from_secs(30), waiting).await???;
    assert_eq!(code, 1, "B was aborted: {out} {err}");
    assert!(out.contains(&format!("{A} processing -> finished")), "{out}");
    assert!(out.contains(&format!("{B} waiting -> aborting")), "{out}");
    assert!(out.contains("2 node(s): 1 error, 1 finished"), "{out}");
    assert!(
        err.contains(&format!("introspection of {B} failed: Canceled by operator")),
        "{err}"
    );

    // list: newest first, filtered, paged.
    let (code, out, err) = cli(&url, &["list", "--json"]).await?;
    assert_eq!(code, 0, "{err}");
    let all: Value = serde_json::from_str(&out)?;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let (_, out, _) = cli(&url, &["list", "--json", "--state", "finished"]).await?;
    let finished: Value = serde_json::from_str(&out)?;
    assert_eq!(finished[0]["uuid"], A, "{finished}");
    assert_eq!(finished.as_array().map(Vec::len), Some(1), "{finished}");
    let (_, out, _) = cli(&url, &["list", "--limit", "1"]).await?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {out}");
    assert!(
        lines[0].starts_with("UUID") && lines[0].contains("State"),
        "{out}"
    );

    // data save: the raw report to a file, the processed data to stdout.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("raw.json");
    let file_arg = file.to_string_lossy().into_owned();
    let (code, _, err) = cli(&url, &["data", "save", A, "--unprocessed", "--file", &file_arg]).await?;
    assert_eq!(code, 0, "{err}");
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    assert_eq!(raw, report());
    let (code, out, _) = cli(&url, &["data", "save", A]).await?;
    assert_eq!(code, 0);
    let processed: Value = serde_json::from_str(&out)?;
    assert_eq!(processed["ipmi_address"], "192.0.2.8", "{processed}");

    // reprocess: the stored data again; the node ends finished again.
    let (code, _, err) = cli(&url, &["reprocess", A]).await?;
    assert_eq!(code, 0, "{err}");
    wait_state(&url, A, "finished").await?;
    let (code, _, err) = cli(&url, &["reprocess", B, "--data", "/nonexistent.json"]).await?;
    assert_eq!(code, 2, "a file the user named is a usage error: {err}");

    // rules: create from a file holding a list, list, show, delete, purge.
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        json!([
            {"description": "big", "conditions": [{"op": "ge", "field": "memory_mb", "value": 1024}],
             "actions": [{"action": "set-attribute", "path": "/extra/big", "value": true}]},
            {"description": "all", "actions": [{"action": "add-trait", "name": "CUSTOM_SEEN"}]}
        ])
        .to_string(),
    )?;
    let (code, out, err) = cli(&url, &["rule", "create", &rules.to_string_lossy()]).await?;
    assert_eq!(code, 0, "{err}");
    let uuids: Vec<&str> = out.lines().collect();
    assert_eq!(uuids.len(), 2, "{out}");
    let (_, out, _) = cli(&url, &["rule", "list"]).await?;
    assert!(
        out.contains(uuids[0]) && out.contains("big") && out.contains("all"),
        "{out}"
    );
    let (code, out, _) = cli(&url, &["rule", "show", uuids[0]]).await?;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out)?["description"], "big");
    let (code, _, _) = cli(&url, &["rule", "delete", uuids[0]]).await?;
    assert_eq!(code, 0);
    let (code, _, err) = cli(&url, &["rule", "show", uuids[0]]).await?;
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = cli(&url, &["rule", "purge"]).await?;
    assert_eq!(code, 0);
    let (_, out, _) = cli(&url, &["rule", "list"]).await?;
    assert_eq!(out, "");

    // A node never introspected: exit 1 with the server's message.
    let (code, _, err) = cli(&url, &["abort", "11111111-2222-4333-8444-555555555555"]).await?;
    assert_eq!(code, 1, "{err}");
    Ok(())
}
