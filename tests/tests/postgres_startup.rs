//! The real daemon binary on a PostgreSQL it cannot use (issue 16): an
//! unreachable server, a wrong password, a database or user that does not
//! exist, a schema newer than the binary. Each stops it at start-up with
//! a non-zero exit and a message naming `[discoverd] database`, and the
//! password is never printed. (URLs refused before connecting — another
//! scheme, an unparsable URL — are in daemon_startup.rs.)
//!
//! Needs root (the daemon runs as its own user through `setpriv`) and
//! PostgreSQL installed (a server of the test's own, whose access rules
//! it changes); skips without them unless `DISCOVERD_REQUIRE_PRIVILEGED=1`.

use std::process::Command;

use ironic_discoverd_e2e::stack::DAEMON_ID;
use ironic_discoverd_e2e::{binary, privileged_available};
use test_support::postgres::{OwnServer, TestDatabase};

/// The password the tests give, which no output may contain.
const SECRET: &str = "s3cret-Pw";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the daemon binary on `database` until it exits; its exit code
/// and log. It must stop before reaching Ironic (none listens there).
fn run_daemon_on(database: &str) -> anyhow::Result<(Option<i32>, String)> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {database}\nauth_strategy = noauth\nironic_url = http://127.0.0.1:1\n\
             listen_address = 127.0.0.1\nlisten_port = {}\nmanage_firewall = false\nironic_retry_attempts = 0\n",
            free_port()?
        ),
    )?;
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={DAEMON_ID}"),
            format!("--regid={DAEMON_ID}"),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
            "--bounding-set=-all".into(),
            "--no-new-privs".into(),
        ])
        .arg(binary("ironic-discoverd")?)
        .arg("--config-file")
        .arg(&conf)
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The daemon on `database` stops at start-up naming the setting and
/// everything in `says`, without the password.
fn refused(database: &str, says: &[&str]) -> anyhow::Result<()> {
    let (code, log) = run_daemon_on(database)?;
    assert_ne!(code, Some(0), "{database}: {log}");
    assert!(
        log.contains("[discoverd] database") && says.iter().all(|s| log.contains(s)),
        "{database}: the message names neither the setting nor {says:?}: {log}"
    );
    assert!(!log.contains(SECRET), "the password was printed: {log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_daemon_cannot_use_stops_it_naming_the_setting() -> anyhow::Result<()> {
    if !privileged_available("postgres_startup")? {
        return Ok(());
    }
    let Some(pg) = OwnServer::start()? else {
        return Ok(());
    };
    // A user who must give a password over TCP (the script's server
    // trusts everyone else).
    let hba = pg.dir.path().join("data/pg_hba.conf");
    let rules = std::fs::read_to_string(&hba)?;
    std::fs::write(
        &hba,
        format!("host all pwuser 127.0.0.1/32 scram-sha-256\n{rules}"),
    )?;
    pg.execute(&format!(
        "CREATE ROLE pwuser LOGIN PASSWORD '{SECRET}'; SELECT pg_reload_conf()"
    ))
    .await?;
    let db = TestDatabase::create_on(&pg.url).await?;
    let (base, name) = db
        .url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("no database in {}", db.url))?;
    let authority = base
        .rsplit_once('@')
        .map(|(_, a)| a)
        .ok_or_else(|| anyhow::anyhow!("no user in {base}"))?;
    pg.execute(&format!("GRANT ALL ON DATABASE {name} TO pwuser"))
        .await?;
    db.execute("GRANT ALL ON SCHEMA public TO pwuser").await?;

    // Nothing listens on port 1.
    refused(
        &format!("postgresql://discoverd:{SECRET}@127.0.0.1:1/discoverd"),
        &["127.0.0.1:1"],
    )?;
    // The wrong password; the right one gets past the database (the
    // daemon then stops at Ironic, after migrating): the rule works.
    refused(
        &format!("postgresql://pwuser:not-{SECRET}@{authority}/{name}"),
        &["password authentication failed", "pwuser"],
    )?;
    let (code, log) = run_daemon_on(&format!("postgresql://pwuser:{SECRET}@{authority}/{name}"))?;
    assert_ne!(code, Some(0), "the daemon cannot run without Ironic: {log}");
    assert!(
        log.contains("Ironic") && !log.contains("[discoverd] database") && !log.contains(SECRET),
        "the right password should reach Ironic: {log}"
    );
    // A database, a user that does not exist.
    refused(
        &format!("postgresql://discoverd:{SECRET}@{authority}/no_such_db"),
        &["no_such_db"],
    )?;
    refused(
        &format!("postgresql://nobody_here:{SECRET}@{authority}/{name}"),
        &["nobody_here"],
    )?;
    // Migrated by a newer daemon: refused, saying so.
    db.execute("INSERT INTO discoverd_schema (version) VALUES (99)")
        .await?;
    refused(
        &format!("postgresql://pwuser:{SECRET}@{authority}/{name}"),
        &["version 99", "upgrade"],
    )?;
    Ok(())
}
