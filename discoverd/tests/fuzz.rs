//! Property-based fuzzing of the daemon's external inputs without HTTP in
//! the way: the whole config loader on random INI files, and the ramdisk
//! payload path (normalisation, every hook, lookup attributes) on random
//! JSON. Each runs for `DISCOVERD_FUZZ_SECONDS` (default 2; see
//! `common::fuzz`).

use std::path::Path;

use common::fuzz::run;
use discoverd::config::Config;
use discoverd::hooks::{HookChain, HookSettings};
use discoverd::processing::{lookup_attributes, normalize};
use proptest::prelude::*;
use serde_json::Value;

const KEYS: &[&str] = &[
    "database",
    "timeout",
    "debug",
    "listen_port",
    "listen_address",
    "processing_hooks",
    "dnsmasq_interface",
    "auth_strategy",
    "authenticate",
    "max_body_size",
    "firewall_mode",
    "os_auth_url",
    "clean_up_period",
];

fn ini() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(KEYS), "[ -~]{0,24}"), 0..10).prop_map(|kv| {
        let mut s = String::from("[discoverd]\n");
        for (k, v) in kv {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    })
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::from),
        Just(Value::from("52:54:00:00:00:01")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![
            Just("inventory"),
            Just("interfaces"),
            Just("macs"),
            Just("cpu"),
            Just("count"),
            Just("disks"),
            Just("size"),
            Just("memory"),
            Just("physical_mb"),
            Just("root_disk"),
            Just("mac"),
            Just("ip"),
            Just("mac_address"),
            Just("ipv4_address"),
            Just("bmc_address"),
            Just("ipmi_address"),
            Just("error"),
            Just("cpus"),
            Just("cpu_arch"),
            Just("memory_mb"),
            Just("local_gb"),
            Just("boot"),
            Just("name"),
        ]
        .prop_map(str::to_owned);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn config_loader_never_panics() {
    run("config_loader", ini(), |text| {
        if let Ok(f) = common::ini::IniFile::parse(Path::new("fuzz.conf"), &text) {
            let _ = Config::from_ini(&f);
        }
        Ok(())
    });
}

#[test]
fn payload_path_never_panics() {
    // Every hook, so the new ones (root device hints, PCI, physnet) are
    // fuzzed too.
    let names: Vec<String> = discoverd::hooks::known()
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    let chain = HookChain::from_names(&names, HookSettings::default()).unwrap_or_else(|e| panic!("{e}"));
    let node: discoverd::ironic::Node = serde_json::from_value(serde_json::json!({"uuid": "u",
        "properties": {"root_device": {"size": ">= 1", "model": "<in> a"},
                       "skip_block_devices": [{"rotational": true}]}}))
    .unwrap_or_else(|e| panic!("{e}"));
    run("continue_payload", json(), |v| {
        if let Ok(mut data) = normalize(v)
            && chain.before_processing(&mut data).is_ok()
        {
            let attrs = lookup_attributes(&data);
            let ports: Vec<discoverd::ironic::Port> = attrs
                .macs
                .iter()
                .filter_map(|m| serde_json::from_value(serde_json::json!({"uuid": "p", "address": m})).ok())
                .collect();
            let _ = chain.before_update(&node, &ports, &mut data);
        }
        Ok(())
    });
}
