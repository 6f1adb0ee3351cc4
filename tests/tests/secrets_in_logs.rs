//! Secrets never reach the log: the real daemon with debug logging, the
//! Keystone strategy against a fake Keystone, requests with every kind of
//! token; then the whole log is searched for each secret.

use std::process::{Command, Stdio};
use std::time::Duration;

use ironic_discoverd_e2e::stack::eventually;
use ironic_discoverd_e2e::{ChildGuard, binary};
use test_support::fake_keystone::{ADMIN_TOKEN, MEMBER_TOKEN, SERVICE_PASSWORD, SERVICE_TOKEN, SERVICE_USER};
use test_support::{FakeIronic, FakeKeystone};

const NODE: &str = "e9d2a3c0-35a1-4d3c-8a8f-4a6a3b2f0d11";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_appears_in_the_daemon_log() -> anyhow::Result<()> {
    let ironic = FakeIronic::start().await?;
    ironic.add_node(NODE, "192.0.2.1");
    let ks = FakeKeystone::start().await?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\ndebug = true\nmanage_firewall = false\nauth_strategy = keystone\n\
os_auth_url = {}\nos_username = {SERVICE_USER}\nos_password = {SERVICE_PASSWORD}\nos_tenant_name = service\n\
ironic_url = {}\nlisten_address = 127.0.0.1\nlisten_port = {port}\n",
            dir.path().join("db.sqlite").display(),
            ks.url(),
            ironic.url()
        ),
    )?;
    let log = dir.path().join("daemon.log");
    let mut cmd = Command::new(binary("ironic-discoverd")?);
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir.path()])?;
    cmd.arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let mut daemon = ChildGuard::spawn("ironic-discoverd", &mut cmd)?;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually("the daemon", Duration::from_secs(20), async || {
        Ok(http
            .get(format!("{base}/"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success()))
    })
    .await?;
    let garbage = "gAAAAA-garbage-token-that-must-not-be-logged";
    for token in [ADMIN_TOKEN, MEMBER_TOKEN, garbage] {
        http.get(format!("{base}/v1/introspection/{NODE}"))
            .header("X-Auth-Token", token)
            .send()
            .await?;
        http.post(format!("{base}/v1/introspection/{NODE}"))
            .header("X-Auth-Token", token)
            .send()
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = daemon.terminate(Duration::from_secs(10))?;
    assert!(status.success());
    let text = std::fs::read_to_string(&log)?;
    assert!(
        text.contains("obtained a Keystone token"),
        "the log should show the flow happened:\n{text}"
    );
    for secret in [
        SERVICE_PASSWORD,
        SERVICE_TOKEN,
        ADMIN_TOKEN,
        MEMBER_TOKEN,
        garbage,
    ] {
        assert!(!text.contains(secret), "{secret:?} appears in the log");
    }
    Ok(())
}
