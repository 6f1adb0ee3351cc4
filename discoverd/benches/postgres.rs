//! The node store side by side (BENCHMARKS.md, "PostgreSQL"): one daemon
//! on SQLite, one on PostgreSQL, three on one PostgreSQL, each a release
//! daemon process against the in-process fake Ironic.
//!   - starts: `POST /v1/introspection` for 300 nodes, 16 at a time,
//!     round-robin over the daemons: starts/s until the last 202;
//!   - status: `GET /v1/introspection/<uuid>` with wrk for 5 s, 24
//!     connections in all (split over the daemons): req/s summed.
//!
//! Needs a PostgreSQL server: DISCOVERD_TEST_POSTGRES_URL (a superuser
//! URL; scripts/postgres.sh starts one). Run:
//!   cargo bench -p ironic-discoverd --bench postgres

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::FakeIronic;
use test_support::postgres::TestDatabase;

const NODES: usize = 300;
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
) -> Daemon {
    let port = free_port();
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {database}\nauth_strategy = noauth\nmanage_firewall = false\n\
             ironic_url = {ironic}\nlisten_address = 127.0.0.1\nlisten_port = {port}\n"
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
    let bases: Arc<Vec<String>> = Arc::new(daemons.iter().map(|d| d.base.clone()).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let uuids = Arc::new(uuids.to_vec());
    let t = Instant::now();
    let workers: Vec<_> = (0..START_CONCURRENCY)
        .map(|_| {
            let (http, bases, next, uuids) = (http.clone(), bases.clone(), next.clone(), uuids.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(u) = uuids.get(i) else { return failed };
                    let base = &bases[i % bases.len()];
                    match http.post(format!("{base}/v1/introspection/{u}")).send().await {
                        Ok(r) if r.status().as_u16() == 202 => {}
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

/// wrk against one URL for 5 s; req/s.
fn wrk(url: String, conns: u32) -> f64 {
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &conns.to_string(), "-d", "5s", &url])
        .output()
        .unwrap_or_else(|e| panic!("wrk: {e} (scripts/setup-system.sh installs it)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for l in text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        eprintln!("wrk {url}: {}", l.trim());
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// All daemons at once, the connections split between them; req/s summed.
fn status_rps(daemons: &[Daemon], uuid: &str) -> f64 {
    let per = (WRK_CONNECTIONS / daemons.len() as u32).max(2);
    let runs: Vec<_> = daemons
        .iter()
        .map(|d| {
            let url = format!("{}/v1/introspection/{uuid}", d.base);
            std::thread::spawn(move || wrk(url, per))
        })
        .collect();
    runs.into_iter().map(|r| r.join().unwrap_or(0.0)).sum()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(run());
}

async fn run() {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeIronic::start().await.unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "| store | daemons | starts/s ({NODES} nodes, {START_CONCURRENCY} at a time) | failed | status GET req/s (sum, {WRK_CONNECTIONS} connections) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (run, (store, n)) in [("SQLite", 1usize), ("PostgreSQL", 1), ("PostgreSQL", 3)]
        .into_iter()
        .enumerate()
    {
        let uuids: Vec<String> = (0..NODES)
            .map(|i| format!("00000000-0000-4000-b{run:03x}-{i:012x}"))
            .collect();
        for (i, u) in uuids.iter().enumerate() {
            fake.add_node(u, &format!("10.{run}.{}.{}", (i >> 8) & 0xff, i & 0xff));
            fake.add_port(
                u,
                &format!("52:54:02:{run:02x}:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff),
            );
        }
        let db = match store {
            "SQLite" => None,
            _ => Some(
                TestDatabase::create()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("no PostgreSQL: set DISCOVERD_TEST_POSTGRES_URL")),
            ),
        };
        let database = db.as_ref().map_or_else(
            || dir.path().join(format!("run{run}.sqlite")).display().to_string(),
            |d| d.url.clone(),
        );
        let mut daemons = Vec::new();
        for k in 0..n {
            daemons.push(
                start_daemon(
                    &http,
                    dir.path(),
                    &format!("run{run}-{k}"),
                    &database,
                    &fake.url(),
                )
                .await,
            );
        }
        let (sps, failed) = starts(&http, &daemons, &uuids).await;
        // Let the start flows' background calls settle before reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let target = uuids[0].clone();
        let rps = tokio::task::spawn_blocking({
            let daemons = std::mem::take(&mut daemons);
            move || {
                let r = status_rps(&daemons, &target);
                (r, daemons)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        drop(rps.1);
        println!("| {store} | {n} | {sps:.0} | {failed} | {:.0} |", rps.0);
        drop(db);
    }
}
