//! `auth_strategy` × endpoint kind × credentials, against the in-process
//! fake Keystone and real bcrypt htpasswd files.

mod auth_support;

use std::time::Duration;

use auth_support::*;
use axum::http::StatusCode;
use test_support::FakeKeystone;
use test_support::fake_keystone::{ADMIN_TOKEN, EXPIRED_TOKEN, MEMBER_TOKEN};

const GARBAGE: &str = "gAAAAA-not-a-token";

/// Every operator route answers `want` with these headers; every public
/// route answers 200 with them.
async fn expect_all(
    r: &axum::Router,
    headers: &[(&str, &str)],
    want: StatusCode,
    case: &str,
) -> anyhow::Result<()> {
    for (m, p) in OPERATOR_ROUTES {
        let (status, _, body) = call(r, m, p, headers).await?;
        assert_eq!(status, want, "{case}: {m} {p}: {body}");
        if !status.is_success() {
            assert!(
                body["error"]["message"].as_str().is_some_and(|s| !s.is_empty()),
                "{case}: {m} {p}: error shape: {body}"
            );
        }
    }
    for (m, p) in PUBLIC_ROUTES {
        let (status, _, body) = call(r, m, p, headers).await?;
        assert_eq!(status, StatusCode::OK, "{case}: public {m} {p}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn keystone_matrix() -> anyhow::Result<()> {
    let ks = FakeKeystone::start().await?;
    let r = router(authenticator(&keystone_config(&ks.url(), "")?)?);
    expect_all(&r, &[], StatusCode::UNAUTHORIZED, "no token").await?;
    expect_all(
        &r,
        &[("X-Auth-Token", "")],
        StatusCode::UNAUTHORIZED,
        "empty token",
    )
    .await?;
    expect_all(
        &r,
        &[("X-Auth-Token", GARBAGE)],
        StatusCode::UNAUTHORIZED,
        "garbage",
    )
    .await?;
    expect_all(
        &r,
        &[("X-Auth-Token", EXPIRED_TOKEN)],
        StatusCode::UNAUTHORIZED,
        "expired",
    )
    .await?;
    expect_all(
        &r,
        &[("X-Auth-Token", MEMBER_TOKEN)],
        StatusCode::FORBIDDEN,
        "member",
    )
    .await?;
    expect_all(&r, &[("X-Auth-Token", ADMIN_TOKEN)], StatusCode::OK, "admin").await?;
    let (_, _, body) = call(&r, "GET", OPERATOR_ROUTES[1].1, &[("X-Auth-Token", ADMIN_TOKEN)]).await?;
    assert_eq!(body["operator"]["user"], "admin");
    Ok(())
}

#[tokio::test]
async fn keystone_role_is_configurable() -> anyhow::Result<()> {
    let ks = FakeKeystone::start().await?;
    ks.add_token("gAAAAA-inspector", "ops", &["member", "baremetal_admin"], None);
    let r = router(authenticator(&keystone_config(
        &ks.url(),
        "keystone_admin_role = baremetal_admin",
    )?)?);
    expect_all(
        &r,
        &[("X-Auth-Token", "gAAAAA-inspector")],
        StatusCode::OK,
        "custom role",
    )
    .await?;
    expect_all(
        &r,
        &[("X-Auth-Token", ADMIN_TOKEN)],
        StatusCode::FORBIDDEN,
        "admin only",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn keystone_validations_are_cached_within_token_cache_time() -> anyhow::Result<()> {
    let ks = FakeKeystone::start().await?;
    let r = router(authenticator(&keystone_config(&ks.url(), "")?)?);
    let h = [("X-Auth-Token", ADMIN_TOKEN)];
    call(&r, "GET", OPERATOR_ROUTES[1].1, &h).await?;
    let after_first = ks.validations();
    assert_eq!(after_first, 1);
    for _ in 0..5 {
        let (status, _, _) = call(&r, "GET", OPERATOR_ROUTES[1].1, &h).await?;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        ks.validations(),
        after_first,
        "cached validations do not call Keystone"
    );
    assert_eq!(ks.issued(), 1, "one service token for all validations");
    // Negative answers are not cached: the token may become valid.
    call(&r, "GET", OPERATOR_ROUTES[1].1, &[("X-Auth-Token", GARBAGE)]).await?;
    call(&r, "GET", OPERATOR_ROUTES[1].1, &[("X-Auth-Token", GARBAGE)]).await?;
    assert_eq!(ks.validations(), after_first + 2);

    let uncached = router(authenticator(&keystone_config(
        &ks.url(),
        "token_cache_time = 0",
    )?)?);
    let before = ks.validations();
    call(&uncached, "GET", OPERATOR_ROUTES[1].1, &h).await?;
    call(&uncached, "GET", OPERATOR_ROUTES[1].1, &h).await?;
    assert_eq!(
        ks.validations(),
        before + 2,
        "token_cache_time = 0 disables the cache"
    );
    Ok(())
}

#[tokio::test]
async fn keystone_cache_never_outlives_the_token() -> anyhow::Result<()> {
    let ks = FakeKeystone::start().await?;
    // Valid for Keystone now, but already past expiry by our clock: such a
    // validation must not be cached or honoured.
    ks.add_token(
        "gAAAAA-short",
        "admin",
        &["admin"],
        Some("2000-01-01T00:00:00.000000Z"),
    );
    let r = router(authenticator(&keystone_config(&ks.url(), "")?)?);
    for _ in 0..2 {
        let (status, _, _) = call(
            &r,
            "GET",
            OPERATOR_ROUTES[1].1,
            &[("X-Auth-Token", "gAAAAA-short")],
        )
        .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(ks.validations(), 2);
    Ok(())
}

#[tokio::test]
async fn keystone_failures_are_503_never_allowed() -> anyhow::Result<()> {
    let ks = FakeKeystone::start().await?;
    let r = router(authenticator(&keystone_config(
        &ks.url(),
        "ironic_timeout = 0.3",
    )?)?);
    for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY] {
        ks.set_validate_status(Some(status));
        let (got, _, body) = call(&r, "GET", OPERATOR_ROUTES[1].1, &[("X-Auth-Token", ADMIN_TOKEN)]).await?;
        assert_eq!(got, StatusCode::SERVICE_UNAVAILABLE, "Keystone {status}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Keystone"))
        );
    }
    ks.set_validate_status(None);
    ks.set_validate_delay(Some(Duration::from_secs(30)));
    let (got, _, _) = call(&r, "GET", OPERATOR_ROUTES[1].1, &[("X-Auth-Token", ADMIN_TOKEN)]).await?;
    assert_eq!(got, StatusCode::SERVICE_UNAVAILABLE, "a Keystone timeout");
    ks.set_validate_delay(None);
    // Keystone down altogether (service token cannot even be issued).
    let down = FakeKeystone::start().await?;
    down.set_down(true);
    let r = router(authenticator(&keystone_config(&down.url(), "")?)?);
    expect_all(
        &r,
        &[("X-Auth-Token", ADMIN_TOKEN)],
        StatusCode::SERVICE_UNAVAILABLE,
        "down",
    )
    .await?;
    // Nothing listening at all.
    let r = router(authenticator(&keystone_config("http://127.0.0.1:9/v3", "")?)?);
    let (got, _, _) = call(&r, "GET", OPERATOR_ROUTES[1].1, &[("X-Auth-Token", ADMIN_TOKEN)]).await?;
    assert_eq!(got, StatusCode::SERVICE_UNAVAILABLE, "connection refused");
    Ok(())
}

#[tokio::test]
async fn keystone_needs_service_credentials() -> anyhow::Result<()> {
    let c = config("auth_strategy = keystone")?;
    assert!(authenticator(&c).is_err());
    Ok(())
}

#[tokio::test]
async fn identity_headers_from_clients_are_stripped() -> anyhow::Result<()> {
    let forged = [
        ("X-Identity-Status", "Confirmed"),
        ("X-Roles", "admin"),
        ("X-User-Id", "root"),
        ("X-Project-Id", "admin"),
        ("X-Service-Roles", "admin"),
    ];
    // Forged headers do not let a token-less request in...
    let ks = FakeKeystone::start().await?;
    let r = router(authenticator(&keystone_config(&ks.url(), "")?)?);
    expect_all(&r, &forged, StatusCode::UNAUTHORIZED, "forged headers").await?;
    // ...nor do they reach the handlers of a request that gets in.
    let mut with_member = forged.to_vec();
    with_member.push(("X-Auth-Token", MEMBER_TOKEN));
    expect_all(&r, &with_member, StatusCode::FORBIDDEN, "member + forged").await?;
    let mut with_admin = forged.to_vec();
    with_admin.push(("X-Auth-Token", ADMIN_TOKEN));
    let (_, _, body) = call(&r, "GET", OPERATOR_ROUTES[1].1, &with_admin).await?;
    assert_eq!(body["identity_headers"], serde_json::json!({}), "{body}");
    let noauth = router(authenticator(&config("auth_strategy = noauth")?)?);
    let (_, _, body) = call(&noauth, "POST", "/v1/discover", &forged).await?;
    assert_eq!(body["identity_headers"], serde_json::json!({}), "{body}");
    Ok(())
}

#[tokio::test]
async fn noauth_allows_everything() -> anyhow::Result<()> {
    let r = router(authenticator(&config("auth_strategy = noauth")?)?);
    expect_all(&r, &[], StatusCode::OK, "noauth").await?;
    expect_all(&r, &[("X-Auth-Token", GARBAGE)], StatusCode::OK, "noauth + token").await?;
    let r = router(authenticator(&config("authenticate = false")?)?);
    expect_all(&r, &[], StatusCode::OK, "authenticate = false").await?;
    Ok(())
}

#[tokio::test]
async fn http_basic_matrix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("htpasswd");
    std::fs::write(
        &file,
        format!(
            "admin:{}\nlegacy:{{SHA}}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n",
            bcrypt::hash("s3cret", 5)?
        ),
    )?;
    let r = router(authenticator(&config(&format!(
        "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}",
        file.display()
    ))?)?);
    let good = basic("admin", "s3cret");
    let cases = [
        (None, StatusCode::UNAUTHORIZED, "none"),
        (
            Some(basic("admin", "wrong")),
            StatusCode::UNAUTHORIZED,
            "bad password",
        ),
        (
            Some(basic("nobody", "s3cret")),
            StatusCode::UNAUTHORIZED,
            "unknown user",
        ),
        (
            Some(basic("legacy", "test")),
            StatusCode::UNAUTHORIZED,
            "SHA1 entry",
        ),
        (
            Some("Basic !!!notbase64".to_owned()),
            StatusCode::UNAUTHORIZED,
            "garbage",
        ),
        (
            Some("Bearer abc".to_owned()),
            StatusCode::UNAUTHORIZED,
            "other scheme",
        ),
        (Some(good.clone()), StatusCode::OK, "good"),
    ];
    for (header, want, case) in cases {
        let h: Vec<(&str, &str)> = header.iter().map(|v| ("Authorization", v.as_str())).collect();
        expect_all(&r, &h, want, case).await?;
        if want == StatusCode::UNAUTHORIZED {
            let (_, headers, _) = call(&r, "POST", "/v1/discover", &h).await?;
            assert_eq!(
                headers.get("www-authenticate").and_then(|v| v.to_str().ok()),
                Some("Basic realm=\"ironic-discoverd\""),
                "{case}"
            );
        }
    }
    // The file is re-read when it changes: a new user works at once.
    std::fs::write(
        &file,
        format!(
            "admin:{}\nops:{}\n",
            bcrypt::hash("s3cret", 5)?,
            bcrypt::hash("pw", 5)?
        ),
    )?;
    expect_all(
        &r,
        &[("Authorization", &basic("ops", "pw"))],
        StatusCode::OK,
        "new user",
    )
    .await?;
    let (_, _, body) = call(&r, "GET", OPERATOR_ROUTES[1].1, &[("Authorization", &good)]).await?;
    assert_eq!(body["operator"]["user"], "admin");
    Ok(())
}

/// The matrix again on the product's router (`discoverd::api::router`, as
/// `TestApp` wires it), so a route added without the auth layer fails
/// here; the tiny router above only shows what the middleware hands the
/// handlers. Authorised requests get the route's own answer: status of a
/// node never started 404, start of a node Ironic does not know 404, an
/// empty discover list 202, metrics 200, and the inspector API's list,
/// abort, data, rules and the event stream.
#[tokio::test]
async fn the_product_router_applies_the_matrix_to_every_operator_route() -> anyhow::Result<()> {
    const UNKNOWN: &str = "/v1/introspection/0b4a3e70-2b2a-4e55-9a8f-5b0d6a0cffff";
    const ABORT: &str = "/v1/introspection/0b4a3e70-2b2a-4e55-9a8f-5b0d6a0cffff/abort";
    const DATA: &str = "/v1/introspection/0b4a3e70-2b2a-4e55-9a8f-5b0d6a0cffff/data";
    let operator: [(&str, &str, StatusCode); 10] = [
        ("POST", UNKNOWN, StatusCode::NOT_FOUND),
        ("GET", UNKNOWN, StatusCode::NOT_FOUND),
        ("POST", "/v1/discover", StatusCode::ACCEPTED),
        ("GET", "/metrics", StatusCode::OK),
        ("GET", "/v1/introspection", StatusCode::OK),
        ("POST", ABORT, StatusCode::NOT_FOUND),
        ("GET", DATA, StatusCode::NOT_FOUND),
        ("GET", "/v1/rules", StatusCode::OK),
        ("DELETE", "/v1/rules", StatusCode::NO_CONTENT),
        // An empty filter: a 400 once past authentication (a stream
        // that is let through would never end here).
        ("GET", "/v1/events?node=", StatusCode::BAD_REQUEST),
    ];
    let public: [(&str, &str, StatusCode); 5] = [
        ("GET", "/", StatusCode::OK),
        ("GET", "/v1", StatusCode::OK),
        ("GET", "/healthz", StatusCode::OK),
        // "[]" is not a report: refused as bad data, not as unauthorised.
        ("POST", "/v1/continue", StatusCode::BAD_REQUEST),
        ("GET", "/readyz", StatusCode::OK),
    ];
    let ironic = test_support::FakeIronic::start().await?;
    let ks = FakeKeystone::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, format!("admin:{}\n", bcrypt::hash("s3cret", 5)?))?;
    let keystone = format!(
        "auth_strategy = keystone\nos_auth_url = {}\nos_username = {}\nos_password = {}\nos_tenant_name = service",
        ks.url(),
        test_support::fake_keystone::SERVICE_USER,
        test_support::fake_keystone::SERVICE_PASSWORD,
    );
    let basic_conf = format!(
        "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}",
        file.display()
    );
    let good_basic = basic("admin", "s3cret");
    let bad_basic = basic("admin", "wrong");
    // (headers, Some(refusal) or None when the credentials are good)
    type Cases<'a> = Vec<(Vec<(&'a str, &'a str)>, Option<StatusCode>)>;
    let strategies: Vec<(&str, String, Cases<'_>)> = vec![
        (
            "keystone",
            keystone,
            vec![
                (vec![], Some(StatusCode::UNAUTHORIZED)),
                (vec![("X-Auth-Token", GARBAGE)], Some(StatusCode::UNAUTHORIZED)),
                (
                    vec![("X-Auth-Token", EXPIRED_TOKEN)],
                    Some(StatusCode::UNAUTHORIZED),
                ),
                (vec![("X-Auth-Token", MEMBER_TOKEN)], Some(StatusCode::FORBIDDEN)),
                (vec![("X-Auth-Token", ADMIN_TOKEN)], None),
            ],
        ),
        (
            "http_basic",
            basic_conf,
            vec![
                (vec![], Some(StatusCode::UNAUTHORIZED)),
                (
                    vec![("Authorization", bad_basic.as_str())],
                    Some(StatusCode::UNAUTHORIZED),
                ),
                (vec![("Authorization", good_basic.as_str())], None),
            ],
        ),
        (
            "noauth",
            "auth_strategy = noauth".to_owned(),
            vec![(vec![], None)],
        ),
    ];
    for (name, conf, cases) in strategies {
        let app = test_support::TestApp::new(&ironic.url(), &conf).await?;
        for (headers, refused) in cases {
            for (m, p, own) in operator {
                let (status, _, body) = call(&app.router, m, p, &headers).await?;
                assert_eq!(
                    status,
                    refused.unwrap_or(own),
                    "{name} {headers:?}: {m} {p}: {body}"
                );
            }
            for (m, p, own) in public {
                let (status, _, body) = call(&app.router, m, p, &headers).await?;
                assert_eq!(status, own, "{name} {headers:?}: public {m} {p}: {body}");
            }
        }
    }
    Ok(())
}
