//! The introspection at Ironic's pace (issue 15):
//! `cargo bench -p ironic-discoverd --bench pace`, run by `scripts/bench.sh`
//! after the `api` bench, with the real standalone Ironic 39 and
//! ironic-inspector 12.5 it starts.
//!
//! For 1, 50 and 200 fresh fake-hardware nodes per service (fewer with
//! `DISCOVERD_BENCH_PACE_SIZES=1,50`; the single node ten times in a row,
//! one p50 over the ten; up to 50 nodes, three rounds with the services
//! taking turns going first, `DISCOVERD_BENCH_PACE_ROUNDS`; each batch
//! starts on a settled Ironic and its nodes are deleted after it), every
//! node is started at once and its
//! "ramdisk" posts its report as soon as the service says the node is
//! `waiting` (a node that boots fast; the `api` bench's scale run waits for
//! Ironic's power state first). Per node: start → status `finished`, p50 and
//! p99; wall time; failed nodes; Ironic CPU seconds; and the requests Ironic
//! served meanwhile, per node by method and path, parsed from Ironic's API
//! log (`DISCOVERD_BENCH_IRONIC_LOG`). Both services run one after the
//! other in the same process, on the same Ironic. Before them, `wrk` on
//! the status GET and on `/v1/continue` for an unknown node, for both.
//!
//! The process helpers are copies of the `api` bench's (benches are single
//! files here).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use serde_json::{Value, json};

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU seconds of `pid` and its descendants (Ironic's API is a child).
fn tree_cpu(pid: u32) -> f64 {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        if let Some(pp) = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
        {
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
    tree.into_iter().map(cpu_seconds).sum()
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mac(prefix: &str, i: usize) -> String {
    format!("{prefix}:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff)
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

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

/// The release daemon on `ironic_url` (noauth, no firewall, the `api`
/// bench's hooks, every other option at its default).
async fn start_daemon(http: &reqwest::Client, dir: &std::path::Path, ironic_url: &str) -> Daemon {
    let port = free_port();
    let conf = dir.join("pace.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {ironic_url}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\nprocessing_hooks = ramdisk_error,scheduler,validate_interfaces\n",
            dir.join("pace.sqlite").display(),
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
    panic!("ironic-discoverd did not answer GET / within 10 s");
}

async fn status(http: &reqwest::Client, base: &str, uuid: &str) -> Value {
    match http.get(format!("{base}/v1/introspection/{uuid}")).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Waits (at most 20 s) until Ironic used under 5 % of a core over a
/// second: the power actions and notifications of the previous round are
/// done.
async fn settle(ironic_pid: Option<u32>) {
    let Some(pid) = ironic_pid else { return };
    for _ in 0..20 {
        let before = tree_cpu(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if tree_cpu(pid) - before < 0.05 {
            return;
        }
    }
}

/// Deletes the nodes, 8 at a time (a node still locked by its power-off
/// is asked again, up to 10 times).
async fn delete_all(ironic: &IronicRest, uuids: &[String]) {
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let tasks: Vec<_> = uuids
        .iter()
        .map(|u| {
            let (ironic, u, sem) = (ironic.clone(), u.clone(), sem.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire().await;
                for _ in 0..10 {
                    if ironic
                        .send(reqwest::Method::DELETE, &format!("/v1/nodes/{u}"), None)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Enrolls one node per (bmc, mac), 8 at a time.
async fn enroll_all(ironic: &IronicRest, nodes: &[(String, String)]) -> Vec<String> {
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let tasks: Vec<_> = nodes
        .iter()
        .map(|(bmc, mac)| {
            let (ironic, bmc, mac, sem) = (ironic.clone(), bmc.clone(), mac.clone(), sem.clone());
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

/// Requests in Ironic's API log (`… 127.0.0.1 - GET /v1/nodes/<uuid> - 200 (3.1ms)`)
/// after byte `from`, by "METHOD path" with UUIDs as `*` and no query.
fn ironic_requests(log: &std::path::Path, from: u64) -> BTreeMap<String, usize> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned();
    let mut t = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("ironic.api")) {
        // After the request context (`[None req-… - - - - - -]`), whose
        // dashes are not the separator.
        let rest = line.rsplit_once(']').map_or(line, |(_, r)| r);
        let mut words = rest.split_whitespace().skip_while(|w| *w != "-");
        let (Some(_), Some(method), Some(path)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if !["GET", "PUT", "PATCH", "POST", "DELETE"].contains(&method) {
            continue;
        }
        let path: Vec<String> = path
            .split('?')
            .next()
            .unwrap_or_default()
            .split('/')
            .map(|seg| {
                if uuid_like(seg) {
                    "*".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect();
        *t.entry(format!("{method} {}", path.join("/"))).or_insert(0) += 1;
    }
    t
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn log_len(log: Option<&std::path::Path>) -> u64 {
    log.and_then(|l| std::fs::metadata(l).ok()).map_or(0, |m| m.len())
}

/// What one run measured.
struct Run {
    per_node: Vec<f64>,
    wall: f64,
    failed: usize,
    errors: BTreeMap<String, usize>,
    ironic_cpu: Option<f64>,
    requests: BTreeMap<String, usize>,
}

impl Run {
    /// Several runs of the same size as one: every node's time, the
    /// median wall time, failures and Ironic's requests summed, Ironic's
    /// CPU per run.
    fn merge(runs: Vec<Run>) -> Run {
        let k = runs.len().max(1) as f64;
        let mut walls: Vec<f64> = runs.iter().map(|r| r.wall).collect();
        walls.sort_by(f64::total_cmp);
        let mut out = Run {
            per_node: Vec::new(),
            wall: pct(&walls, 50),
            failed: 0,
            errors: BTreeMap::new(),
            ironic_cpu: Some(0.0),
            requests: BTreeMap::new(),
        };
        for r in runs {
            out.per_node.extend(r.per_node);
            out.failed += r.failed;
            for (e, c) in r.errors {
                *out.errors.entry(e).or_insert(0) += c;
            }
            out.ironic_cpu = out.ironic_cpu.zip(r.ironic_cpu).map(|(a, b)| a + b / k);
            for (q, c) in r.requests {
                *out.requests.entry(q).or_insert(0) += c;
            }
        }
        out.per_node.sort_by(f64::total_cmp);
        out
    }
}

fn pct(sorted: &[f64], q: usize) -> f64 {
    sorted
        .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// Every node started at once; each reports as soon as it shows
/// `waiting`; polled (every `poll`) until finished.
async fn pace_run(
    http: &reqwest::Client,
    base: &str,
    nodes: &[(String, Value)],
    poll: Duration,
    ironic_pid: Option<u32>,
    log: Option<&std::path::Path>,
) -> Run {
    let log_from = log_len(log);
    let cpu_before = ironic_pid.map(tree_cpu);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, (uuid, body))| {
            let (http, base, uuid, body) = (http.clone(), base.to_owned(), uuid.clone(), body.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                match http.post(format!("{base}/v1/introspection/{uuid}")).send().await {
                    Ok(r) if r.status().as_u16() == 202 => {}
                    Ok(r) => return Err(format!("start: {}", r.status())),
                    Err(e) => return Err(format!("start: {e}")),
                }
                // Spread the polls of many nodes.
                tokio::time::sleep(
                    poll.mul_f64((i % 10) as f64 / 10.0)
                        .min(Duration::from_millis(50)),
                )
                .await;
                let mut reported = false;
                loop {
                    let st = status(&http, &base, &uuid).await;
                    if st["finished"] == true {
                        return match st["error"].as_str() {
                            None if reported => Ok(t0.elapsed().as_secs_f64()),
                            None => Err("finished before its report".to_owned()),
                            Some(e) => Err(format!("error: {e}")),
                        };
                    }
                    if !reported && st["state"] == "waiting" {
                        match http.post(format!("{base}/v1/continue")).json(&body).send().await {
                            Ok(r) if r.status().as_u16() == 200 => reported = true,
                            Ok(r) => {
                                let s = r.status();
                                return Err(format!("continue: {s} {}", r.text().await.unwrap_or_default()));
                            }
                            Err(e) => return Err(format!("continue: {e}")),
                        }
                        continue;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("not finished within 600 s (last {st})"));
                    }
                    tokio::time::sleep(poll).await;
                }
            })
        })
        .collect();
    let mut per_node = Vec::new();
    let mut errors = BTreeMap::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| Err(format!("task: {e}"))) {
            Ok(s) => per_node.push(s),
            Err(e) => {
                failed += 1;
                let key: String = e.chars().take(200).collect();
                *errors.entry(key).or_insert(0) += 1;
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    // Ironic's log is written by another process: let it catch up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    per_node.sort_by(f64::total_cmp);
    Run {
        per_node,
        wall,
        failed,
        errors,
        ironic_cpu: ironic_pid.zip(cpu_before).map(|(p, b)| tree_cpu(p) - b),
        requests: log.map(|l| ironic_requests(l, log_from)).unwrap_or_default(),
    }
}

/// wrk for 5 s: (req/s, p99 ms).
fn wrk(url: &str, conns: u32, script: Option<&std::path::Path>) -> (f64, String) {
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
    let out = c.arg(url).output().unwrap_or_else(|e| panic!("wrk: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    (rps, p99)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(run());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run() {
    let (Some(ironic_url), Some(insp)) = (
        env("DISCOVERD_BENCH_IRONIC_URL"),
        env("DISCOVERD_BENCH_INSPECTOR_URL"),
    ) else {
        println!(
            "pace bench skipped: DISCOVERD_BENCH_IRONIC_URL / DISCOVERD_BENCH_INSPECTOR_URL not set (scripts/bench.sh sets them)"
        );
        return;
    };
    let ironic_url = ironic_url.trim_end_matches('/').to_owned();
    let insp = insp.trim_end_matches('/').to_owned();
    let ironic_pid = env("DISCOVERD_BENCH_IRONIC_PID").and_then(|v| v.trim().parse().ok());
    let log = env("DISCOVERD_BENCH_IRONIC_LOG").map(std::path::PathBuf::from);
    let min_poll_ms: u64 = env("DISCOVERD_BENCH_PACE_POLL_MS")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(50);
    let sizes: Vec<usize> = env("DISCOVERD_BENCH_PACE_SIZES")
        .unwrap_or_else(|| "1,50,200".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let ironic = IronicRest::new(&ironic_url).unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let daemon = start_daemon(&http, dir.path(), &ironic_url).await;
    let tag = std::process::id() & 0xff;
    println!(
        "Pace: report posted as soon as the service shows `waiting`; real Ironic 39 at {ironic_url}; load average at start {}\n",
        loadavg()
    );
    // Status GET and unknown-node continue, both services, first: after
    // its 200-node run the inspector stopped answering wrk (three runs).
    let unknown = serde_json::to_string(&ipa_payload("52:54:99:00:00:01", "203.0.113.9")).unwrap_or_default();
    let script = dir.path().join("continue.lua");
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{unknown}'\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    println!("\n| request | conns | discoverd req/s | p99 | inspector req/s | p99 | ratio |");
    println!("|---|---|---|---|---|---|---|");
    // One node per service, started and left `waiting`.
    let mut status_nodes = Vec::new();
    for (s, base) in [daemon.base.as_str(), insp.as_str()].into_iter().enumerate() {
        let u = ironic
            .enroll(
                &format!("203.0.113.{}", 200 + s),
                &format!("52:f1:{tag:02x}:00:00:{s:02x}"),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = http.post(format!("{base}/v1/introspection/{u}")).send().await;
        status_nodes.push(u);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, path, script, conns) in [
        ("`GET /v1/introspection/<uuid>`", String::new(), None, 32),
        (
            "`POST /v1/continue`, unknown node",
            "/v1/continue".to_owned(),
            Some(script.as_path()),
            1,
        ),
        (
            "`POST /v1/continue`, unknown node",
            "/v1/continue".to_owned(),
            Some(script.as_path()),
            32,
        ),
    ] {
        // An empty path: the status GET of each service's own node.
        let [p_ours, p_theirs] = if path.is_empty() {
            [0, 1].map(|s| format!("/v1/introspection/{}", status_nodes[s]))
        } else {
            [path.clone(), path.clone()]
        };
        let ours = tokio::task::block_in_place(|| wrk(&format!("{}{p_ours}", daemon.base), conns, script));
        let theirs = tokio::task::block_in_place(|| wrk(&format!("{insp}{p_theirs}"), conns, script));
        println!(
            "| {name} | {conns} | {:.0} | {} | {:.0} | {} | **{:.1}×** |",
            ours.0,
            ours.1,
            theirs.0,
            theirs.1,
            ours.0 / theirs.0
        );
    }
    println!();
    println!(
        "| nodes | service | per node p50 | p99 | wall | failed | Ironic CPU | Ironic requests per node | of which PATCH | load avg after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut details = Vec::new();
    let mut summaries = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        // One node is run 10 times, one after the other: a p50 of one
        // sample said little (0.34–0.60 s for the same code), one of five
        // moved the ratio 0.46–0.51× over a day. A larger
        // batch is run in `rounds` (default 3 up to 50 nodes, else 1),
        // the services taking turns: one round's wall moves with Ironic's
        // own noise (the inspector's 50-node wall ranged 25.9–35.0 s in
        // one day), so the ratio is the median of the rounds'.
        let repeats = if n == 1 { 10 } else { 1 };
        let rounds = if n == 1 {
            1
        } else {
            env("DISCOVERD_BENCH_PACE_ROUNDS")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(if n <= 50 { 3 } else { 1 })
        };
        let mut walls: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut p50s: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let mut pair = Vec::new();
            let services = [
                ("ironic-discoverd", daemon.base.as_str()),
                ("ironic-inspector 12.5", insp.as_str()),
            ];
            // The services take turns going first, so neither always
            // meets what the other left Ironic doing.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for s in order {
                let (name, base) = services[s];
                settle(ironic_pid).await;
                let prefix = format!("52:{:02x}:{tag:02x}:{:02x}", 0xa0 + s, k * 16 + round);
                let spec: Vec<(String, String)> = (0..n * repeats)
                    .map(|i| {
                        (
                            format!("10.{}.{}.{}", 100 + s * 10 + k, round * 4 + i / 250, i % 250 + 1),
                            mac(&prefix, i),
                        )
                    })
                    .collect();
                let uuids = enroll_all(&ironic, &spec).await;
                let nodes: Vec<(String, Value)> = uuids
                    .iter()
                    .zip(&spec)
                    .map(|(u, (bmc, mac))| (u.clone(), ipa_payload(mac, bmc)))
                    .collect();
                // Polls spread over the nodes: at most ~200 status GETs/s. The
                // poll rounds both ends of a node's time up (`waiting` seen
                // late, `finished` seen late): `DISCOVERD_BENCH_PACE_POLL_MS`
                // (default 50) is the shortest period.
                let poll = Duration::from_millis((5 * n as u64).max(min_poll_ms));
                let mut runs = Vec::new();
                for chunk in nodes.chunks(n.max(1)) {
                    runs.push(pace_run(&http, base, chunk, poll, ironic_pid, log.as_deref()).await);
                }
                let r = Run::merge(runs);
                let total: usize = r.requests.values().sum();
                let patches: usize = r
                    .requests
                    .iter()
                    .filter(|(k, _)| k.starts_with("PATCH"))
                    .map(|(_, v)| v)
                    .sum();
                let label = if rounds > 1 {
                    format!("{n} (round {})", round + 1)
                } else {
                    n.to_string()
                };
                println!(
                    "| {label} | {name} | {:.2} s | {:.2} s | {:.1} s | {} | {} | {:.1} | {:.2} | {} |",
                    pct(&r.per_node, 50),
                    pct(&r.per_node, 99),
                    r.wall,
                    r.failed,
                    r.ironic_cpu.map_or("?".into(), |c| format!("{c:.1} s")),
                    total as f64 / (n * repeats) as f64,
                    patches as f64 / (n * repeats) as f64,
                    loadavg()
                );
                walls[s].push(r.wall);
                p50s[s].push(pct(&r.per_node, 50));
                pair.push((name, n * repeats, r));
                // Ironic's periodic tasks walk every node: each round
                // starts with as many nodes as the first.
                delete_all(&ironic, &uuids).await;
            }
            details.push(pair);
        }
        summaries.push((n, rounds, walls, p50s));
    }
    println!("\nRatios (discoverd / inspector; median over the rounds, each round's in brackets):\n");
    for (n, rounds, walls, p50s) in &summaries {
        let ratios = |v: &[Vec<f64>; 2]| -> Vec<f64> { v[0].iter().zip(&v[1]).map(|(a, b)| a / b).collect() };
        let show = |r: &[f64]| r.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
        let (w, p) = (ratios(walls), ratios(p50s));
        println!(
            "- {n} nodes, {rounds} round(s): wall **{:.2}×** ({}), per node p50 **{:.2}×** ({})",
            median(&w),
            show(&w),
            median(&p),
            show(&p)
        );
    }
    println!("\nIronic requests per node, by method and path (from Ironic's API log):\n");
    for pair in &details {
        for (name, n, r) in pair {
            let list: Vec<String> = r
                .requests
                .iter()
                .map(|(k, v)| format!("`{k}` {:.2}", *v as f64 / *n as f64))
                .collect();
            println!("- {n} nodes, {name}: {}", list.join(", "));
            for (e, c) in &r.errors {
                println!("  - failed {c} × {e}");
            }
        }
    }
    // Why a node took more than nine requests: the daemon's failed tries
    // (each retried), by call and answer.
    let scrape = match http.get(format!("{}/metrics", daemon.base)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => format!("(no /metrics: {e})"),
    };
    let failed: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("ironic_discoverd_ironic_call_errors_total{"))
        .collect();
    println!(
        "\nThe daemon's failed Ironic tries over the whole run (retried; /metrics): {}",
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join(", ")
        }
    );
    println!("\nload average at the end: {}", loadavg());
}
