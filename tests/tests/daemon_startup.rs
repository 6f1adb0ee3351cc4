//! The real `ironic-discoverd` binary refuses bad configuration with a
//! message that names the file, option and value, and exit code 1.

use std::process::Command;

use ironic_discoverd_e2e::binary;

fn run_with_conf(text: &str, legacy: bool) -> anyhow::Result<(i32, String)> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(&conf, text)?;
    let mut cmd = Command::new(binary("ironic-discoverd")?);
    if !legacy {
        cmd.arg("--config-file");
    }
    let out = cmd.arg(&conf).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&conf.display().to_string(), "CONF");
    Ok((out.status.code().unwrap_or(-1), stderr))
}

#[test]
fn bad_timeout_names_file_option_and_value() -> anyhow::Result<()> {
    let (code, err) = run_with_conf("[discoverd]\ndatabase = /tmp/x.sqlite\ntimeout = abc\n", false)?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("CONF: [discoverd] timeout = \"abc\""),
        "message should name file, option and value: {err}"
    );
    Ok(())
}

#[test]
fn missing_database_is_a_clear_startup_error() -> anyhow::Result<()> {
    let (code, err) = run_with_conf("[discoverd]\nos_username = admin\n", true)?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("CONF: [discoverd] database is required but not set"),
        "{err}"
    );
    Ok(())
}

#[test]
fn unknown_option_is_refused() -> anyhow::Result<()> {
    let (code, err) = run_with_conf(
        "[discoverd]\ndatabase = /tmp/x.sqlite\nmanage_firewal = false\n",
        false,
    )?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown option \"manage_firewal\""), "{err}");
    Ok(())
}

#[test]
fn usage_errors_exit_2() -> anyhow::Result<()> {
    let out = Command::new(binary("ironic-discoverd")?).output()?;
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(binary("ironic-discoverd")?)
        .arg("--bogus")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

/// Pitfall 10: at start-up Ironic gets `ironic_retry_attempts + 1` tries,
/// `ironic_retry_period` apart, then the daemon exits with an error.
#[test]
fn unreachable_ironic_gets_attempts_plus_one_tries_then_exit_1() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let text = format!(
        "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = http://127.0.0.1:{port}\n\
ironic_retry_attempts = 2\nironic_retry_period = 0.1\nlisten_address = 127.0.0.1\nlisten_port = 0\n",
        dir.path().join("db.sqlite").display()
    );
    let (code, err) = run_with_conf(&text, false)?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    assert_eq!(err.matches("Ironic is not reachable yet").count(), 3, "{err}");
    Ok(())
}

/// The same count when Ironic answers 503: each start-up try is one HTTP
/// request (the client's own 503 retries do not multiply them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ironic_answering_503_gets_exactly_attempts_plus_one_requests() -> anyhow::Result<()> {
    let fake = test_support::FakeIronic::start().await?;
    fake.inject(
        axum::http::Method::GET,
        "/v1",
        test_support::Fault::Status(503),
        100,
    );
    let dir = tempfile::tempdir()?;
    let text = format!(
        "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {}\n\
ironic_retry_attempts = 2\nironic_retry_period = 0.1\nlisten_address = 127.0.0.1\nlisten_port = 0\n",
        dir.path().join("db.sqlite").display(),
        fake.url()
    );
    let (code, err) = tokio::task::spawn_blocking(move || run_with_conf(&text, false)).await??;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    let tries = fake
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path == "/v1")
        .count();
    assert_eq!(tries, 3, "{err}");
    Ok(())
}
