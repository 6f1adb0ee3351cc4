//! The real `ironic-discoverd` binary refuses bad configuration with a
//! message that names the file, option and value, and exit code 1.

use std::process::Command;

use ironic_discoverd_e2e::{binary, privileged_available, unprivileged};

fn run_with_conf(text: &str, legacy: bool) -> anyhow::Result<(i32, String)> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(&conf, text)?;
    let mut cmd = Command::new(binary("ironic-discoverd")?);
    unprivileged(&mut cmd, &[dir.path()])?;
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

/// A `database` that is no usable URL (another database's scheme, an
/// unparsable PostgreSQL URL) is refused before anything is opened,
/// naming the setting, never printing the password (the server-side
/// failures are in postgres_startup.rs).
#[test]
fn a_bad_database_url_is_named_without_its_password() -> anyhow::Result<()> {
    for url in [
        "mysql://discoverd:s3cret-Pw@db.example/discoverd",
        "postgresql://discoverd:s3cret-Pw@db.example:notaport/discoverd",
        "postgresql://discoverd:s3cret-Pw@db.example/discoverd?sslmode=sometimes",
    ] {
        let (code, err) = run_with_conf(&format!("[discoverd]\ndatabase = {url}\n"), false)?;
        assert_eq!(code, 1, "{url}: {err}");
        assert!(
            err.contains("CONF: [discoverd] database = \"") && err.contains("db.example"),
            "{url}: {err}"
        );
        assert!(!err.contains("s3cret-Pw"), "the password was printed: {err}");
    }
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
    ironic_discoverd_e2e::give_to_daemon_user(&[dir.path()])?;
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
    ironic_discoverd_e2e::give_to_daemon_user(&[dir.path()])?;
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

/// The daemon refuses uid 0 and any capability, before reading its
/// configuration, with a message that says why (run as root: CI does).
#[test]
fn the_binary_refuses_root_and_capabilities() -> anyhow::Result<()> {
    if !privileged_available("the_binary_refuses_root_and_capabilities")? {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(&conf, "[discoverd]\ndatabase = /nonexistent/x.sqlite\n")?;
    let out = Command::new(binary("ironic-discoverd")?)
        .arg("--config-file")
        .arg(&conf)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refusing to run as root"), "{err}");
    // An unprivileged uid that kept one capability (ambient) is refused too.
    let id = ironic_discoverd_e2e::stack::DAEMON_ID;
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={id}"),
            format!("--regid={id}"),
            "--clear-groups".into(),
            "--inh-caps=+net_bind_service".into(),
            "--ambient-caps=+net_bind_service".into(),
        ])
        .arg(binary("ironic-discoverd")?)
        .arg("--config-file")
        .arg(&conf)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to run with capabilities") && err.contains("CAP_NET_BIND_SERVICE"),
        "{err}"
    );
    Ok(())
}

/// Logs written to a file carry no ANSI escapes (colour only on a terminal).
#[test]
fn logs_to_a_file_have_no_escape_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\n\
ironic_url = http://127.0.0.1:{port}\nironic_retry_attempts = 1\nironic_retry_period = 0.1\ndebug = true\n",
            dir.path().join("db.sqlite").display()
        ),
    )?;
    let log = dir.path().join("daemon.log");
    let mut cmd = Command::new(binary("ironic-discoverd")?);
    unprivileged(&mut cmd, &[dir.path()])?;
    let status = cmd
        .arg("--config-file")
        .arg(&conf)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stderr(std::fs::File::create(&log)?)
        .status()?;
    assert_eq!(status.code(), Some(1));
    let bytes = std::fs::read(&log)?;
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("Ironic is not reachable yet") && text.contains("WARN"),
        "{text}"
    );
    assert!(!bytes.contains(&0x1b), "escape codes in a log file: {text:?}");
    Ok(())
}
