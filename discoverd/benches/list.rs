//! Listing statuses with many stored: `cargo bench -p ironic-discoverd
//! --bench list` (`scripts/bench.sh list`).
//!
//! 10 000 ended statuses are stored (nine tenths finished, a tenth in
//! error; written through the store before the daemon starts), then the
//! release daemon answers `GET /v1/introspection?limit=1000` one request
//! at a time, and the same for the second page (`marker`); p50 and p99.
//! With `DISCOVERD_BENCH_INSPECTOR_URL` and `DISCOVERD_BENCH_INSPECTOR_DB`
//! (ironic-inspector 12.5's SQLite file, as `scripts/bench.sh` starts it)
//! the same number of rows goes into its `nodes` table and it is measured
//! the same way, side by side. Only ended rows: ironic-inspector's
//! periodic clean-up removes unfinished nodes that Ironic does not know
//! and times out old ones, which would change the table under the
//! measurement. Prints Markdown.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use discoverd::domain::{NodeId, State, Timestamp};
use discoverd::store::sqlite::SqliteStore;
use discoverd::store::{NewIntrospection, NodeStore};

/// Statuses stored on each side.
const STATUSES: usize = 10_000;
/// Requests per row (after 5 unmeasured ones).
const REQUESTS: usize = 200;

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-b000-{i:012x}")
}

/// Fills our SQLite file through the store, as the daemon writes it.
async fn fill_ours(db: &std::path::Path) {
    let store = SqliteStore::open(db).await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..STATUSES {
        let node: NodeId = uuid(i).parse().unwrap_or_else(|e| panic!("{e:?}"));
        let new = NewIntrospection {
            node,
            bmc_address: None,
            options: Default::default(),
        };
        store
            .start(&new, None, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .transition(node, State::Starting, State::Waiting)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let error = (i % 10 == 0).then_some("bench: failed on purpose");
        store
            .finish(node, State::Waiting, error, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The same rows in ironic-inspector's `nodes` table.
fn fill_inspector(db: &str) {
    let mut conn = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{db}: {e}"));
    conn.busy_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
    for i in 0..STATUSES {
        let (state, error) = match i {
            i if i % 10 == 0 => ("error", Some("bench: failed on purpose")),
            _ => ("finished", None),
        };
        tx.execute(
            "INSERT OR REPLACE INTO nodes (uuid, error, version_id, state, started_at, finished_at, manage_boot) \
             VALUES (?1, ?2, '', ?3, datetime('now', ?4), datetime('now'), 1)",
            rusqlite::params![uuid(i), error, state, format!("-{} seconds", STATUSES - i)],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().unwrap_or_else(|e| panic!("{e}"));
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_daemon(dir: &std::path::Path, db: &std::path::Path) -> (Daemon, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let fake = test_support::FakeIronic::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let conf = dir.join("list.conf");
    std::fs::write(
        &conf,
        format!(
            "[discoverd]\ndatabase = {}\nauth_strategy = noauth\nmanage_firewall = false\nironic_url = {}\n\
listen_address = 127.0.0.1\nlisten_port = {port}\n",
            db.display(),
            fake.url()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
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
    let d = Daemon(child);
    // The fake Ironic lives as long as the process: leak it with the daemon.
    std::mem::forget(fake);
    for _ in 0..400 {
        if reqwest::get(format!("{base}/")).await.is_ok() {
            return (d, base);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("ironic-discoverd did not answer GET / within 10 s");
}

/// p50 and p99 of `REQUESTS` sequential GETs of `url`, and the items of
/// the last answer.
async fn measure(http: &reqwest::Client, url: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(REQUESTS);
    let mut items = 0;
    for i in 0..REQUESTS + 5 {
        let t = Instant::now();
        let r = http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let v: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        if i >= 5 {
            times.push(t.elapsed());
        }
        items = v["introspection"].as_array().map_or(0, Vec::len);
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (p(0.5), p(0.99), items)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn rows(http: &reqwest::Client, who: &str, base: &str) {
    let first = format!("{base}/v1/introspection?limit=1000");
    let (p50, p99, n) = measure(http, &first).await;
    println!("| {who} | first page | {n} | {} | {} |", ms(p50), ms(p99));
    let page: serde_json::Value = http
        .get(&first)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let marker = page["introspection"][999]["uuid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let second = format!("{first}&marker={marker}");
    let (p50, p99, n) = measure(http, &second).await;
    println!(
        "| {who} | second page (marker) | {n} | {} | {} |",
        ms(p50),
        ms(p99)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("list.sqlite");
        let t = Instant::now();
        fill_ours(&db).await;
        eprintln!("stored {STATUSES} statuses in {:.1} s", t.elapsed().as_secs_f64());
        let (_daemon, base) = start_daemon(dir.path(), &db).await;
        let http = reqwest::Client::new();
        println!("\n### `GET /v1/introspection?limit=1000` with {STATUSES} statuses stored\n");
        println!("{REQUESTS} sequential requests per row, one connection.\n");
        println!("| service | request | items | p50 | p99 |");
        println!("|---|---|---:|---:|---:|");
        rows(&http, "ironic-discoverd", &base).await;
        let inspector = std::env::var("DISCOVERD_BENCH_INSPECTOR_URL").ok().filter(|v| !v.is_empty());
        let inspector_db = std::env::var("DISCOVERD_BENCH_INSPECTOR_DB").ok().filter(|v| !v.is_empty());
        match (inspector, inspector_db) {
            (Some(url), Some(db)) => {
                fill_inspector(&db);
                rows(&http, "ironic-inspector 12.5", url.trim_end_matches('/')).await;
            }
            _ => println!(
                "\n(ironic-inspector skipped: set DISCOVERD_BENCH_INSPECTOR_URL and DISCOVERD_BENCH_INSPECTOR_DB, as scripts/bench.sh does)"
            ),
        }
    });
}
