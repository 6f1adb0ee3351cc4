//! The connection flood of issue 18, against the release daemon: 20 000
//! half-open connections (a request line and one header each, never
//! finished) from one client, while a prober keeps asking for a status.
//!
//! Prints: status p50/p99 before and during the flood, the daemon's RSS
//! and open files idle, at their peak during the flood and a minute after
//! the client left, and how many flood connections the daemon had closed
//! 5 s and 15 s after the last one was opened (the header timeout is the
//! default 10 s; before it only the connection cap closes any).
//!
//! `cargo bench -p ironic-discoverd --bench flood` (also run by
//! `scripts/bench.sh`). Measurements, not assertions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironic_discoverd_e2e::proc_status_field;
use test_support::FakeIronic;

const FLOOD: usize = 20_000;
const NODE: &str = "00000000-0000-4000-a000-000000000001";

fn rss_mib(pid: u32) -> f64 {
    proc_status_field(pid, "VmRSS")
        .ok()
        .and_then(|v| v.split_whitespace().next().and_then(|k| k.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Status GETs every 10 ms until `stop`; latencies in ms and failures.
async fn probe(base: String, stop: Arc<AtomicBool>) -> (Vec<f64>, u64) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{base}/v1/introspection/{NODE}");
    let mut lat = Vec::new();
    let mut failed = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => lat.push(t.elapsed().as_secs_f64() * 1000.0),
            Ok(r) => {
                failed += 1;
                eprintln!("status answered {}", r.status());
            }
            Err(e) => {
                failed += 1;
                eprintln!("status failed: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lat.sort_by(f64::total_cmp);
    (lat, failed)
}

/// How many of `conns` the daemon has closed (EOF or reset).
fn closed(conns: &[TcpStream]) -> usize {
    let mut buf = [0u8; 256];
    conns
        .iter()
        .filter(|c| match (&mut &**c).read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
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
    // The client needs 20 000 descriptors too.
    let _ = discoverd::connections::raise_open_files_limit();
    let fake = FakeIronic::start().await.unwrap_or_else(|e| panic!("{e}"));
    fake.add_node(NODE, "10.0.0.1");
    fake.add_port(NODE, "52:54:00:00:00:01");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let conf = dir.path().join("flood.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {}\n\
             listen_address = 127.0.0.1\nlisten_port = {port}\n",
            dir.path().join("flood.sqlite").display(),
            fake.url()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd"));
    cmd.arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir.path()]).unwrap_or_else(|e| panic!("{e:#}"));
    let daemon = Daemon(cmd.spawn().unwrap_or_else(|e| panic!("ironic-discoverd: {e}")));
    let pid = daemon.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{base}/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the daemon did not answer within 10 s");
    let started = http
        .post(format!("{base}/v1/introspection/{NODE}"))
        .send()
        .await
        .map(|r| r.status());
    eprintln!("start: {started:?}");

    // Baseline.
    let stop = Arc::new(AtomicBool::new(false));
    let p = tokio::spawn(probe(base.clone(), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let (before, before_failed) = p.await.unwrap_or_default();
    let idle_rss = rss_mib(pid);
    let idle_fds = open_files(pid);

    // Peaks, sampled every 50 ms while the flood lasts.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let peak_fds = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (s, r, f) = (
            Arc::clone(&sampling),
            Arc::clone(&peak_rss),
            Arc::clone(&peak_fds),
        );
        tokio::spawn(async move {
            while s.load(Ordering::Relaxed) {
                r.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                f.fetch_max(open_files(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let p = tokio::spawn(probe(base.clone(), Arc::clone(&stop)));
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let (conns, connect_errors) = tokio::task::spawn_blocking(move || {
        let mut conns = Vec::with_capacity(FLOOD);
        let mut errors = 0;
        for _ in 0..FLOOD {
            match TcpStream::connect(addr) {
                Ok(mut c) => {
                    let _ = c.write_all(b"GET /v1/introspection/x HTTP/1.1\r\nHost: flood\r\n");
                    let _ = c.set_nonblocking(true);
                    conns.push(c);
                }
                Err(_) => errors += 1,
            }
        }
        (conns, errors)
    })
    .await
    .unwrap_or_default();
    let flood_took = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let closed_5s = closed(&conns);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let closed_15s = closed(&conns);
    stop.store(true, Ordering::Relaxed);
    let (during, during_failed) = p.await.unwrap_or_default();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let opened = conns.len();
    drop(conns);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after_rss = rss_mib(pid);
    let after_fds = open_files(pid);
    let hwm = proc_status_field(pid, "VmHWM").unwrap_or_default();

    println!("## Connection flood (`cargo bench -p ironic-discoverd --bench flood`)\n");
    println!(
        "{opened} half-open connections opened in {:.1} s ({connect_errors} connects failed); \
         daemon defaults: http_header_timeout 10 s, max_connections 1024.\n",
        flood_took.as_secs_f64()
    );
    println!("| | before the flood | during the flood |");
    println!("|---|---|---|");
    println!(
        "| status GET p50 / p99 / max | {:.2} / {:.2} / {:.2} ms | {:.2} / {:.2} / {:.2} ms |",
        pct(&before, 0.5),
        pct(&before, 0.99),
        pct(&before, 1.0),
        pct(&during, 0.5),
        pct(&during, 0.99),
        pct(&during, 1.0)
    );
    println!(
        "| status GETs answered / failed | {} / {before_failed} | {} / {during_failed} |",
        before.len(),
        during.len()
    );
    println!();
    println!("| daemon | idle | peak during | 60 s after the client left |");
    println!("|---|---|---|---|");
    println!(
        "| RSS | {idle_rss:.1} MiB | {:.1} MiB (VmHWM {hwm}) | {after_rss:.1} MiB |",
        peak_rss.load(Ordering::Relaxed) as f64 / 1024.0
    );
    println!(
        "| open files | {idle_fds} | {} | {after_fds} |",
        peak_fds.load(Ordering::Relaxed)
    );
    println!();
    println!(
        "Flood connections closed by the daemon: {closed_5s} of {opened} 5 s after the last was opened \
         (before the header timeout: the cap's evictions), {closed_15s} of {opened} after 15 s."
    );
}
