//! The `ironic-discoverd-client` binary against an in-process daemon on a
//! real TCP port: a whole introspection, statuses, exit codes.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{FakeIronic, TestApp};

const CLI: &str = env!("CARGO_BIN_EXE_ironic-discoverd-client");
const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";
const UNKNOWN: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";

async fn serve(t: &TestApp) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = t.router.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// Runs the CLI off the async workers (it blocks until the server answers).
async fn cli(args: Vec<String>, env: Vec<(&'static str, String)>) -> anyhow::Result<(i32, String, String)> {
    let out = tokio::task::spawn_blocking(move || {
        let mut c = Command::new(CLI);
        c.args(&args)
            .env_remove("DISCOVERD_URL")
            .env_remove("OS_AUTH_TOKEN")
            .env_remove("OS_AUTH_URL");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output()
    })
    .await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_runs_an_introspection_with_basic_auth() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.7");
    ironic.add_port(NODE, "52:54:00:00:07:01");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, format!("op:{}\n", bcrypt::hash("pw", 5)?))?;
    let t = TestApp::new(
        &ironic.url(),
        &format!(
            "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}",
            file.display()
        ),
    )
    .await?;
    let url = serve(&t).await?;
    let creds = vec![
        ("DISCOVERD_HTTP_USER", "op".to_owned()),
        ("DISCOVERD_HTTP_PASSWORD", "pw".to_owned()),
    ];

    let (code, _, err) = cli(s(&["--discoverd-url", &url, "introspect", NODE]), creds.clone()).await?;
    assert_eq!(code, 0, "{err}");
    // Wait for the background part, then status is JSON on stdout.
    let mut status = Value::Null;
    for _ in 0..200 {
        let (code, out, _) = cli(s(&["--discoverd-url", &url, "get_status", NODE]), creds.clone()).await?;
        if code == 0 {
            status = serde_json::from_str(&out)?;
            if status["state"] == "waiting" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["finished"], json!(false), "{status}");
    // The ramdisk reports; the CLI sees it finish.
    let http = reqwest::Client::new();
    let body = json!({"interfaces": {"em1": {"mac": "52:54:00:00:07:01", "ip": "192.0.2.70"}},
                      "ipmi_address": "192.0.2.7", "cpus": 1, "cpu_arch": "x86_64", "memory_mb": 512, "local_gb": 9});
    let r = http.post(format!("{url}/v1/continue")).json(&body).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let mut finished = false;
    for _ in 0..200 {
        let (_, out, _) = cli(s(&["--discoverd-url", &url, "get-status", NODE]), creds.clone()).await?;
        if serde_json::from_str::<Value>(&out).is_ok_and(|v| v["finished"] == true && v["error"].is_null()) {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(finished);

    // Server errors: exit 1 with the server's message.
    let (code, _, err) = cli(
        s(&["--discoverd-url", &url, "get_status", UNKNOWN]),
        creds.clone(),
    )
    .await?;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Could not find node {UNKNOWN} in cache")),
        "{err}"
    );
    let (code, _, err) = cli(s(&["--discoverd-url", &url, "introspect", NODE]), vec![]).await?;
    assert_eq!(code, 1);
    assert!(err.contains("not authorized (401)"), "{err}");
    // Usage errors: exit 2.
    let (code, _, _) = cli(s(&["--discoverd-url", &url, "get_status"]), vec![]).await?;
    assert_eq!(code, 2);
    let (code, _, _) = cli(s(&["frobnicate"]), vec![]).await?;
    assert_eq!(code, 2);
    // Unreachable: exit 1.
    let (code, _, err) = cli(
        s(&["--discoverd-url", "http://127.0.0.1:9", "get_status", NODE]),
        vec![],
    )
    .await?;
    assert_eq!(code, 1, "{err}");
    Ok(())
}

#[tokio::test]
async fn completions_and_man_page_are_generated() -> anyhow::Result<()> {
    let (code, out, _) = cli(s(&["completions", "bash"]), vec![]).await?;
    assert_eq!(code, 0);
    assert!(out.contains("ironic-discoverd-client") && out.contains("get_status"));
    let (code, out, _) = cli(s(&["man"]), vec![]).await?;
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.contains(".TH"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert!(out.contains("introspect"));
    Ok(())
}
