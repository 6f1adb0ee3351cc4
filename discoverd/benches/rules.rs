//! Rules on one IPA-shaped report, with 100 and 1 000 rules loaded, p50
//! and p99 over many runs (our own time; Ironic excluded):
//!   - `rules::apply`: the conditions and actions alone;
//!   - a report's whole rule step as processing runs it
//!     (`RuleBook::apply` on a SQLite store: the version check, the
//!     parsed rules from memory, the node as the hooks leave it, apply);
//!   - the version check alone (`RuleBook::all` with nothing changed), on
//!     SQLite and, when DISCOVERD_TEST_POSTGRES_URL names a server, on
//!     PostgreSQL (one query on the loopback).
//!
//! Run: `cargo bench -p ironic-discoverd --bench rules`
//! (`DISCOVERD_BENCH_RUNS=30` for a smoke run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use discoverd::ironic::Node;
use discoverd::rules::{Rule, RuleBook, apply};
use discoverd::store::rules::RuleStore;
use serde_json::{Value, json};

fn data() -> Value {
    let interfaces: Vec<Value> = (0..4)
        .map(|i| {
            json!({"name": format!("eno{i}"), "mac_address": format!("3c:fd:fe:9c:87:6{i}"),
                        "ipv4_address": format!("192.168.24.{}", 50 + i), "has_carrier": i == 0,
                        "lldp": [[1, "04a4bf0164866f"], [2, "0545746865726e6574312f31"]]})
        })
        .collect();
    let disks: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("/dev/sd{}", (b'a' + i) as char), "size": 480_103_981_056u64 * u64::from(i + 1),
                        "rotational": i > 2, "model": "PERC H730P", "vendor": "DELL", "serial": format!("S{i}")}))
        .collect();
    json!({"inventory": {"interfaces": interfaces, "disks": disks,
                         "cpu": {"model_name": "Intel(R) Xeon(R) Gold 6230", "count": 80, "architecture": "x86_64",
                                 "flags": ["fpu", "vme", "pse", "aes", "vmx", "pdpe1gb", "smx"]},
                         "memory": {"total": 270_000_000_000u64, "physical_mb": 262_144},
                         "bmc_address": "10.0.0.5", "boot": {"current_boot_mode": "uefi"}},
           "memory_mb": 262_144, "cpus": 80, "cpu_arch": "x86_64", "local_gb": 446, "ipmi_address": "10.0.0.5"})
}

fn rule_body(i: usize) -> Value {
    let conditions = match i % 4 {
        0 => json!([{"op": "ge", "field": "memory_mb", "value": 65536 + i}]),
        1 => {
            json!([{"op": "matches", "field": "inventory.interfaces[*].name", "value": format!("eno{}", i % 7), "multiple": "any"}])
        }
        2 => json!([{"op": "in-net", "field": "ipmi_address", "value": format!("10.{}.0.0/16", i % 3)}]),
        _ => json!([{"op": "contains", "field": "inventory.disks[*].model", "value": "H7.0"},
                    {"op": "is-empty", "field": "node://driver_info.deploy_kernel"}]),
    };
    json!({"conditions": conditions, "actions": [
        {"action": "set-capability", "name": format!("c{i}"), "value": "{data[cpu_arch]}"},
        {"action": "add-trait", "name": format!("CUSTOM_T{i}")}]})
}

fn rule(i: usize) -> Rule {
    Rule::parse(&rule_body(i)).unwrap_or_else(|e| panic!("{e}"))
}

fn node() -> Value {
    json!({"uuid": "00000000-0000-4000-8000-000000000001", "driver": "ipmi", "driver_info": {},
           "properties": {"capabilities": "boot_mode:uefi"}, "extra": {}})
}

/// Times `f` `runs` times; prints p50 and p99.
fn report(what: &str, runs: usize, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{what:<44} p50 {:>9.1} µs  p99 {:>9.1} µs  ({runs} runs)",
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
}

/// Runs per measurement; `DISCOVERD_BENCH_RUNS` lowers it for a smoke run.
fn runs(n: usize) -> usize {
    let runs = if n >= 1000 { 300 } else { 2000 };
    std::env::var("DISCOVERD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(runs, |m: usize| m.clamp(1, runs))
}

fn measure(n: usize) {
    let rules: Vec<Rule> = (0..n).map(rule).collect();
    let (node, data) = (node(), data());
    report(&format!("rules::apply, {n} rules"), runs(n), || {
        std::hint::black_box(apply(rules.iter(), &node, &data)).ok();
    });
}

/// A book holding `n` rules in `store`, parsed once already.
async fn book(store: Arc<dyn RuleStore>, n: usize) -> RuleBook {
    let book = RuleBook::new(store);
    book.delete_all().await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        book.create(&rule_body(i)).await.unwrap_or_else(|e| panic!("{e}"));
    }
    book.all().await.unwrap_or_else(|e| panic!("{e}"));
    book
}

fn measure_book(rt: &tokio::runtime::Runtime, label: &str, store: Arc<dyn RuleStore>, n: usize) {
    let book = rt.block_on(book(store, n));
    let node: Node = serde_json::from_value(node()).unwrap_or_else(|e| panic!("{e}"));
    let data = data();
    report(
        &format!("report's rule step ({label}), {n} rules"),
        runs(n),
        || {
            std::hint::black_box(rt.block_on(book.apply(&node, &[], &data))).ok();
        },
    );
    report(
        &format!("version check alone ({label}), {n} rules"),
        runs(0),
        || {
            std::hint::black_box(rt.block_on(book.all())).ok();
        },
    );
}

fn main() {
    for n in [100, 1000] {
        measure(n);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sqlite = rt
        .block_on(discoverd::store::sqlite::SqliteStore::open(
            &dir.path().join("rules.sqlite"),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let sqlite: Arc<dyn RuleStore> = Arc::new(sqlite);
    for n in [100, 1000] {
        measure_book(&rt, "SQLite", sqlite.clone(), n);
    }
    let db = rt
        .block_on(test_support::postgres::TestDatabase::create())
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(db) = db else {
        println!("(no PostgreSQL: DISCOVERD_TEST_POSTGRES_URL unset)");
        return;
    };
    let pg = rt
        .block_on(discoverd::store::postgres::PostgresStore::open(&db.url))
        .unwrap_or_else(|e| panic!("{e}"));
    let pg: Arc<dyn RuleStore> = Arc::new(pg);
    for n in [100, 1000] {
        measure_book(&rt, "PostgreSQL", pg.clone(), n);
    }
    drop(db);
}
