//! Event stream fan-out: `cargo bench -p ironic-discoverd --bench events`
//! (`scripts/bench.sh events`).
//!
//! The release daemon (against the in-process fake Ironic, no firewall)
//! with 100 clients on `GET /v1/events`; 30 nodes are started one after
//! the other, each making two state changes (`starting`, `waiting`).
//! For every change each client notes when it read the event; the latency
//! is that time minus the change's own `at` (same clock, microseconds).
//! Prints p50, p99 and max over all (client, change) pairs, and how many
//! events were lost (a client must see every change). No peer offers
//! this stream.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use test_support::FakeIronic;
use tokio::sync::Mutex;

const SUBSCRIBERS: usize = 100;
const NODES: usize = 30;
/// Changes each start makes (none → starting, starting → waiting).
const CHANGES_PER_NODE: usize = 2;

/// Microseconds since the epoch of the daemon's `YYYY-MM-DDTHH:MM:SS.ffffff`.
fn parse_at(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + us)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One subscriber: reads the stream until it has seen `want` state
/// events, pushing each latency (µs).
async fn subscribe(http: reqwest::Client, url: String, want: usize, out: Arc<Mutex<Vec<i64>>>) -> usize {
    let resp = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let mut resp = resp;
    let (mut buf, mut event, mut seen) = (String::new(), String::new(), 0);
    let mut mine = Vec::with_capacity(want);
    while seen < want {
        let Ok(Some(chunk)) = resp.chunk().await else {
            break;
        };
        let received = now_micros();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            let line = line.trim_end();
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:")
                && event == "state"
            {
                let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap_or_default();
                if let Some(at) = v["at"].as_str().and_then(parse_at) {
                    mine.push(received - at);
                    seen += 1;
                }
            }
        }
    }
    out.lock().await.extend(mine);
    seen
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
        .map(|i| format!("00000000-0000-4000-e000-{i:012x}"))
        .collect();
    for (i, u) in uuids.iter().enumerate() {
        fake.add_node(u, &format!("10.9.0.{i}"));
        fake.add_port(u, &format!("52:54:0e:00:00:{i:02x}"));
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let conf = dir.path().join("events.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\n",
            dir.path().join("events.sqlite").display(),
            fake.url()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd"));
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir.path()]).unwrap_or_else(|e| panic!("{e:#}"));
    let _daemon = Daemon(
        cmd.arg("--config-file")
            .arg(&conf)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("ironic-discoverd: {e}")),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(SUBSCRIBERS + 8)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{base}/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "ironic-discoverd did not answer GET / within 10 s");

    let want = NODES * CHANGES_PER_NODE;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            tokio::spawn(subscribe(
                http.clone(),
                format!("{base}/v1/events"),
                want,
                latencies.clone(),
            ))
        })
        .collect();
    // Every client connected (the stream's headers come at once).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    for u in &uuids {
        let r = http
            .post(format!("{base}/v1/introspection/{u}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("start {u}: {e}"));
        assert_eq!(r.status().as_u16(), 202, "start {u}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lost = 0;
    for s in subs {
        let seen = tokio::time::timeout(Duration::from_secs(120), s)
            .await
            .unwrap_or_else(|_| panic!("a subscriber did not see {want} events in 120 s"))
            .unwrap_or_else(|e| panic!("{e}"));
        lost += want.saturating_sub(seen);
    }
    let mut all = latencies.lock().await.clone();
    all.sort_unstable();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!("\n### `GET /v1/events`: {SUBSCRIBERS} subscribers, {want} state changes\n");
    println!("Latency from a change (its `at`) to each subscriber reading it.\n");
    println!("| subscribers | changes | samples | p50 | p99 | max | lost |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {SUBSCRIBERS} | {want} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {lost} |",
        all.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    eprintln!("({:.1} s for the starts)", t.elapsed().as_secs_f64());
}
