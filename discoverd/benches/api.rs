//! API and scale benchmark: `cargo bench -p ironic-discoverd --bench api`
//! (`scripts/bench.sh` runs it with a real Ironic and ironic-inspector).
//!
//! Starts the real (release) daemon against the in-process fake Ironic,
//! without a firewall, on 127.0.0.1, then:
//! - `wrk` on `GET /v1/introspection/<uuid>` (node cached) and on
//!   `POST /v1/continue` for an unknown node, at 1 and 32 connections;
//! - N nodes introspected concurrently end to end (start, ramdisk report,
//!   finish), reporting wall time, failures, daemon CPU time and peak RSS;
//! - `POST /v1/continue` with a full accepted payload, one per node that is
//!   actually waiting (a Rust loop of concurrent reqwest calls, since every
//!   request needs a different body).
//!
//! With `DISCOVERD_BENCH_IRONIC_URL` and `DISCOVERD_BENCH_INSPECTOR_URL`
//! (a real standalone Ironic and ironic-inspector 12.5, as `scripts/bench.sh`
//! starts them) it also runs the same `wrk` rows against ironic-inspector,
//! and introspects 200 fake-hardware nodes on the real Ironic with a fresh
//! daemon and then 200 other nodes with ironic-inspector.
//! `DISCOVERD_BENCH_IRONIC_PID` / `DISCOVERD_BENCH_INSPECTOR_PID`, when set,
//! add the peers' CPU time and RSS. Without the URLs those parts are
//! skipped and say so.
//!
//! Prints Markdown. Needs `wrk` (Debian package `wrk`).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::proc_status_field;
use serde_json::{Value, json};
use test_support::FakeIronic;

/// Nodes of the scale run against the fake Ironic (one more is the status node).
const NODES: usize = 1000;
/// Nodes per service in the scale run against the real Ironic.
const REAL_NODES: usize = 200;
/// Full-payload `POST /v1/continue` rows: nodes used at 1 and at 32 connections.
const CONTINUE_NODES: [(usize, usize); 2] = [(1, 400), (32, 2000)];
/// Bound on each scale run (start of the first node to the last finish).
const SCALE_DEADLINE: Duration = Duration::from_secs(600);

/// A `/proc/PID/status` field, empty when the process or field is gone.
fn proc_field(pid: u32, field: &str) -> String {
    proc_status_field(pid, field).unwrap_or_default()
}

/// A `/proc/PID/status` size ("123456 kB") in MiB, as text.
fn mib(pid: u32, field: &str) -> String {
    let v = proc_field(pid, field);
    match v.split_whitespace().next().and_then(|k| k.parse::<f64>().ok()) {
        Some(kb) => format!("{:.1} MiB", kb / 1024.0),
        None => "?".to_owned(),
    }
}

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// `pid` and all its descendants (Ironic's API runs in a child process).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if let Some(pp) = ppid {
            parent_of.push((p, pp));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let cur = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// CPU seconds of `pid` and its descendants.
fn tree_cpu(pid: u32) -> f64 {
    process_tree(pid).into_iter().map(cpu_seconds).sum()
}

/// Sum of a `/proc/PID/status` size over `pid` and its descendants, in MiB.
fn tree_mib(pid: u32, field: &str) -> String {
    let kb: f64 = process_tree(pid)
        .into_iter()
        .filter_map(|p| {
            proc_field(p, field)
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    format!("{:.1} MiB", kb / 1024.0)
}

/// A reqwest error with its causes ("error sending request" alone says little).
fn chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// One measured row: req/s, p50 and p99 in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Row {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// A wrk latency ("412.00us", "1.30ms", "1.02s", "1.50m") in milliseconds.
fn wrk_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

/// Runs wrk for 5 s and returns its req/s, p50 and p99.
fn wrk(url: &str, conns: u32, script: Option<&std::path::Path>) -> Row {
    let mut c = Command::new("wrk");
    c.args([
        "-t",
        if conns > 1 { "2" } else { "1" },
        "-c",
        &conns.to_string(),
        "-d",
        "5s",
        "--latency",
    ]);
    if let Some(s) = script {
        c.arg("-s").arg(s);
    }
    let out = c
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("wrk: {e} (apt-get install wrk, or scripts/setup-system.sh)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let pct = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(wrk_ms)
            .unwrap_or(f64::NAN)
    };
    for l in text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        eprintln!("wrk -c {conns} {url}: {}", l.trim());
    }
    Row {
        rps,
        p50: pct("50%"),
        p99: pct("99%"),
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "?".to_owned()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The MAC of node `i` under a 3-byte prefix.
fn mac(prefix: &str, i: usize) -> String {
    format!(
        "{prefix}:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// An ironic-python-agent style payload (what both services accept).
fn ipa_payload(mac: &str, bmc: &str) -> Value {
    json!({
        "inventory": {
            "interfaces": [{"name": "eno1", "mac_address": mac, "ipv4_address": "192.0.2.61", "has_carrier": true}],
            "cpu": {"count": 4, "architecture": "x86_64", "model_name": "bench", "frequency": "2000"},
            "memory": {"total": 8_000_000_000u64, "physical_mb": 8192},
            "disks": [{"name": "/dev/vda", "size": 21_474_836_480u64, "rotational": false}],
            "bmc_address": bmc
        },
        "root_disk": {"name": "/dev/vda", "size": 21_474_836_480u64},
        "error": null
    })
}

/// Whether Ironic has the node powered on, i.e. the service's reboot call
/// went through: a real ramdisk can only report after that. (Both services
/// show `waiting` before their power call returns, so a report posted on
/// `waiting` alone can race the reboot and leave the node powered on.)
type PoweredOn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

fn fake_powered_on(fake: &FakeIronic) -> PoweredOn {
    let fake = fake.clone();
    Arc::new(move |u: &str| fake.node(u).is_some_and(|n| n["power_state"] == "power on"))
}

/// Lists the real Ironic's power states every `period` (one request for
/// all nodes, so the benchmark adds little load); stop it with `abort`.
fn real_powered_on(ironic: &IronicRest, period: Duration) -> (PoweredOn, tokio::task::JoinHandle<()>) {
    let on = Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
    let (ironic, on2) = (ironic.clone(), on.clone());
    let task = tokio::spawn(async move {
        loop {
            if let Ok(set) = ironic.powered_on().await {
                *on2.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = set;
            }
            tokio::time::sleep(period).await;
        }
    });
    let f: PoweredOn = Arc::new(move |u: &str| {
        on.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(u)
    });
    (f, task)
}

/// Polls until the node is powered on (see [`PoweredOn`]).
async fn wait_powered_on(
    powered_on: &PoweredOn,
    uuid: &str,
    period: Duration,
    deadline: Instant,
) -> Result<(), String> {
    while !powered_on(uuid) {
        if Instant::now() > deadline {
            return Err("not powered on by the service before the deadline".to_owned());
        }
        tokio::time::sleep(period).await;
    }
    Ok(())
}

/// A discoverd (or inspector) process the benchmark started.
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

/// Starts the release daemon with `ironic_url` and waits for `GET /`.
async fn start_daemon(http: &reqwest::Client, dir: &std::path::Path, name: &str, ironic_url: &str) -> Daemon {
    let port = free_port();
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {ironic_url}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\nprocessing_hooks = ramdisk_error,scheduler,validate_interfaces\n",
            dir.join(format!("{name}.sqlite")).display(),
        ),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd"));
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir]).unwrap_or_else(|e| panic!("{e:#}"));
    let child = cmd
        .arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("ironic-discoverd: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let d = Daemon { child, base };
    for _ in 0..400 {
        if http.get(format!("{}/", d.base)).send().await.is_ok() {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("ironic-discoverd ({name}) did not answer GET / within 10 s");
}

/// Status of one introspection, or `Value::Null` when it cannot be read.
async fn status(http: &reqwest::Client, base: &str, uuid: &str) -> Value {
    match http.get(format!("{base}/v1/introspection/{uuid}")).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Polls every `period` until the introspection of `uuid` is in `waiting`.
async fn wait_waiting(
    http: &reqwest::Client,
    base: &str,
    uuid: &str,
    period: Duration,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        let st = status(http, base, uuid).await;
        if st["state"] == "waiting" {
            return Ok(());
        }
        if st["finished"] == true {
            return Err(format!("finished before the report: {}", st["error"]));
        }
        if Instant::now() > deadline {
            return Err(format!("not waiting before the deadline (last status {st})"));
        }
        tokio::time::sleep(period).await;
    }
}

/// Enrolls one node per (bmc, mac) on the real Ironic, 8 at a time;
/// panics if any fails.
async fn enroll_all(ironic: &IronicRest, nodes: &[(String, String)]) -> Vec<String> {
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let tasks: Vec<_> = nodes
        .iter()
        .map(|(bmc, mac)| {
            let ironic = ironic.clone();
            let (bmc, mac) = (bmc.clone(), mac.clone());
            let sem = sem.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
                ironic.enroll(&bmc, &mac).await.map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut uuids = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(u)) => uuids.push(u),
            Ok(Err(e)) => panic!("enrolling on the real Ironic: {e}"),
            Err(e) => panic!("enrolling on the real Ironic: {e}"),
        }
    }
    uuids
}

/// What one scale run measured.
struct Scale {
    wall: Duration,
    failed: usize,
    errors: BTreeMap<String, usize>,
    cpu: f64,
    peak_rss: String,
    peer_cpu: Option<f64>,
}

/// Starts every node at once, posts one ramdisk report per node once it is
/// waiting, and waits until all are finished (bounded by `SCALE_DEADLINE`).
/// `pid` is the service process, `ironic_pid` the Ironic's when known.
async fn scale_run(
    http: &reqwest::Client,
    base: &str,
    nodes: &[(String, Value)],
    poll: Duration,
    powered_on: &PoweredOn,
    pid: u32,
    ironic_pid: Option<u32>,
) -> Scale {
    let cpu_before = cpu_seconds(pid);
    let ironic_before = ironic_pid.map(tree_cpu);
    let start = Instant::now();
    let deadline = start + SCALE_DEADLINE;
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, (uuid, body))| {
            let http = http.clone();
            let base = base.to_owned();
            let uuid = uuid.clone();
            let body = body.clone();
            let powered_on = powered_on.clone();
            tokio::spawn(async move {
                let r = http.post(format!("{base}/v1/introspection/{uuid}")).send().await;
                match r {
                    Ok(r) if r.status().as_u16() == 202 => {}
                    Ok(r) => {
                        let s = r.status().as_u16();
                        return Err(format!("start: {s} {}", r.text().await.unwrap_or_default()));
                    }
                    Err(e) => return Err(format!("start: {}", chain(&e))),
                }
                // Spread the polls so they do not arrive in lockstep.
                let jitter = poll.mul_f64((i % 10) as f64 / 10.0);
                tokio::time::sleep(jitter).await;
                wait_powered_on(&powered_on, &uuid, poll, deadline).await?;
                wait_waiting(&http, &base, &uuid, poll, deadline).await?;
                // Like IPA, the "ramdisk" tries a report again when the
                // connection fails (up to 5 tries): at max_connections the
                // daemon closes idle keep-alive connections, and a pooled one
                // can be closed just as a request goes out on it.
                let mut tries = 0;
                loop {
                    tries += 1;
                    match http.post(format!("{base}/v1/continue")).json(&body).send().await {
                        Ok(r) if r.status().as_u16() == 200 => break,
                        Ok(r) => {
                            let s = r.status().as_u16();
                            return Err(format!("continue: {s} {}", r.text().await.unwrap_or_default()));
                        }
                        Err(e) if tries < 5 && (e.is_connect() || e.is_request()) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(format!("continue: {}", chain(&e))),
                    }
                }
                loop {
                    let st = status(&http, &base, &uuid).await;
                    if st["finished"] == true {
                        return match st["error"].as_str() {
                            None => Ok(()),
                            Some(e) => Err(format!("error: {e}")),
                        };
                    }
                    if Instant::now() > deadline {
                        return Err(format!("not finished before the deadline (last {st})"));
                    }
                    tokio::time::sleep(poll * 2).await;
                }
            })
        })
        .collect();
    let mut errors = BTreeMap::new();
    let mut failed = 0;
    for t in tasks {
        let r = t.await.unwrap_or_else(|e| Err(format!("task: {e}")));
        if let Err(e) = r {
            failed += 1;
            // Group by message without node-specific UUIDs and MACs.
            let key: String = e.chars().take(300).collect();
            *errors.entry(key).or_insert(0) += 1;
        }
    }
    Scale {
        wall: start.elapsed(),
        failed,
        errors,
        cpu: cpu_seconds(pid) - cpu_before,
        peak_rss: mib(pid, "VmHWM"),
        peer_cpu: ironic_pid.zip(ironic_before).map(|(p, b)| tree_cpu(p) - b),
    }
}

/// Posts one body per node from `conns` concurrent workers; returns
/// req/s, p50, p99 and the number of non-200 answers.
async fn continue_loop(
    http: &reqwest::Client,
    base: &str,
    bodies: Vec<String>,
    conns: usize,
) -> (Row, usize) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (http, bodies, next) = (http.clone(), bodies.clone(), next.clone());
            let url = format!("{base}/v1/continue");
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut bad = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let ok = http
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 200);
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    if !ok {
                        bad += 1;
                    }
                }
                (lat, bad)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut bad = 0;
    for w in workers {
        let (l, b) = w.await.unwrap_or_else(|e| panic!("continue worker: {e}"));
        lat.extend(l);
        bad += b;
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let at = |q: usize| {
        lat.get((lat.len() * q / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    (
        Row {
            rps: lat.len() as f64 / wall,
            p50: at(50),
            p99: at(99),
        },
        bad,
    )
}

/// Starts introspection of every UUID and waits until all are waiting.
/// With `powered_on`, also until Ironic has them powered on.
async fn start_all_waiting(
    http: &reqwest::Client,
    base: &str,
    uuids: &[String],
    powered_on: Option<&PoweredOn>,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    // At most this many clients at once, well under the daemon's
    // max_connections (1024): past the cap it closes the oldest
    // connections still waiting for a request, as an operator wants under
    // a flood, and a burst of thousands of fresh connections would meet it.
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    let tasks: Vec<_> = uuids
        .iter()
        .map(|u| {
            let (http, base, u) = (http.clone(), base.to_owned(), u.clone());
            let powered_on = powered_on.cloned();
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
                let s = http
                    .post(format!("{base}/v1/introspection/{u}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                if s != 202 {
                    return Err(format!("start {u}: {s}"));
                }
                wait_waiting(&http, &base, &u, Duration::from_millis(50), deadline).await?;
                match powered_on {
                    Some(p) => wait_powered_on(&p, &u, Duration::from_millis(50), deadline).await,
                    None => Ok(()),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await
            .unwrap_or_else(|e| Err(e.to_string()))
            .unwrap_or_else(|e| panic!("starting the continue nodes: {e}"));
    }
}

fn env_url(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.trim_end_matches('/').to_owned())
}

fn env_pid(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
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
    let real_ironic = env_url("DISCOVERD_BENCH_IRONIC_URL");
    let inspector = env_url("DISCOVERD_BENCH_INSPECTOR_URL");
    let ironic_pid = env_pid("DISCOVERD_BENCH_IRONIC_PID");
    let inspector_pid = env_pid("DISCOVERD_BENCH_INSPECTOR_PID");
    if inspector.is_some() && real_ironic.is_none() {
        panic!(
            "DISCOVERD_BENCH_INSPECTOR_URL needs DISCOVERD_BENCH_IRONIC_URL (the Ironic that inspector uses)"
        );
    }
    // Idle RSS of the inspector before anything touched it.
    let inspector_idle = inspector_pid.map(|p| tree_mib(p, "VmRSS"));
    let ironic_idle = ironic_pid.map(|p| tree_mib(p, "VmRSS"));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    let fake = FakeIronic::start().await.unwrap_or_else(|e| panic!("{e}"));
    let fake_bmc = |i: usize| format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    let total_fake = NODES + CONTINUE_NODES.iter().map(|(_, n)| n).sum::<usize>();
    let uuids: Vec<String> = (0..total_fake)
        .map(|i| format!("00000000-0000-4000-a000-{i:012x}"))
        .collect();
    for (i, u) in uuids.iter().enumerate() {
        fake.add_node(u, &fake_bmc(i));
        fake.add_port(u, &mac("52:54:01", i));
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let daemon = start_daemon(&http, dir.path(), "fake", &fake.url()).await;
    let pid = daemon.child.id();
    let base = daemon.base.clone();
    let idle_rss = mib(pid, "VmRSS");

    // A cached node for the status GET.
    let known = &uuids[0];
    let fake_on = fake_powered_on(&fake);
    start_all_waiting(&http, &base, std::slice::from_ref(known), Some(&fake_on)).await;

    // The same for ironic-inspector, on a node of the real Ironic.
    let real = real_ironic
        .as_ref()
        .map(|url| IronicRest::new(url).unwrap_or_else(|e| panic!("an HTTP client for {url}: {e}")));
    // Per-run MAC prefix, so reruns against the same Ironic do not collide.
    let run_tag = std::process::id() & 0xff;
    let inspector_status_url = match (&real, &inspector) {
        (Some(ironic), Some(insp)) => {
            let u = ironic
                .enroll("192.0.2.250", &mac(&format!("52:f0:{run_tag:02x}"), 0))
                .await
                .unwrap_or_else(|e| panic!("enrolling on the real Ironic: {e}"));
            start_all_waiting(&http, insp, std::slice::from_ref(&u), None).await;
            Some(format!("{insp}/v1/introspection/{u}"))
        }
        _ => None,
    };

    let unknown_body =
        serde_json::to_string(&ipa_payload("52:54:99:00:00:01", "203.0.113.9")).unwrap_or_default();
    let script = dir.path().join("continue.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{unknown_body}'\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "API: release ironic-discoverd (fake Ironic) vs ironic-inspector 12.5 (real Ironic), wrk 5 s per row; kernel {}, {date}\n",
        kernel()
    );
    println!(
        "| request | conns | discoverd req/s | discoverd p50 | discoverd p99 | inspector req/s | inspector p50 | inspector p99 | req/s ratio | p99 ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let status_url = format!("{base}/v1/introspection/{known}");
    let continue_url = format!("{base}/v1/continue");
    let rows: [(&str, String, Option<String>, Option<&std::path::Path>); 2] = [
        (
            "`GET /v1/introspection/<uuid>` (node cached)",
            status_url,
            inspector_status_url,
            None,
        ),
        (
            "`POST /v1/continue`, unknown node (IPA payload; 404 / inspector 400)",
            continue_url,
            inspector.as_ref().map(|i| format!("{i}/v1/continue")),
            Some(&script),
        ),
    ];
    for (name, ours, theirs, script) in &rows {
        for c in [1, 32] {
            let d = tokio::task::block_in_place(|| wrk(ours, c, *script));
            let cells = match theirs {
                Some(t) => {
                    let i = tokio::task::block_in_place(|| wrk(t, c, *script));
                    format!(
                        "{:.0} | {} | {} | **{:.1}×** | **{:.1}×**",
                        i.rps,
                        ms(i.p50),
                        ms(i.p99),
                        d.rps / i.rps,
                        i.p99 / d.p99
                    )
                }
                None => "skipped | | | | ".to_owned(),
            };
            println!(
                "| {name} | {c} | {:.0} | {} | {} | {cells} |",
                d.rps,
                ms(d.p50),
                ms(d.p99)
            );
        }
    }

    // Scale against the fake Ironic: every node at once, start to finish.
    let scale_nodes: Vec<(String, Value)> = (1..NODES)
        .map(|i| {
            (
                uuids[i].clone(),
                json!({
                    "interfaces": {"em1": {"mac": mac("52:54:01", i), "ip": "192.0.2.10"}},
                    "ipmi_address": fake_bmc(i),
                    "cpus": 4, "cpu_arch": "x86_64", "memory_mb": 8192, "local_gb": 100
                }),
            )
        })
        .collect();
    let fake_scale = scale_run(
        &http,
        &base,
        &scale_nodes,
        Duration::from_millis(50),
        &fake_on,
        pid,
        None,
    )
    .await;

    // Full accepted reports, one per waiting node.
    let mut first = NODES;
    let mut full_rows = Vec::new();
    for (conns, n) in CONTINUE_NODES {
        let ids = &uuids[first..first + n];
        start_all_waiting(&http, &base, ids, Some(&fake_on)).await;
        let bodies: Vec<String> = (first..first + n)
            .map(|i| {
                serde_json::to_string(&ipa_payload(&mac("52:54:01", i), &fake_bmc(i))).unwrap_or_default()
            })
            .collect();
        let (row, bad) = continue_loop(&http, &base, bodies, conns).await;
        full_rows.push((conns, n, row, bad));
        first += n;
    }
    println!();
    println!(
        "`POST /v1/continue` with a full accepted IPA payload, each to a different waiting node \
(fake Ironic in the bench process; a Rust loop of reqwest calls, not wrk):\n"
    );
    println!("| connections | requests | req/s | p50 | p99 | non-200 |");
    println!("|---|---|---|---|---|---|");
    for (conns, n, row, bad) in full_rows {
        println!(
            "| {conns} | {n} | {:.0} | {} | {} | {bad} |",
            row.rps,
            ms(row.p50),
            ms(row.p99)
        );
    }

    println!(
        "\nScale: {} nodes introspected concurrently against the fake Ironic (start → ramdisk report → power off → finished)\n",
        NODES - 1
    );
    println!("| wall time | failed nodes | daemon CPU time | daemon RSS idle | daemon peak RSS |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.1} s | {} | {:.1} s | {idle_rss} | {} |",
        fake_scale.wall.as_secs_f64(),
        fake_scale.failed,
        fake_scale.cpu,
        fake_scale.peak_rss
    );
    for (e, n) in &fake_scale.errors {
        println!("\n{n} × {e}");
    }
    drop(daemon);

    let Some(ironic) = real else {
        println!(
            "\nReal-Ironic scale run and ironic-inspector rows skipped: DISCOVERD_BENCH_IRONIC_URL / \
DISCOVERD_BENCH_INSPECTOR_URL not set (scripts/bench.sh starts both and sets them)."
        );
        return;
    };
    if inspector.is_none() {
        println!(
            "\nironic-inspector rows skipped: DISCOVERD_BENCH_INSPECTOR_URL not set (scripts/bench.sh sets it)."
        );
    }

    // Scale against the real Ironic: 200 fresh nodes per service.
    let enroll_start = Instant::now();
    let spec = |bmc_net: &str, mac_prefix: &str| -> Vec<(String, String)> {
        (0..REAL_NODES)
            .map(|i| (format!("{bmc_net}.{}", i + 1), mac(mac_prefix, i)))
            .collect()
    };
    let ours_spec = spec("192.0.2", &format!("52:d0:{run_tag:02x}"));
    let theirs_spec = spec("198.51.100", &format!("52:e0:{run_tag:02x}"));
    let ours_uuids = enroll_all(&ironic, &ours_spec).await;
    let theirs_uuids = if inspector.is_some() {
        enroll_all(&ironic, &theirs_spec).await
    } else {
        Vec::new()
    };
    eprintln!(
        "enrolled {} manageable nodes on the real Ironic in {:.0} s",
        ours_uuids.len() + theirs_uuids.len(),
        enroll_start.elapsed().as_secs_f64()
    );
    let with_payload = |uuids: &[String], spec: &[(String, String)]| -> Vec<(String, Value)> {
        uuids
            .iter()
            .zip(spec)
            .map(|(u, (bmc, mac))| (u.clone(), ipa_payload(mac, bmc)))
            .collect()
    };
    // A long per-request timeout: ironic-inspector's single eventlet process
    // answers some of 200 simultaneous starts only after a minute; the run
    // as a whole is bounded by SCALE_DEADLINE.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let real_daemon = start_daemon(&http, dir.path(), "real", ironic.url()).await;
    let real_pid = real_daemon.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let real_idle = mib(real_pid, "VmRSS");
    let poll = Duration::from_millis(500);
    let (real_on, watcher) = real_powered_on(&ironic, poll);
    let ours = scale_run(
        &http,
        &real_daemon.base,
        &with_payload(&ours_uuids, &ours_spec),
        poll,
        &real_on,
        real_pid,
        ironic_pid,
    )
    .await;
    drop(real_daemon);
    let theirs = match (&inspector, inspector_pid) {
        (Some(insp), Some(ipid)) => Some(
            scale_run(
                &http,
                insp,
                &with_payload(&theirs_uuids, &theirs_spec),
                poll,
                &real_on,
                ipid,
                ironic_pid,
            )
            .await,
        ),
        (Some(_), None) => {
            println!(
                "\nironic-inspector scale run skipped: DISCOVERD_BENCH_INSPECTOR_PID not set (needed for its CPU time and RSS)."
            );
            None
        }
        _ => None,
    };
    watcher.abort();
    println!(
        "\nScale: {REAL_NODES} nodes per service introspected concurrently against the real standalone Ironic 39 \
(fake-hardware, one port each; IPA payload; status polled every {} ms per node)\n",
        poll.as_millis()
    );
    println!(
        "| service | wall time | failed nodes | service CPU time | service RSS idle | service peak RSS | Ironic CPU time |"
    );
    println!("|---|---|---|---|---|---|---|");
    let fmt_cpu = |c: Option<f64>| c.map(|c| format!("{c:.1} s")).unwrap_or_else(|| "?".into());
    println!(
        "| ironic-discoverd | {:.1} s | {} | {:.1} s | {real_idle} | {} | {} |",
        ours.wall.as_secs_f64(),
        ours.failed,
        ours.cpu,
        ours.peak_rss,
        fmt_cpu(ours.peer_cpu)
    );
    if let Some(t) = &theirs {
        println!(
            "| ironic-inspector 12.5 | {:.1} s | {} | {:.1} s | {} | {} (whole run) | {} |",
            t.wall.as_secs_f64(),
            t.failed,
            t.cpu,
            inspector_idle.clone().unwrap_or_else(|| "?".into()),
            t.peak_rss,
            fmt_cpu(t.peer_cpu)
        );
    }
    for (who, s) in [
        ("ironic-discoverd", Some(&ours)),
        ("ironic-inspector", theirs.as_ref()),
    ] {
        for (e, n) in s.map(|s| &s.errors).into_iter().flatten() {
            println!("\n{who}: {n} × {e}");
        }
    }
    if let Some(ipid) = ironic_pid {
        println!(
            "\nIronic (all its processes): RSS {} idle, {} after both runs, sum of peaks {}",
            ironic_idle.unwrap_or_default(),
            tree_mib(ipid, "VmRSS"),
            tree_mib(ipid, "VmHWM")
        );
    }
}
