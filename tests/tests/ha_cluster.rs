//! Three daemons (the real binaries) on one real PostgreSQL with the real
//! Ironic (issue 16): introspections started round-robin, reports posted
//! to random daemons, one daemon SIGKILLed mid-way while it has work in
//! flight, then the database taken away and given back under load. Every
//! node finishes exactly once (one "introspection finished" line across
//! the three daemons' logs), the nodes the killed daemon held are
//! finished by the others, requests made while the database is away
//! answer 503 and nothing accepted is lost, and a timeout fires exactly
//! once across the cluster.
//!
//! Needs root (the daemons run as their own user through `setpriv`),
//! `DISCOVERD_TEST_IRONIC_URL` and `DISCOVERD_TEST_POSTGRES_URL`
//! (`scripts/test.sh` sets both); skips without them unless
//! `DISCOVERD_REQUIRE_PRIVILEGED=1`, where it fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::stack::{DAEMON_ID, eventually};
use ironic_discoverd_e2e::{ChildGuard, binary, privileged_available};
use serde_json::{Value, json};
use test_support::postgres::TestDatabase;

/// Nodes started before the kill (the benchmark runs 200).
const NODES: usize = 24;
/// Nodes started on the doomed daemon just before it is killed: their
/// reboots are in flight when it dies.
const LATE: usize = 3;
const TIMEOUT_SECS: u64 = 45;
/// Liveness bound for one wait (not a speed claim).
const LIVENESS: Duration = Duration::from_secs(60);

struct Daemon {
    guard: ChildGuard,
    port: u16,
    log: PathBuf,
}

struct Cluster {
    dir: tempfile::TempDir,
    daemons: Vec<Daemon>,
    http: reqwest::Client,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    fn start(n: usize, ironic: &str, database: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut daemons = Vec::new();
        for i in 0..n {
            let port = free_port()?;
            let conf = dir.path().join(format!("discoverd-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "[discoverd]\ndatabase = {database}\nauth_strategy = noauth\nironic_url = {ironic}\n\
                     listen_address = 127.0.0.1\nlisten_port = {port}\nmanage_firewall = false\n\
                     ironic_retry_period = 0.2\nlease_time = 2\ntimeout = {TIMEOUT_SECS}\nclean_up_period = 1\n"
                ),
            )?;
            let log = dir.path().join(format!("daemon-{i}.log"));
            let mut cmd = Command::new("setpriv");
            cmd.args([
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
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
            let guard = ChildGuard::spawn("ironic-discoverd", &mut cmd)?;
            daemons.push(Daemon { guard, port, log });
        }
        Ok(Cluster {
            dir,
            daemons,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    fn url(&self, d: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.daemons[d].port)
    }

    fn logs(&self) -> Vec<String> {
        self.daemons
            .iter()
            .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
            .collect()
    }

    async fn wait_ready(&self, d: usize) -> anyhow::Result<()> {
        eventually("a daemon to answer", Duration::from_secs(30), async || {
            Ok(self
                .http
                .get(self.url(d, "/"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success()))
        })
        .await
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.logs()[d]))
    }

    async fn introspect(&self, d: usize, uuid: &str) -> anyhow::Result<u16> {
        let url = self.url(d, &format!("/v1/introspection/{uuid}"));
        Ok(self.http.post(url).send().await?.status().as_u16())
    }

    async fn status(&self, d: usize, uuid: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(self.url(d, &format!("/v1/introspection/{uuid}")))
            .header("X-OpenStack-Ironic-Inspector-API-Version", "1.12")
            .send()
            .await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    async fn report(&self, d: usize, body: &Value) -> anyhow::Result<u16> {
        let r = self
            .http
            .post(self.url(d, "/v1/continue"))
            .json(body)
            .send()
            .await?;
        Ok(r.status().as_u16())
    }

    /// Posts a report as a ramdisk behind a load balancer does: another
    /// daemon on a refused connection, again on 503.
    async fn report_until_accepted(&self, live: &[usize], first: usize, body: &Value) -> anyhow::Result<()> {
        let mut d = first;
        eventually("a report to be accepted", LIVENESS, async || {
            let code = self.report(live[d % live.len()], body).await.unwrap_or(0);
            d += 1;
            match code {
                200 => Ok(Some(())),
                0 | 503 => Ok(None),
                c => anyhow::bail!("report answered {c}"),
            }
        })
        .await
    }

    async fn wait_status(&self, d: usize, uuid: &str, f: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        eventually(&format!("status of {uuid}"), LIVENESS, async || {
            let (code, st) = self.status(d, uuid).await?;
            Ok((code == 200 && f(&st)).then_some(st))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.logs().join("\n----\n")))
    }
}

fn payload(mac: &str, bmc: &str) -> Value {
    json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.60"}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": 2, "local_gb": 40
    })
}

/// Log lines of `logs` naming `uuid` and containing `what`.
fn lines(logs: &[String], uuid: &str, what: &str) -> usize {
    logs.iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains(uuid) && l.contains(what))
        .count()
}

/// What the daemons logged about `uuid`, for failure messages.
fn history(logs: &[String], uuid: &str) -> String {
    let mut out = String::new();
    for (d, l) in logs.iter().enumerate() {
        for line in l.lines().filter(|l| l.contains(uuid)) {
            out.push_str(&format!("daemon {d}: {line}\n"));
        }
    }
    out
}

/// A small deterministic generator for "random" daemons.
fn next(seed: &mut u64) -> usize {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (*seed >> 33) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_survive_a_kill_and_a_database_outage() -> anyhow::Result<()> {
    let Some(ironic_url) = ironic_discoverd_e2e::services::privileged_ironic_url("ha_cluster")? else {
        return Ok(());
    };
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&ironic_url)?;
    let p = std::process::id();
    let total = NODES + LATE + 1;
    let nodes: Vec<(String, String)> = (0..total)
        .map(|i| {
            (
                format!("52:7e:{:02x}:{:02x}:00:{i:02x}", (p >> 8) & 0xff, p & 0xff),
                format!("198.18.{}.{}", p % 250, i + 1),
            )
        })
        .collect();
    let mut enrolling = tokio::task::JoinSet::new();
    for (i, (mac, bmc)) in nodes.iter().enumerate() {
        let (ironic, mac, bmc) = (ironic.clone(), mac.clone(), bmc.clone());
        enrolling.spawn(async move { Ok::<_, anyhow::Error>((i, ironic.enroll(&bmc, &mac).await?)) });
    }
    let mut uuids = vec![String::new(); total];
    while let Some(r) = enrolling.join_next().await {
        let (i, uuid) = r??;
        uuids[i] = uuid;
    }
    let timed = total - 1; // never reports
    let late = NODES..NODES + LATE;

    let mut cluster = Cluster::start(3, &ironic_url, &db.url)?;
    for d in 0..3 {
        cluster.wait_ready(d).await?;
    }
    assert_eq!(cluster.introspect(0, &uuids[timed]).await?, 202);
    for (i, uuid) in uuids[..NODES].iter().enumerate() {
        assert_eq!(cluster.introspect(i % 3, uuid).await?, 202, "start of {uuid}");
    }
    let half = NODES / 2;
    for uuid in &uuids[..half] {
        cluster.wait_status(0, uuid, |s| s["state"] == "waiting").await?;
    }

    // Reports for the first half to random daemons, the late starts on
    // daemon 2, and daemon 2 killed as soon as they are answered.
    let mut seed = u64::from(p);
    let mut reported = Vec::new();
    for i in 0..half {
        let d = next(&mut seed) % 3;
        let (mac, bmc) = &nodes[i];
        assert_eq!(
            cluster.report(d, &payload(mac, bmc)).await?,
            200,
            "report of {}",
            uuids[i]
        );
        reported.push(d);
    }
    for i in late.clone() {
        assert_eq!(cluster.introspect(2, &uuids[i]).await?, 202);
    }
    let killed_pid = cluster.daemons[2].guard.pid();
    cluster.daemons[2].guard.kill();
    let held: Vec<String> = db
        .column(&format!(
            "SELECT uuid::text FROM nodes WHERE owner LIKE '%:{killed_pid}:%' AND finished_at IS NULL"
        ))
        .await?;
    assert!(
        !held.is_empty(),
        "the killed daemon held nothing in flight: the test proves no takeover"
    );

    // The database goes away under load: requests answer 503, never 2xx.
    db.set_reachable(false).await?;
    let (code, _) = cluster.status(0, &uuids[0]).await?;
    assert_eq!(code, 503, "a status read without the database");
    let (mac, bmc) = &nodes[half];
    assert_eq!(
        cluster.report(1, &payload(mac, bmc)).await?,
        503,
        "a report without the database"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.set_reachable(true).await?;

    // The rest report (the late ones once taken over and rebooted).
    let live = [0, 1];
    for i in half..NODES + LATE {
        cluster
            .wait_status(0, &uuids[i], |s| s["state"] == "waiting")
            .await?;
        let (mac, bmc) = &nodes[i];
        cluster
            .report_until_accepted(&live, i, &payload(mac, bmc))
            .await?;
    }
    for (i, uuid) in uuids[..NODES + LATE].iter().enumerate() {
        let st = cluster
            .wait_status(i % 2, uuid, |s| s["finished"] == true)
            .await?;
        assert_eq!(
            st["error"],
            Value::Null,
            "{uuid}: {st}\n{}",
            history(&cluster.logs(), uuid)
        );
    }
    let st = cluster
        .wait_status(1, &uuids[timed], |s| s["finished"] == true)
        .await?;
    assert_eq!(st["error"], "Introspection timeout", "{st}");

    let logs = cluster.logs();
    for uuid in &uuids[..NODES + LATE] {
        assert_eq!(
            lines(&logs, uuid, "introspection finished"),
            1,
            "{uuid} finished ≠ once"
        );
        let n = ironic.node(uuid).await?;
        assert_eq!(n["extra"]["newly_discovered"], "true", "{uuid}: {n}");
        assert!(n["extra"].get("on_discovery").is_none(), "{uuid}: {n}");
    }
    assert_eq!(
        lines(&logs, &uuids[timed], "timed out"),
        1,
        "the timeout fired ≠ once"
    );
    for uuid in &held {
        assert!(
            lines(&logs[..2], uuid, "taking over") == 1
                && lines(&logs[..2], uuid, "introspection finished") == 1,
            "{uuid}, held by the killed daemon, was not finished by another"
        );
    }
    for i in late {
        assert!(
            held.contains(&uuids[i]),
            "late start {} not in flight at the kill",
            uuids[i]
        );
    }
    eprintln!(
        "ha_cluster: {} nodes, {} held by the killed daemon, reports to daemons {reported:?}; logs in {}",
        NODES + LATE,
        held.len(),
        cluster.dir.path().display()
    );
    drop(cluster.daemons.drain(..));
    Ok(())
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

#[tokio::test]
async fn a_database_the_daemon_cannot_use_stops_it_naming_the_setting() -> anyhow::Result<()> {
    if !privileged_available("ha_cluster_startup")? {
        return Ok(());
    }
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    // Unreachable (nothing listens on port 1): named, password hidden.
    let (code, log) = run_daemon_on("postgresql://discoverd:s3cret@127.0.0.1:1/discoverd")?;
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("[discoverd] database") && log.contains("127.0.0.1:1") && !log.contains("s3cret"),
        "{log}"
    );
    // Migrated by a newer daemon: refused, saying so.
    let (code, log) = run_daemon_on(&db.url)?;
    assert_ne!(code, Some(0), "the daemon cannot run without Ironic: {log}");
    assert!(
        log.contains("Ironic"),
        "first run stops at Ironic, after migrating: {log}"
    );
    db.execute("INSERT INTO discoverd_schema (version) VALUES (99)")
        .await?;
    let (code, log) = run_daemon_on(&db.url)?;
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("[discoverd] database") && log.contains("version 99") && log.contains("upgrade"),
        "{log}"
    );
    Ok(())
}
