//! Three daemons (the real binaries) on one real PostgreSQL with the real
//! Ironic (issue 16): 100 introspections started round-robin, reports
//! posted to random daemons, one daemon SIGKILLed mid-way while it has
//! work in flight, then PostgreSQL stopped and started again (a real
//! restart of the test's own server) while starts, status reads and
//! reports are in flight. Every node finishes exactly once (one
//! "introspection finished" line across the three daemons' logs), the
//! nodes the killed daemon held are finished by the others, every request
//! made while the database is down answers 503 with a JSON error (never
//! 500, never a hang), nothing accepted is lost, the cluster resumes by
//! itself, and a timeout fires exactly once across the cluster.
//!
//! Needs root (the daemons run as their own user through `setpriv`),
//! `DISCOVERD_TEST_IRONIC_URL` and PostgreSQL installed (the test starts
//! a server of its own with `scripts/postgres.sh`: it stops it, which the
//! suite's shared one must never be); skips without them unless
//! `DISCOVERD_REQUIRE_PRIVILEGED=1`, where it fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::stack::{DAEMON_ID, eventually};
use ironic_discoverd_e2e::{ChildGuard, binary};
use serde_json::{Value, json};
use test_support::postgres::{OwnServer, TestDatabase};

#[path = "ha_cluster/outage.rs"]
mod outage;

/// Introspections started round-robin at first; with [`LATE`] and
/// [`OUTAGE_STARTS`], 100 in all (the benchmark runs 200).
const NODES: usize = 91;
/// Nodes started on the doomed daemon just before it is killed: their
/// reboots are in flight when it dies.
const LATE: usize = 3;
/// Nodes whose start is sent while PostgreSQL restarts (a 503 is retried,
/// as a client does).
const OUTAGE_STARTS: usize = 6;
/// Nodes whose report is sent while PostgreSQL restarts.
const OUTAGE_REPORTS: usize = 6;
/// Never reached by a reported node, however slow the machine: the node
/// that must time out is made older than this in the database.
const TIMEOUT_SECS: u64 = 900;
/// Liveness bound for one wait (not a speed claim).
const LIVENESS: Duration = Duration::from_secs(60);
/// How long PostgreSQL stays down: longer than a lease (2 s), so every
/// lease has run out when it is back.
const DOWN: Duration = Duration::from_secs(3);

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
            // A request without an answer by then hung (the pool waits
            // 5 s at most for a connection).
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
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

/// Enrolls `nodes` (MAC, BMC) in Ironic, 16 at a time; their UUIDs in order.
async fn enroll(ironic: &IronicRest, nodes: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let mut uuids = vec![String::new(); nodes.len()];
    let mut enrolling = tokio::task::JoinSet::new();
    for (i, (mac, bmc)) in nodes.iter().enumerate() {
        let (ironic, mac, bmc) = (ironic.clone(), mac.clone(), bmc.clone());
        enrolling.spawn(async move { Ok::<_, anyhow::Error>((i, ironic.enroll(&bmc, &mac).await?)) });
        while enrolling.len() >= 16 {
            if let Some(r) = enrolling.join_next().await {
                let (i, uuid) = r??;
                uuids[i] = uuid;
            }
        }
    }
    while let Some(r) = enrolling.join_next().await {
        let (i, uuid) = r??;
        uuids[i] = uuid;
    }
    Ok(uuids)
}

/// POSTs each (URL, JSON body) call, 8 at a time; the status codes in order.
async fn post_all(http: &reqwest::Client, calls: Vec<(String, Option<Value>)>) -> anyhow::Result<Vec<u16>> {
    let mut codes = vec![0; calls.len()];
    let mut sending = tokio::task::JoinSet::new();
    for (i, (url, body)) in calls.into_iter().enumerate() {
        let mut req = http.post(url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        sending.spawn(async move { Ok::<_, anyhow::Error>((i, req.send().await?.status().as_u16())) });
        while sending.len() >= 8 {
            if let Some(r) = sending.join_next().await {
                let (i, code) = r??;
                codes[i] = code;
            }
        }
    }
    while let Some(r) = sending.join_next().await {
        let (i, code) = r??;
        codes[i] = code;
    }
    Ok(codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_survive_a_kill_and_a_postgresql_restart() -> anyhow::Result<()> {
    let Some(ironic_url) = ironic_discoverd_e2e::services::privileged_ironic_url("ha_cluster")? else {
        return Ok(());
    };
    let Some(pg) = OwnServer::start()? else {
        return Ok(());
    };
    let db = TestDatabase::create_on(&pg.url).await?;
    let ironic = IronicRest::new(&ironic_url)?;
    let p = std::process::id();
    let total = NODES + LATE + OUTAGE_STARTS + 1;
    let nodes: Vec<(String, String)> = (0..total)
        .map(|i| {
            (
                format!("52:7e:{:02x}:{:02x}:00:{i:02x}", (p >> 8) & 0xff, p & 0xff),
                format!("198.18.{}.{}", p % 250, i + 1),
            )
        })
        .collect();
    let late = NODES..NODES + LATE;
    let outage_starts = NODES + LATE..NODES + LATE + OUTAGE_STARTS;
    let timed = total - 1; // never reports
    let finishing = NODES + LATE + OUTAGE_STARTS;

    let t0 = std::time::Instant::now();
    let uuids = enroll(&ironic, &nodes).await?;
    let mut phases = vec![("enrolled", t0.elapsed())];
    let mut cluster = Cluster::start(3, &ironic_url, &db.url)?;
    for d in 0..3 {
        cluster.wait_ready(d).await?;
    }
    assert_eq!(cluster.introspect(0, &uuids[timed]).await?, 202);
    let starts = (0..NODES)
        .map(|i| {
            (
                cluster.url(i % 3, &format!("/v1/introspection/{}", uuids[i])),
                None,
            )
        })
        .collect();
    for (i, code) in post_all(&cluster.http, starts).await?.into_iter().enumerate() {
        assert_eq!(code, 202, "start of {}", uuids[i]);
    }
    let half = NODES / 2;
    for uuid in &uuids[..half] {
        cluster.wait_status(0, uuid, |s| s["state"] == "waiting").await?;
    }

    // Reports for the first half to random daemons, the late starts on
    // daemon 2, and daemon 2 killed as soon as they are answered.
    let mut seed = u64::from(p);
    let mut reported = [0usize; 3];
    let reports = (0..half)
        .map(|i| {
            let d = next(&mut seed) % 3;
            reported[d] += 1;
            let (mac, bmc) = &nodes[i];
            (cluster.url(d, "/v1/continue"), Some(payload(mac, bmc)))
        })
        .collect();
    for (i, code) in post_all(&cluster.http, reports).await?.into_iter().enumerate() {
        assert_eq!(code, 200, "report of {}", uuids[i]);
    }
    // The kill right after their 202s. A start whose reboot was sent
    // is `waiting`, which no daemon holds: the first ones may get there.
    for i in late.clone() {
        assert_eq!(cluster.introspect(2, &uuids[i]).await?, 202);
    }
    phases.push(("half reported", t0.elapsed()));
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

    // PostgreSQL restarted while statuses are read, reports posted and
    // introspections started on the two live daemons.
    let live = [0, 1];
    let outage_reports = half..half + OUTAGE_REPORTS;
    for uuid in &uuids[outage_reports.clone()] {
        cluster.wait_status(0, uuid, |s| s["state"] == "waiting").await?;
    }
    let load = outage::Load {
        live: &live,
        read: &uuids[..half + OUTAGE_REPORTS],
        reports: outage_reports
            .clone()
            .map(|i| payload(&nodes[i].0, &nodes[i].1))
            .collect(),
        starts: &uuids[outage_starts.clone()],
    };
    let answers = outage::restart_under_load(&cluster, &pg, load)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs().join("\n----\n")))?;

    phases.push(("PostgreSQL restarted", t0.elapsed()));

    // The rest report (the late ones once taken over and rebooted).
    for i in outage_reports.end..finishing {
        cluster
            .wait_status(0, &uuids[i], |s| s["state"] == "waiting")
            .await?;
        let (mac, bmc) = &nodes[i];
        cluster
            .report_until_accepted(&live, i, &payload(mac, bmc))
            .await?;
    }
    for (i, uuid) in uuids[..finishing].iter().enumerate() {
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
    phases.push(("all finished", t0.elapsed()));
    // The timeout is far off (no reported node may reach it on a slow
    // machine): the never-reported node is made old enough for it.
    db.execute(&format!(
        "UPDATE nodes SET started_at = started_at - {} WHERE uuid = '{}'",
        2 * TIMEOUT_SECS * 1_000_000,
        uuids[timed]
    ))
    .await?;
    let st = cluster
        .wait_status(1, &uuids[timed], |s| s["finished"] == true)
        .await?;
    phases.push(("timed out", t0.elapsed()));
    assert_eq!(st["error"], "Introspection timeout", "{st}");

    let logs = cluster.logs();
    for uuid in &uuids[..finishing] {
        assert_eq!(
            lines(&logs, uuid, "introspection finished"),
            1,
            "{uuid} finished ≠ once\n{}",
            history(&logs, uuid)
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
            "{uuid}, held by the killed daemon, was not finished by another\n{}",
            history(&logs, uuid)
        );
    }
    // At least one late start was taken over (the others may have
    // reached `waiting` before the kill; they finished above like any).
    assert!(
        late.clone().any(|i| held.contains(&uuids[i])),
        "no late start was in flight at the kill: no start was taken over"
    );
    eprintln!(
        "ha_cluster: {finishing} nodes, {} held by the killed daemon, first-half reports per daemon {reported:?}; \
         during the restart {answers}at {phases:.1?}; logs in {}",
        held.len(),
        cluster.dir.path().display()
    );
    drop(cluster.daemons.drain(..));
    Ok(())
}
