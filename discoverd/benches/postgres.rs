//! The node store side by side (BENCHMARKS.md, "PostgreSQL"): one daemon
//! on SQLite, one on PostgreSQL, three on one PostgreSQL, each a release
//! daemon process against the in-process fake Ironic.
//!   - starts: `POST /v1/introspection` for 300 nodes, 16 at a time,
//!     round-robin over the daemons: starts/s until the last 202;
//!   - status: `GET /v1/introspection/<uuid>` with wrk for 5 s, 24
//!     connections in all (split over the daemons): req/s summed;
//!   - reports: `POST /v1/continue` for the 300 nodes, 16 at a time,
//!     round-robin: reports/s until the last answer (each a lookup, the
//!     processing and the end, against the fake Ironic);
//!   - unknown reports: `POST /v1/continue` with wrk for 5 s, a report
//!     whose MAC and BMC match no node (the lookup, answered 404), the
//!     24 connections split over the daemons: req/s summed.
//!
//! Then, with the real Ironic (DISCOVERD_BENCH_IRONIC_URL, as
//! scripts/bench.sh sets it, else DISCOVERD_TEST_IRONIC_URL; skipped
//! without), 200 introspections end to end (start round-robin, report to
//! a random daemon, wait for every node to end): wall time and failed
//! nodes, for the same three set-ups and for three daemons of which one
//! is SIGKILLed after half the reports (its work is taken over once its
//! 3 s lease expires). `DISCOVERD_BENCH_NODES` scales both node counts
//! down and `DISCOVERD_BENCH_SECONDS` sets wrk's duration, for a smoke run.
//!
//! Needs a PostgreSQL server: DISCOVERD_TEST_POSTGRES_URL (a superuser
//! URL; scripts/postgres.sh starts one). Run:
//!   cargo bench -p ironic-discoverd --bench postgres

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use test_support::FakeIronic;
use test_support::postgres::TestDatabase;

const NODES: usize = 300;
const REAL_NODES: usize = 200;

/// `n`, or the smoke-run override.
fn scaled(n: usize) -> usize {
    std::env::var("DISCOVERD_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(n, |m: usize| m.min(n))
}
const START_CONCURRENCY: usize = 16;
const WRK_CONNECTIONS: u32 = 24;

struct Daemon {
    child: Child,
    base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

async fn start_daemon(
    http: &reqwest::Client,
    dir: &std::path::Path,
    name: &str,
    database: &str,
    ironic: &str,
    extra: &str,
) -> Daemon {
    let port = free_port();
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {database}\nauth_strategy = noauth\nmanage_firewall = false\n\
             ironic_url = {ironic}\nlisten_address = 127.0.0.1\nlisten_port = {port}\n{extra}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    // As root, the daemon runs as its own user (it refuses uid 0).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd"));
    cmd.arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir]).unwrap_or_else(|e| panic!("{e:#}"));
    let child = cmd.spawn().unwrap_or_else(|e| panic!("ironic-discoverd: {e}"));
    let d = Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..400 {
        if http.get(format!("{}/", d.base)).send().await.is_ok() {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("ironic-discoverd ({name}) did not answer within 10 s");
}

/// Starts every node, round-robin over `daemons`; returns starts/s and failures.
async fn starts(http: &reqwest::Client, daemons: &[Daemon], uuids: &[String]) -> (f64, usize) {
    let bases: Vec<String> = daemons.iter().map(|d| d.base.clone()).collect();
    let calls = uuids
        .iter()
        .map(|u| (format!("/v1/introspection/{u}"), None))
        .collect();
    spread(http, &bases, calls, 202).await
}

/// Sends every call (path, JSON body: POST), round-robin over `bases`,
/// [`START_CONCURRENCY`] at a time; returns calls/s and how many were not
/// answered `want`.
async fn spread(
    http: &reqwest::Client,
    bases: &[String],
    calls: Vec<(String, Option<serde_json::Value>)>,
    want: u16,
) -> (f64, usize) {
    let bases: Arc<Vec<String>> = Arc::new(bases.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let uuids = Arc::new(calls);
    let t = Instant::now();
    let workers: Vec<_> = (0..START_CONCURRENCY)
        .map(|_| {
            let (http, bases, next, uuids) = (http.clone(), bases.clone(), next.clone(), uuids.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((path, body)) = uuids.get(i) else {
                        return failed;
                    };
                    let base = &bases[i % bases.len()];
                    let mut req = http.post(format!("{base}{path}"));
                    if let Some(b) = body {
                        req = req.json(b);
                    }
                    match req.send().await {
                        Ok(r) if r.status().as_u16() == want => {}
                        _ => failed += 1,
                    }
                }
            })
        })
        .collect();
    let mut failed = 0;
    for w in workers {
        failed += w.await.unwrap_or(0);
    }
    (uuids.len() as f64 / t.elapsed().as_secs_f64(), failed)
}

/// wrk's duration: 5 s, or the smoke-run override.
fn wrk_seconds() -> u64 {
    std::env::var("DISCOVERD_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// wrk against one URL; req/s. With `script`, wrk runs that Lua (a POST).
fn wrk(url: String, conns: u32, script: Option<&std::path::Path>) -> f64 {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t", "2", "-c", &conns.to_string()])
        .arg("-d")
        .arg(format!("{}s", wrk_seconds()));
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("wrk: {e} (scripts/setup-system.sh installs it)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The scripted run posts unknown reports: every answer is a 404.
    let non_2xx = |l: &str| script.is_none() && l.contains("Non-2xx");
    for l in text.lines().filter(|l| non_2xx(l) || l.contains("Socket errors")) {
        eprintln!("wrk {url}: {}", l.trim());
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// All daemons at once on `path`, the connections split between them;
/// req/s summed.
fn all_rps(daemons: &[Daemon], path: &str, script: Option<&std::path::Path>) -> f64 {
    let per = (WRK_CONNECTIONS / daemons.len() as u32).max(2);
    let runs: Vec<_> = daemons
        .iter()
        .map(|d| {
            let url = format!("{}{path}", d.base);
            let script = script.map(std::path::Path::to_owned);
            std::thread::spawn(move || wrk(url, per, script.as_deref()))
        })
        .collect();
    runs.into_iter().map(|r| r.join().unwrap_or(0.0)).sum()
}

/// A wrk script posting a report that matches no node.
fn unknown_report_script(dir: &std::path::Path) -> std::path::PathBuf {
    let body = report("52:54:ff:ff:ff:ff", "203.0.113.254").to_string();
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
    );
    let path = dir.join("unknown-report.lua");
    std::fs::write(&path, lua).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(run());
}

fn report(mac: &str, bmc: &str) -> serde_json::Value {
    serde_json::json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.60"}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": 2, "local_gb": 40
    })
}

async fn run() {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeIronic::start().await.unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = scaled(NODES);
    let unknown = unknown_report_script(dir.path());
    println!(
        "| store | daemons | starts/s ({nodes} nodes, {START_CONCURRENCY} at a time) | failed | status GET req/s (sum, {WRK_CONNECTIONS} connections) | /v1/continue reports/s | failed | /v1/continue unknown node req/s (sum) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (run, (store, n)) in [("SQLite", 1usize), ("PostgreSQL", 1), ("PostgreSQL", 3)]
        .into_iter()
        .enumerate()
    {
        let mut reports = Vec::new();
        let uuids: Vec<String> = (0..nodes)
            .map(|i| format!("00000000-0000-4000-b{run:03x}-{i:012x}"))
            .collect();
        for (i, u) in uuids.iter().enumerate() {
            let bmc = format!("10.{run}.{}.{}", (i >> 8) & 0xff, i & 0xff);
            let mac = format!("52:54:02:{run:02x}:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff);
            fake.add_node(u, &bmc);
            fake.add_port(u, &mac);
            reports.push(("/v1/continue".to_owned(), Some(report(&mac, &bmc))));
        }
        let db = database(store).await;
        let database = db.as_ref().map_or_else(
            || dir.path().join(format!("run{run}.sqlite")).display().to_string(),
            |d| d.url.clone(),
        );
        let mut daemons = Vec::new();
        for k in 0..n {
            let name = format!("run{run}-{k}");
            daemons.push(start_daemon(&http, dir.path(), &name, &database, &fake.url(), "").await);
        }
        let (sps, failed) = starts(&http, &daemons, &uuids).await;
        // Let the start flows' background calls settle before reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let target = format!("/v1/introspection/{}", uuids[0]);
        let script = unknown.clone();
        let (rps, ups, daemons) = tokio::task::spawn_blocking(move || {
            let r = all_rps(&daemons, &target, None);
            let u = all_rps(&daemons, "/v1/continue", Some(&script));
            (r, u, daemons)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let bases: Vec<String> = daemons.iter().map(|d| d.base.clone()).collect();
        let (cps, cfailed) = spread(&http, &bases, reports, 200).await;
        drop(daemons);
        println!("| {store} | {n} | {sps:.0} | {failed} | {rps:.0} | {cps:.0} | {cfailed} | {ups:.0} |");
        drop(db);
    }
    let real = ["DISCOVERD_BENCH_IRONIC_URL", "DISCOVERD_TEST_IRONIC_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    match real {
        Some(url) => real_ironic(&http, dir.path(), &url).await,
        None => println!("\n(no DISCOVERD_BENCH_IRONIC_URL: the real-Ironic runs are skipped)"),
    }
}

async fn database(store: &str) -> Option<TestDatabase> {
    match store {
        "SQLite" => None,
        _ => Some(
            TestDatabase::create()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no PostgreSQL: set DISCOVERD_TEST_POSTGRES_URL")),
        ),
    }
}

/// 200 introspections end to end on the real Ironic per set-up.
async fn real_ironic(http: &reqwest::Client, dir: &std::path::Path, url: &str) {
    let ironic = IronicRest::new(url).unwrap_or_else(|e| panic!("{e}"));
    let nodes = scaled(REAL_NODES);
    println!("\n| store | daemons | {nodes} introspections, real Ironic: wall s | failed |");
    println!("| --- | ---: | ---: | ---: |");
    let p = std::process::id();
    for (run, (store, n, kill)) in [
        ("SQLite", 1usize, false),
        ("PostgreSQL", 1, false),
        ("PostgreSQL", 3, false),
        ("PostgreSQL", 3, true),
    ]
    .into_iter()
    .enumerate()
    {
        let addrs: Vec<(String, String)> = (0..nodes)
            .map(|i| {
                (
                    format!(
                        "52:b{run:x}:{:02x}:{:02x}:{:02x}:{:02x}",
                        (p >> 8) & 0xff,
                        p & 0xff,
                        i >> 8,
                        i & 0xff
                    ),
                    format!("198.19.{}.{}", (p + run as u32) % 250, i % 250 + 1),
                )
            })
            .collect();
        let mut uuids = vec![String::new(); nodes];
        let mut enrolling = tokio::task::JoinSet::new();
        let mut done = |r: Option<Result<(usize, anyhow::Result<String>), _>>| {
            if let Some(Ok((i, Ok(u)))) = r {
                uuids[i] = u;
            }
        };
        for (i, (mac, bmc)) in addrs.iter().enumerate() {
            let (ironic, mac, bmc) = (ironic.clone(), mac.clone(), bmc.clone());
            enrolling.spawn(async move { (i, ironic.enroll(&bmc, &mac).await) });
            while enrolling.len() >= START_CONCURRENCY {
                done(enrolling.join_next().await);
            }
        }
        while !enrolling.is_empty() {
            done(enrolling.join_next().await);
        }
        let db = database(store).await;
        let database = db.as_ref().map_or_else(
            || dir.join(format!("real{run}.sqlite")).display().to_string(),
            |d| d.url.clone(),
        );
        let mut daemons = Vec::new();
        for k in 0..n {
            let name = format!("real{run}-{k}");
            let extra = "lease_time = 3\ntimeout = 900\nironic_retry_period = 0.2";
            daemons.push(start_daemon(http, dir, &name, &database, url, extra).await);
        }
        let t = Instant::now();
        let (_, mut failed) = starts(http, &daemons, &uuids).await;
        let bases: Vec<String> = daemons.iter().map(|d| d.base.clone()).collect();
        wait_all(http, &bases, &uuids, |s| s["state"] != "starting").await;
        let half = nodes / 2;
        let body = |i: usize| ("/v1/continue".to_owned(), Some(report(&addrs[i].0, &addrs[i].1)));
        failed += spread(http, &bases, (0..half).map(body).collect(), 200).await.1;
        let live = if kill {
            drop(daemons.pop());
            &bases[..bases.len() - 1]
        } else {
            &bases[..]
        };
        // Nodes the killed daemon was starting reach `waiting` once taken over.
        wait_all(http, live, &uuids[half..], |s| s["state"] != "starting").await;
        failed += spread(http, live, (half..nodes).map(body).collect(), 200).await.1;
        let ended = wait_all(http, live, &uuids, |s| s["finished"] == true).await;
        let errors = ended.iter().filter(|s| !s["error"].is_null()).count();
        let wall = t.elapsed().as_secs_f64();
        let what = if kill {
            format!("{n}, one killed")
        } else {
            n.to_string()
        };
        println!("| {store} | {what} | {wall:.1} | {} |", failed + errors);
        drop(daemons);
        drop(db);
    }
}

/// Waits (up to 15 min) until every node's status satisfies `f`; the
/// last statuses.
async fn wait_all(
    http: &reqwest::Client,
    bases: &[String],
    uuids: &[String],
    f: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut out = Vec::new();
    for (i, u) in uuids.iter().enumerate() {
        loop {
            let base = &bases[i % bases.len()];
            let st: serde_json::Value = match http
                .get(format!("{base}/v1/introspection/{u}"))
                .header("X-OpenStack-Ironic-Inspector-API-Version", "1.12")
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if f(&st) || Instant::now() > deadline {
                out.push(st);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}
