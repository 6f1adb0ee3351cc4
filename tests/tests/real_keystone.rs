//! Against a real Keystone 30 (started once per run by `scripts/test.sh`;
//! `DISCOVERD_TEST_KEYSTONE_ENV` names its env file): the daemon gets its
//! service token with a password, an admin token is allowed, a member-only
//! token gets 403 on every operator endpoint, garbage gets 401, and the
//! ramdisk endpoint needs nothing. The CLI authenticates with OS_* too.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use ironic_discoverd_e2e::stack::eventually;
use ironic_discoverd_e2e::{ChildGuard, binary, privileged_required};
use test_support::FakeIronic;

const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";

fn keystone_env() -> anyhow::Result<Option<HashMap<String, String>>> {
    let Ok(path) = std::env::var("DISCOVERD_TEST_KEYSTONE_ENV") else {
        if privileged_required() {
            anyhow::bail!(
                "DISCOVERD_TEST_KEYSTONE_ENV is not set (scripts/test.sh starts a real Keystone) and DISCOVERD_REQUIRE_PRIVILEGED=1"
            );
        }
        ironic_discoverd_e2e::skipped("real_keystone", "no real Keystone (run through scripts/test.sh)");
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)?;
    let mut env = HashMap::new();
    for line in text.lines() {
        for pair in line.trim_start_matches("export ").split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                env.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    Ok(Some(env))
}

async fn issue(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    project: &str,
) -> anyhow::Result<String> {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let r = http.post(format!("{url}/auth/tokens")).json(&body).send().await?;
    anyhow::ensure!(r.status().as_u16() == 201, "token for {user}: {}", r.status());
    Ok(r.headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_keystone_admin_member_and_garbage_tokens() -> anyhow::Result<()> {
    let Some(env) = keystone_env()? else {
        return Ok(());
    };
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    let ks = get("KEYSTONE_URL");
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.1");
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nmanage_firewall = false\nauth_strategy = keystone\nos_auth_url = {ks}\n\
os_username = {}\nos_password = {}\nos_tenant_name = {}\nironic_url = {}\nlisten_address = 127.0.0.1\nlisten_port = {port}\n",
            dir.path().join("db.sqlite").display(),
            get("DISCOVERD_SERVICE_USER"),
            get("DISCOVERD_SERVICE_PASSWORD"),
            get("DISCOVERD_SERVICE_PROJECT"),
            ironic.url()
        ),
    )?;
    let log = dir.path().join("daemon.log");
    let mut cmd = Command::new(binary("ironic-discoverd")?);
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir.path()])?;
    cmd.arg("--config-file")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let _daemon = ChildGuard::spawn("ironic-discoverd", &mut cmd)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    eventually("the daemon", Duration::from_secs(30), async || {
        Ok(http
            .get(format!("{base}/"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success()))
    })
    .await?;

    // Keystone's uwsgi closes each connection after its answer: a pooled
    // one can be reset under the next request (the daemon's Keystone
    // client keeps no idle connection for the same reason).
    let keystone_http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()?;
    let admin = issue(
        &keystone_http,
        &ks,
        &get("KEYSTONE_ADMIN_USER"),
        &get("KEYSTONE_ADMIN_PASSWORD"),
        &get("KEYSTONE_ADMIN_PROJECT"),
    )
    .await?;
    let member = issue(
        &keystone_http,
        &ks,
        &get("MEMBER_USER"),
        &get("MEMBER_PASSWORD"),
        &get("MEMBER_PROJECT"),
    )
    .await?;
    // With an admin token each call gets the answer its endpoint gives
    // (not merely "not refused"): the status of a node never started is
    // 404, an empty discover list and a start are accepted.
    let operator = [
        (reqwest::Method::GET, format!("/v1/introspection/{NODE}"), 404),
        (reqwest::Method::POST, "/v1/discover".to_owned(), 202),
        (reqwest::Method::POST, format!("/v1/introspection/{NODE}"), 202),
    ];
    for (method, path, admin_answer) in &operator {
        let call = |token: Option<&str>| {
            let mut r = http.request(method.clone(), format!("{base}{path}"));
            if let Some(t) = token {
                r = r.header("X-Auth-Token", t);
            }
            if path.ends_with("discover") {
                r = r.json(&serde_json::json!([]));
            }
            r.send()
        };
        assert_eq!(call(None).await?.status().as_u16(), 401, "{path} without a token");
        assert_eq!(
            call(Some("gAAAAAgarbage")).await?.status().as_u16(),
            401,
            "{path} with garbage"
        );
        assert_eq!(
            call(Some(&member)).await?.status().as_u16(),
            403,
            "{path} with a member-only token"
        );
        let ok = call(Some(&admin)).await?.status().as_u16();
        assert_eq!(ok, *admin_answer, "{path} with an admin token");
    }
    let r = http
        .post(format!("{base}/v1/continue"))
        .json(&serde_json::json!({}))
        .send()
        .await?;
    assert_eq!(
        r.status().as_u16(),
        400,
        "continue needs no token, only valid data"
    );
    let text = std::fs::read_to_string(&log)?;
    assert!(
        text.contains("obtained a Keystone token for the service user"),
        "{text}"
    );

    // The CLI with a Keystone user from OS_* variables, once the node
    // started above is cached.
    eventually("the node to be cached", Duration::from_secs(10), async || {
        let r = http
            .get(format!("{base}/v1/introspection/{NODE}"))
            .header("X-Auth-Token", &admin)
            .send()
            .await?;
        Ok((r.status().as_u16() == 200).then_some(()))
    })
    .await?;
    let out = Command::new(binary("ironic-discoverd-client")?)
        .args(["--discoverd-url", &base, "get_status", NODE])
        .env("OS_AUTH_URL", &ks)
        .env("OS_USERNAME", get("KEYSTONE_ADMIN_USER"))
        .env("OS_PASSWORD", get("KEYSTONE_ADMIN_PASSWORD"))
        .env("OS_PROJECT_NAME", get("KEYSTONE_ADMIN_PROJECT"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"finished\""), "{stdout}");
    Ok(())
}
