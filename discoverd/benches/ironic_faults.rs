//! Ironic's bad days, as a benchmark (issue 18's "Done when"):
//! `DISCOVERD_BENCH_IRONIC_URL=http://127.0.0.1:PORT cargo bench -p ironic-discoverd --bench ironic_faults`
//!
//! Enrolls 200 fake-hardware nodes on a real standalone Ironic, puts a
//! small proxy between the daemon and Ironic that answers 408, 409 or 503
//! (Ironic's error body) to a random 5 % of the daemon's requests instead
//! of forwarding them, starts all 200 introspections at once and posts
//! each node's ramdisk report as soon as it waits, with IPA's behaviour
//! (retry a 409 or 5xx after `Retry-After`, five tries). The operator's
//! client retries a 503 start the same way. Prints a Markdown table: the
//! goal is 0 failed nodes. Without the URL it says so and does nothing.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ironic_discoverd_e2e::ironic_rest::IronicRest;
use serde_json::{Value, json};

const NODES: usize = 200;
const FAULT_RATE: f64 = 0.05;
const DEADLINE: Duration = Duration::from_secs(900);

/// What the proxy did.
#[derive(Default)]
struct Counts {
    forwarded: usize,
    injected: BTreeMap<u16, usize>,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counts: Arc<Mutex<Counts>>,
}

fn counts(p: &Proxy) -> std::sync::MutexGuard<'_, Counts> {
    p.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn proxy(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if fastrand::f64() < FAULT_RATE {
        let code = [408u16, 409, 503][fastrand::usize(..3)];
        *counts(&p).injected.entry(code).or_default() += 1;
        let inner = json!({"faultstring": "injected by the benchmark proxy", "debuginfo": null}).to_string();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, axum::Json(json!({"error_message": inner}))).into_response();
    }
    counts(&p).forwarded += 1;
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut req = p.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let ct = r.headers().get("content-type").cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = (status, bytes).into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs with a client's retries: a 409 or 5xx is tried again after
/// `Retry-After` (or 5 s), five tries in all. Returns the final status
/// and body, and how many answers were retried.
async fn post_retrying(http: &reqwest::Client, url: &str, body: Option<&Value>) -> (u16, String, usize) {
    let mut retried = 0;
    loop {
        let mut req = http.post(url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, wait, text) = match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5);
                (s, wait, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, 5, e.to_string()),
        };
        let again = status == 0 || status == 409 || status >= 500;
        if !again || retried == 4 {
            return (status, text, retried);
        }
        retried += 1;
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

async fn status(http: &reqwest::Client, base: &str, uuid: &str) -> Value {
    match http.get(format!("{base}/v1/introspection/{uuid}")).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Start, wait until Ironic shows the node powered on and the status
/// `waiting`, report, wait until finished. Returns retried answers.
async fn one_node(
    http: reqwest::Client,
    powered_on: PoweredOn,
    base: String,
    uuid: String,
    body: Value,
    deadline: Instant,
) -> Result<(usize, usize), String> {
    let (s, text, start_retries) =
        post_retrying(&http, &format!("{base}/v1/introspection/{uuid}"), None).await;
    if s != 202 {
        return Err(format!("start: {s} {text}"));
    }
    loop {
        let st = status(&http, &base, &uuid).await;
        let on = powered_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&uuid);
        if st["state"] == "waiting" && on {
            break;
        }
        if st["finished"] == true {
            return Err(format!("finished before the report: {}", st["error"]));
        }
        if Instant::now() > deadline {
            return Err(format!("not waiting before the deadline: {st}"));
        }
        tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(..500))).await;
    }
    let (s, text, report_retries) = post_retrying(&http, &format!("{base}/v1/continue"), Some(&body)).await;
    if s != 200 {
        return Err(format!("continue: {s} {text}"));
    }
    loop {
        let st = status(&http, &base, &uuid).await;
        if st["finished"] == true {
            return match st["error"].as_str() {
                None => Ok((start_retries, report_retries)),
                Some(e) => Err(format!("error: {e}")),
            };
        }
        if Instant::now() > deadline {
            return Err(format!("not finished before the deadline: {st}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The nodes Ironic shows powered on, refreshed by one listing a second
/// (polling each node would load Ironic more than the daemon does).
type PoweredOn = Arc<Mutex<std::collections::HashSet<String>>>;

fn watch_power(ironic: Arc<IronicRest>) -> (PoweredOn, tokio::task::JoinHandle<()>) {
    let on: PoweredOn = Arc::default();
    let on2 = on.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok(set) = ironic.powered_on().await {
                *on2.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = set;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (on, task)
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("DISCOVERD_BENCH_IRONIC_URL") else {
        println!("ironic_faults skipped: DISCOVERD_BENCH_IRONIC_URL not set (a real standalone Ironic)");
        return;
    };
    let ironic = Arc::new(IronicRest::new(&url).unwrap_or_else(|e| panic!("{e}")));
    let tag = fastrand::u8(..);
    let nodes: Vec<(String, String)> = (0..NODES)
        .map(|i| {
            (
                format!("203.0.113.{}", i % 250 + 1),
                format!("52:f0:{tag:02x}:00:{:02x}:{:02x}", i >> 8, i & 0xff),
            )
        })
        .collect();
    let enroll = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut uuids = Vec::new();
    let tasks: Vec<_> = nodes
        .iter()
        .map(|(bmc, mac)| {
            let (ironic, sem, bmc, mac) = (ironic.clone(), sem.clone(), bmc.clone(), mac.clone());
            tokio::spawn(async move {
                let _p = sem.acquire().await.map_err(|e| e.to_string())?;
                ironic.enroll(&bmc, &mac).await.map_err(|e| e.to_string())
            })
        })
        .collect();
    for t in tasks {
        match t.await {
            Ok(Ok(u)) => uuids.push(u),
            other => panic!("enrolling: {other:?}"),
        }
    }
    eprintln!(
        "enrolled {NODES} nodes in {:.0} s",
        enroll.elapsed().as_secs_f64()
    );

    let p = Proxy {
        upstream: url.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        counts: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let proxy_url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let app = axum::Router::new().fallback(proxy).with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let conf = dir.path().join("d.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {proxy_url}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\nprocessing_hooks = ramdisk_error,scheduler,validate_interfaces\n",
            dir.path().join("d.sqlite").display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // As root, the daemon runs as its own user (it refuses uid 0).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd"));
    cmd.arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ironic_discoverd_e2e::unprivileged(&mut cmd, &[dir.path()]).unwrap_or_else(|e| panic!("{e:#}"));
    let _daemon = Daemon(cmd.spawn().unwrap_or_else(|e| panic!("ironic-discoverd: {e}")));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..400 {
        if http.get(format!("{base}/")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (powered_on, watcher) = watch_power(ironic.clone());
    let start = Instant::now();
    let deadline = start + DEADLINE;
    let tasks: Vec<_> = uuids
        .iter()
        .zip(&nodes)
        .map(|(uuid, (bmc, mac))| {
            let body = json!({
                "inventory": {
                    "interfaces": [{"name": "eno1", "mac_address": mac, "ipv4_address": "192.0.2.61", "has_carrier": true}],
                    "cpu": {"count": 4, "architecture": "x86_64"},
                    "memory": {"total": 8_000_000_000u64, "physical_mb": 8192},
                    "disks": [{"name": "/dev/vda", "size": 21_474_836_480u64}],
                    "bmc_address": bmc
                },
                "root_disk": {"name": "/dev/vda", "size": 21_474_836_480u64}
            });
            tokio::spawn(one_node(http.clone(), powered_on.clone(), base.clone(), uuid.clone(), body, deadline))
        })
        .collect();
    let (mut failed, mut start_retries, mut report_retries) = (0, 0, 0);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        match t.await.unwrap_or_else(|e| Err(e.to_string())) {
            Ok((s, r)) => {
                start_retries += s;
                report_retries += r;
            }
            Err(e) => {
                failed += 1;
                *errors.entry(e.chars().take(300).collect()).or_default() += 1;
            }
        }
    }
    let wall = start.elapsed();
    watcher.abort();
    let c = counts(&p);
    let injected: usize = c.injected.values().sum();
    println!(
        "\n{NODES} introspections at once on the real Ironic, {:.0} % of the daemon's Ironic requests answered 408/409/503 by a proxy\n",
        FAULT_RATE * 100.0
    );
    println!(
        "| nodes | failed | wall time | daemon's Ironic requests | injected (408 / 409 / 503) | starts answered 503 then retried | reports answered 503/409 then retried |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {NODES} | {failed} | {:.1} s | {} | {injected} ({} / {} / {}) | {start_retries} | {report_retries} |",
        wall.as_secs_f64(),
        c.forwarded + injected,
        c.injected.get(&408).unwrap_or(&0),
        c.injected.get(&409).unwrap_or(&0),
        c.injected.get(&503).unwrap_or(&0),
    );
    for (e, n) in errors {
        println!("\n{n} × {e}");
    }
}
