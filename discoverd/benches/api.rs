//! API and scale benchmark: `cargo bench -p ironic-discoverd --bench api`.
//!
//! Starts the real (release) daemon against the in-process fake Ironic,
//! without a firewall, on 127.0.0.1, then:
//! - `wrk` on `GET /v1/introspection/<uuid>` at 1 and 32 connections, and on
//!   `POST /v1/continue` for an unknown node (404) at 32 connections;
//! - N nodes introspected concurrently end to end (start, ramdisk report,
//!   finish), reporting wall time, failures, daemon CPU time and peak RSS.
//!
//! Prints Markdown. Needs `wrk` (Debian package `wrk`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use discoverd::testing::FakeIronic;
use serde_json::{Value, json};

const NODES: usize = 1000;

fn proc_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim_start_matches(':').trim().to_owned())
        })
        .unwrap_or_default()
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

/// Runs wrk and returns (req/s, p50, p99) from its --latency output.
fn wrk(url: &str, conns: u32, script: Option<&std::path::Path>) -> (f64, String, String) {
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
        .unwrap_or_else(|e| panic!("wrk: {e} (apt-get install wrk)"));
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
            .unwrap_or("?")
            .to_owned()
    };
    let non2xx = text.lines().find(|l| l.contains("Non-2xx")).map(str::to_owned);
    if let Some(n) = non2xx {
        eprintln!("wrk {url}: {n}");
    }
    (rps, pct("50%"), pct("99%"))
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
    let fake = FakeIronic::start().await.unwrap_or_else(|e| panic!("{e}"));
    let uuids: Vec<String> = (0..NODES)
        .map(|i| format!("00000000-0000-4000-a000-{i:012x}"))
        .collect();
    for (i, u) in uuids.iter().enumerate() {
        fake.add_node(u, &format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256));
        fake.add_port(
            u,
            &format!(
                "52:54:01:{:02x}:{:02x}:{:02x}",
                i / 65536,
                (i / 256) % 256,
                i % 256
            ),
        );
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(15099);
    let conf = dir.path().join("discoverd.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\nprocessing_hooks = ramdisk_error,scheduler,validate_interfaces\n",
            dir.path().join("db.sqlite").display(),
            fake.url()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd"))
        .arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = daemon.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..200 {
        if http.get(format!("{base}/")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let idle_rss = proc_field(pid, "VmRSS");

    // A known node for the status GET.
    let known = &uuids[0];
    let r = http
        .post(format!("{base}/v1/introspection/{known}"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(r.ok(), Some(202));
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!(
        "API, real release daemon, wrk 5 s per row, kernel {}\n",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!("| request | connections | req/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let status_url = format!("{base}/v1/introspection/{known}");
    for c in [1, 32] {
        let (rps, p50, p99) = tokio::task::block_in_place(|| wrk(&status_url, c, None));
        println!("| GET /v1/introspection/<uuid> | {c} | {rps:.0} | {p50} | {p99} |");
    }
    let script = dir.path().join("continue.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
wrk.body = '{\"interfaces\": {\"em1\": {\"mac\": \"52:54:99:00:00:01\", \"ip\": \"192.0.2.9\"}}, \"ipmi_address\": \"203.0.113.9\", \"cpus\": 1, \"cpu_arch\": \"x86_64\", \"memory_mb\": 1024, \"local_gb\": 10}'\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for c in [1, 32] {
        let (rps, p50, p99) =
            tokio::task::block_in_place(|| wrk(&format!("{base}/v1/continue"), c, Some(&script)));
        println!("| POST /v1/continue, unknown node (404) | {c} | {rps:.0} | {p50} | {p99} |");
    }

    // Scale: every node at once, start to finish.
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    let starts = uuids[1..].iter().map(|u| {
        let http = http.clone();
        let url = format!("{base}/v1/introspection/{u}");
        tokio::spawn(async move {
            http.post(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    });
    let mut failed = 0;
    for s in starts.collect::<Vec<_>>() {
        if s.await.unwrap_or(0) != 202 {
            failed += 1;
        }
    }
    // Wait until every node is cached and waiting, then report for all.
    let deadline = Instant::now() + Duration::from_secs(300);
    let reports = uuids[1..].iter().enumerate().map(|(i, u)| {
        let i = i + 1;
        let http = http.clone();
        let base = base.clone();
        let u = u.clone();
        tokio::spawn(async move {
            loop {
                let st: Value = match http.get(format!("{base}/v1/introspection/{u}")).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                if st["state"] == "waiting" {
                    break;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let body = json!({
                "interfaces": {"em1": {"mac": format!("52:54:01:{:02x}:{:02x}:{:02x}", i / 65536, (i / 256) % 256, i % 256), "ip": "192.0.2.10"}},
                "ipmi_address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                "cpus": 4, "cpu_arch": "x86_64", "memory_mb": 8192, "local_gb": 100
            });
            let ok = http.post(format!("{base}/v1/continue")).json(&body).send().await.is_ok_and(|r| r.status().as_u16() == 200);
            if !ok {
                return false;
            }
            loop {
                let st: Value = match http.get(format!("{base}/v1/introspection/{u}")).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                if st["finished"] == true {
                    return st["error"].is_null();
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    for r in reports.collect::<Vec<_>>() {
        if !r.await.unwrap_or(false) {
            failed += 1;
        }
    }
    let wall = start.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    println!(
        "\nScale: {} nodes introspected concurrently against the fake Ironic (start → ramdisk report → power off → finished)\n",
        NODES - 1
    );
    println!("| wall time | failed nodes | daemon CPU time | daemon RSS idle | daemon peak RSS |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.1} s | {failed} | {cpu:.1} s | {idle_rss} | {} |",
        wall.as_secs_f64(),
        proc_field(pid, "VmHWM")
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
