//! Rules on one IPA-shaped report: the time `rules::apply` takes (our own
//! time; Ironic excluded) with 100 and 1 000 rules loaded, p50 and p99
//! over many runs. Run: `cargo bench -p ironic-discoverd --bench rules`.

use std::time::{Duration, Instant};

use discoverd::rules::{Rule, apply};
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

fn rule(i: usize) -> Rule {
    let conditions = match i % 4 {
        0 => json!([{"op": "ge", "field": "memory_mb", "value": 65536 + i}]),
        1 => {
            json!([{"op": "matches", "field": "inventory.interfaces[*].name", "value": format!("eno{}", i % 7), "multiple": "any"}])
        }
        2 => json!([{"op": "in-net", "field": "ipmi_address", "value": format!("10.{}.0.0/16", i % 3)}]),
        _ => json!([{"op": "contains", "field": "inventory.disks[*].model", "value": "H7.0"},
                    {"op": "is-empty", "field": "node://driver_info.deploy_kernel"}]),
    };
    let body = json!({"conditions": conditions, "actions": [
        {"action": "set-capability", "name": format!("c{i}"), "value": "{data[cpu_arch]}"},
        {"action": "add-trait", "name": format!("CUSTOM_T{i}")}]});
    Rule::parse(&body).unwrap_or_else(|e| panic!("{e}"))
}

fn measure(n: usize) {
    let rules: Vec<Rule> = (0..n).map(rule).collect();
    let node = json!({"uuid": "u", "driver": "ipmi", "driver_info": {}, "properties": {"capabilities": "boot_mode:uefi"}, "extra": {}});
    let data = data();
    let runs = if n >= 1000 { 300 } else { 2000 };
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let e = apply(rules.iter(), &node, &data);
        times.push(t.elapsed());
        std::hint::black_box(e).ok();
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "rules::apply with {n:>5} rules: p50 {:>8.1} µs  p99 {:>8.1} µs  ({runs} runs)",
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
}

fn main() {
    for n in [100, 1000] {
        measure(n);
    }
}
