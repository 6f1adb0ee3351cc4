//! The auth matrix: strategy × endpoint × credentials, in-process against
//! a fake Keystone v3 and a real bcrypt htpasswd file.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use test_support::fake_keystone::{ADMIN_TOKEN, EXPIRED_TOKEN, MEMBER_TOKEN, SERVICE_PASSWORD, SERVICE_USER};
use test_support::{FakeIronic, FakeKeystone, TestApp};
use tower::ServiceExt;

const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";

/// Operator endpoints: method, path, body.
fn operator_endpoints() -> Vec<(Method, String, Option<&'static str>)> {
    vec![
        (Method::POST, format!("/v1/introspection/{NODE}"), None),
        (Method::GET, format!("/v1/introspection/{NODE}"), None),
        (Method::POST, "/v1/discover".into(), Some("[]")),
    ]
}

async fn send(
    t: &TestApp,
    method: Method,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, String)],
) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, serde_json::Value)> {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))?;
    let resp = t.router.clone().oneshot(req).await?;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    Ok((
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    ))
}

async fn keystone_app() -> anyhow::Result<(FakeIronic, FakeKeystone, TestApp)> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.1");
    let ks = FakeKeystone::start().await?;
    let t = TestApp::new(
        &ironic.url(),
        &format!(
            "auth_strategy = keystone\nos_auth_url = {}\nos_username = {SERVICE_USER}\nos_password = {SERVICE_PASSWORD}\nos_tenant_name = service\ntoken_cache_time = 60",
            ks.url()
        ),
    )
    .await?;
    Ok((ironic, ks, t))
}

fn token(t: &str) -> Vec<(&'static str, String)> {
    vec![("X-Auth-Token", t.to_owned())]
}

#[tokio::test]
async fn keystone_matrix() -> anyhow::Result<()> {
    let (_ironic, ks, t) = keystone_app().await?;
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, StatusCode);
    let cases: Vec<Case<'_>> = vec![
        ("no token", vec![], StatusCode::UNAUTHORIZED),
        ("garbage token", token("not-a-token"), StatusCode::UNAUTHORIZED),
        ("expired token", token(EXPIRED_TOKEN), StatusCode::UNAUTHORIZED),
        ("member-only token", token(MEMBER_TOKEN), StatusCode::FORBIDDEN),
        // Forged identity headers change nothing.
        (
            "forged roles",
            vec![
                ("X-Roles", "admin".into()),
                ("X-Identity-Status", "Confirmed".into()),
            ],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (method, path, body) in operator_endpoints() {
        for (what, headers, want) in &cases {
            let (code, _, v) = send(&t, method.clone(), &path, body, headers).await?;
            assert_eq!(code, *want, "{what} on {method} {path}: {v}");
            assert!(v["error"]["message"].is_string(), "{v}");
        }
        let (code, _, v) = send(&t, method.clone(), &path, body, &token(ADMIN_TOKEN)).await?;
        assert!(code.is_success(), "admin on {method} {path}: {code} {v}");
    }
    // Public endpoints need nothing.
    for path in ["/", "/v1"] {
        let (code, _, _) = send(&t, Method::GET, path, None, &[]).await?;
        assert_eq!(code, StatusCode::OK, "{path}");
    }
    let (code, _, v) = send(&t, Method::POST, "/v1/continue", Some("{}"), &token(MEMBER_TOKEN)).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST, "continue is not behind auth: {v}");
    let (code, _, _) = send(&t, Method::POST, "/v1/continue", Some("{}"), &[]).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    // The service token was issued once and reused.
    assert_eq!(ks.issued(), 1);
    Ok(())
}

#[tokio::test]
async fn positive_validations_are_cached_and_keystone_down_is_503() -> anyhow::Result<()> {
    let (_ironic, ks, t) = keystone_app().await?;
    let path = format!("/v1/introspection/{NODE}");
    let (code, _, _) = send(&t, Method::GET, &path, None, &token(ADMIN_TOKEN)).await?;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "authorized; the node is just not cached"
    );
    let after_first = ks.validations();
    for _ in 0..5 {
        send(&t, Method::GET, &path, None, &token(ADMIN_TOKEN)).await?;
    }
    assert_eq!(
        ks.validations(),
        after_first,
        "cached validations must not call Keystone"
    );
    ks.set_down(true);
    // Cached: still allowed. Unknown: 503, never allowed.
    let (code, _, _) = send(&t, Method::GET, &path, None, &token(ADMIN_TOKEN)).await?;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, v) = send(&t, Method::GET, &path, None, &token(MEMBER_TOKEN)).await?;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Keystone"))
    );
    Ok(())
}

#[tokio::test]
async fn ironic_url_comes_from_the_keystone_catalog() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.1");
    let ks = FakeKeystone::start().await?;
    ks.set_ironic_url(&ironic.url());
    let dir = tempfile::tempdir()?;
    let text = format!(
        "[discoverd]\ndatabase = {}\nauth_strategy = keystone\nmanage_firewall = false\nos_auth_url = {}\nos_username = {SERVICE_USER}\nos_password = {SERVICE_PASSWORD}\nos_tenant_name = service\n",
        dir.path().join("db.sqlite").display(),
        ks.url().replace("/v3", "/v2.0")
    );
    let ini = common::ini::IniFile::parse(std::path::Path::new("t.conf"), &text)?;
    let config = discoverd::Config::from_ini(&ini)?;
    let session = discoverd::keystone::Session::from_config(&config)?;
    let client = discoverd::daemon::ironic_client(&config, session).await?;
    assert_eq!(client.base_url(), ironic.url());
    let node = client.get_node(NODE).await?;
    assert_eq!(node.uuid, NODE);
    Ok(())
}

fn htpasswd_app_conf(path: &std::path::Path) -> String {
    format!(
        "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}",
        path.display()
    )
}

fn basic(user: &str, pass: &str) -> Vec<(&'static str, String)> {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    vec![("Authorization", format!("Basic {v}"))]
}

#[tokio::test]
async fn http_basic_matrix_and_reload() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.1");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("htpasswd");
    let hash = bcrypt::hash("correct horse", 5)?;
    std::fs::write(
        &file,
        format!("# operators\nalice:{hash}\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"),
    )?;
    let t = TestApp::new(&ironic.url(), &htpasswd_app_conf(&file)).await?;
    let path = format!("/v1/introspection/{NODE}");
    for (what, headers, want) in [
        ("none", vec![], StatusCode::UNAUTHORIZED),
        (
            "wrong password",
            basic("alice", "wrong"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown user",
            basic("mallory", "correct horse"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "non-bcrypt entry",
            basic("bob", "password"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "garbage header",
            vec![("Authorization", "Basic !!!".to_owned())],
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (code, headers, _) = send(&t, Method::GET, &path, None, &headers).await?;
        assert_eq!(code, want, "{what}");
        assert_eq!(
            headers.get("www-authenticate").and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"ironic-discoverd\""),
            "{what}"
        );
    }
    let (code, _, _) = send(&t, Method::POST, &path, None, &basic("alice", "correct horse")).await?;
    assert_eq!(code, StatusCode::ACCEPTED);
    // The file is re-read when it changes: carol appears, alice goes.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let carol = bcrypt::hash("pw2", 5)?;
    std::fs::write(&file, format!("carol:{carol}\n"))?;
    let (code, _, _) = send(&t, Method::GET, &path, None, &basic("carol", "pw2")).await?;
    assert_ne!(code, StatusCode::UNAUTHORIZED);
    let (code, _, _) = send(&t, Method::GET, &path, None, &basic("alice", "correct horse")).await?;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // /v1/continue stays open; /metrics is behind auth unless metrics_public.
    let (code, _, _) = send(&t, Method::POST, "/v1/continue", Some("{}"), &[]).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _, _) = send(&t, Method::GET, "/metrics", None, &[]).await?;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, _) = send(&t, Method::GET, "/metrics", None, &basic("carol", "pw2")).await?;
    assert_eq!(code, StatusCode::OK);
    let (code, _, _) = send(&t, Method::GET, "/healthz", None, &[]).await?;
    assert_eq!(code, StatusCode::OK);
    let public = TestApp::new(
        &ironic.url(),
        &format!("{}\nmetrics_public = true", htpasswd_app_conf(&file)),
    )
    .await?;
    let (code, _, _) = send(&public, Method::GET, "/metrics", None, &[]).await?;
    assert_eq!(code, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn keystone_strategy_without_service_credentials_fails_at_startup() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    let r = TestApp::new(&ironic.url(), "auth_strategy = keystone").await;
    let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("needs the service user"), "{msg}");
    Ok(())
}
