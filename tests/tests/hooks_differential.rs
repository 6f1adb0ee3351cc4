//! The processing hooks and the rules, differentially: the daemon and a
//! real ironic-inspector 12.5 (`DISCOVERD_TEST_INSPECTOR_URL`, with the
//! hooks and options `scripts/inspector.sh` gives it) on the same real
//! Ironic (`DISCOVERD_TEST_IRONIC_URL`) each introspect one node of a pair
//! of identical nodes (root device hints, two ports), fed the same
//! IPA-shaped report (LLDP TLVs on two interfaces, PCI devices, four disks,
//! CPU flags, boot mode, eDeploy `data`, logs), with the same rules loaded
//! (set-attribute, set-capability, add-trait, extend-attribute, scoped to
//! the pair). What Ironic then holds must agree: properties (capabilities
//! included), traits, extra, and the ports' address, pxe_enabled,
//! local_link_connection and physical_network; and in the stored data the
//! LLDP each interface got (`lldp_processed`), `extra`, the root disk and
//! `local_gb`. A third pair gets a `fail` rule: both end in error with the
//! rule's message. Rules are scoped (`inspection_scope`), so they never
//! touch the nodes of other tests sharing the inspector; they are deleted
//! at the end. The deliberate differences are in [`DELIBERATE`] and README.

use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{PlainDaemon, inspector_url, ironic_url, unique_prefixes};
use ironic_discoverd_e2e::stack::eventually;
use reqwest::Method;
use serde_json::{Value, json};

const TEST: &str = "hooks_differential";

/// Paths (in the compared JSON) where the daemon differs on purpose, and
/// why (README lists them too).
const DELIBERATE: &[(&str, &str)] = &[(
    "/extra/newly_discovered",
    "discoverd 1.0's finishing mark extra.newly_discovered = \"true\" is kept for 1.0 users",
)];

/// The hook options `scripts/inspector.sh` gives the inspector, for the
/// daemon (with the inspector's defaults the daemon does not share:
/// `add_ports = pxe`, `overwrite_existing = true`).
const OPTIONS: &str = r#"store_data = database
[processing]
processing_hooks = $default_processing_hooks,lldp_basic,local_link_connection,extra_hardware,physnet_cidr_map
add_ports = pxe
overwrite_existing = true
[capabilities]
boot_mode = true
[pci_devices]
alias = {"vendor_id": "8086", "product_id": "1572", "name": "nic_x710"}
alias = {"vendor_id": "10de", "product_id": "1eb8", "name": "gpu_t4"}
[port_physnet]
cidr_map = 100.64.77.0/24:physnet_diff
"#;

/// A node of a pair and what identifies it.
struct Subject {
    uuid: String,
    mac_prefix: String,
    bmc: String,
}

impl Subject {
    fn mac(&self, i: u8) -> String {
        format!("{}:00:{i:02x}", self.mac_prefix)
    }

    /// `text` with this node's MACs and BMC address replaced by names, so
    /// two nodes' answers compare.
    fn anonymize(&self, v: &Value) -> Value {
        let mut text = v.to_string();
        for i in 0..3 {
            let mac = self.mac(i);
            for form in [mac.clone(), mac.replace(':', "-"), mac.to_ascii_uppercase()] {
                text = text.replace(&form, &format!("MAC{i}"));
            }
        }
        text = text.replace(&self.bmc, "BMC");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// What IPA 13 posts for `s`: three NICs (LLDP on two), four disks.
fn report(s: &Subject, marker: &str) -> Value {
    let gib = 1u64 << 30;
    let full_lldp = json!([
        [1, "04885a92ec5459"],
        [2, format!("05{}", hex("Ethernet1/18"))],
        [3, "0078"],
        [4, hex("Uplink to node1")],
        [5, hex("sw01.lab")],
        [6, hex("Arista Networks EOS 4.20")],
        [7, "00140014"],
        [8, "05010a000001020000000100"],
        [127, "0080c2010064"],
        [127, "0080c202060065"],
        [127, format!("0080c203006408{}", hex("vlan-100"))],
        [127, format!("0080c20300c807{}", hex("storage"))],
        [127, "0080c20402888e"],
        [127, "0080c2060064"],
        [127, "0080c2070300000010"],
        [127, "00120f01036c030010"],
        [127, "00120f042328"],
        [42, "00"],
        [0, ""]
    ]);
    let short_lldp = json!([
        [1, format!("07{}", hex("sw-2"))],
        [2, "03885a92ec5460"],
        [5, hex("sw02")]
    ]);
    json!({
        "inventory": {
            "interfaces": [
                {"name": "eno1", "mac_address": s.mac(0), "ipv4_address": "100.64.77.10", "has_carrier": true,
                 "vendor": "0x8086", "product": "0x1572", "lldp": full_lldp},
                {"name": "eno2", "mac_address": s.mac(1), "ipv4_address": "10.20.0.5", "has_carrier": true,
                 "lldp": short_lldp},
                {"name": "eno3", "mac_address": s.mac(2), "ipv4_address": null, "has_carrier": false, "lldp": null}
            ],
            "cpu": {"model_name": "Intel(R) Xeon(R) Gold 6230", "count": 16, "architecture": "x86_64",
                    "flags": ["fpu", "vmx", "aes", "pse", "pdpe1gb", "sse2"]},
            "memory": {"total": 16 * gib, "physical_mb": 16384},
            "disks": [
                {"name": "/dev/sda", "model": "ST1000NM0055", "size": 1_000_204_886_016_u64, "rotational": true,
                 "serial": "ZBS0001", "vendor": "SEAGATE"},
                {"name": "/dev/sdb", "model": "Micron_5200", "size": 480_103_981_056_u64, "rotational": false,
                 "serial": "MIC0002", "vendor": "ATA"},
                {"name": "/dev/sdc", "model": "INTEL SSDSC2KB24", "size": 240_057_409_536_u64, "rotational": false,
                 "serial": "INT0003", "vendor": "ATA"},
                {"name": "/dev/sr0", "model": "Virtual CD", "size": 1024, "rotational": true}
            ],
            "bmc_address": s.bmc,
            "boot": {"current_boot_mode": "uefi", "pxe_interface": format!("01-{}", s.mac(0).replace(':', "-"))},
            "system_vendor": {"manufacturer": "Dell Inc.", "product_name": "PowerEdge R640", "serial_number": marker}
        },
        "pci_devices": [
            {"vendor_id": "8086", "product_id": "1572"}, {"vendor_id": "8086", "product_id": "1572"},
            {"vendor_id": "10de", "product_id": "1eb8"}, {"vendor_id": "1234", "product_id": "5678"}
        ],
        "boot_interface": format!("01-{}", s.mac(0).replace(':', "-")),
        "data": [["cpu", "logical", "number", "16"], ["memory", "total", "size", "17179869184"],
                 ["disk", "sda", "size", "1000"], ["short"]],
        "logs": "aGVsbG8gd29ybGQ="
    })
}

/// The rules, scoped to the pairs.
fn rules(scope: &str, fail_scope: &str) -> Vec<Value> {
    vec![
        json!({"description": "hooks differential: enrich", "scope": scope,
            "conditions": [
                {"op": "ge", "field": "memory_mb", "value": 8192},
                {"op": "eq", "field": "data://extra.cpu.logical.number", "value": 16},
                {"op": "matches", "field": "data://all_interfaces.eno1.lldp_processed.switch_system_name", "value": "sw0.*"}],
            "actions": [
                {"action": "set-attribute", "path": "/extra/switch",
                 "value": "{data[all_interfaces][eno1][lldp_processed][switch_system_name]}"},
                {"action": "set-attribute", "path": "/properties/cpu_model", "value": "{data[inventory][cpu][model_name]}"},
                {"action": "set-capability", "name": "disk_label", "value": "gpt"},
                {"action": "extend-attribute", "path": "/extra/tags", "value": "lldp", "unique": true},
                {"action": "add-trait", "name": "CUSTOM_HOOKS_DIFF"}]}),
        json!({"description": "hooks differential: by network", "scope": scope,
            "conditions": [{"op": "in-net", "field": "data://inventory.interfaces[0].ipv4_address", "value": "100.64.77.0/24"}],
            "actions": [{"action": "add-trait", "name": "CUSTOM_RACK_77"},
                        {"action": "extend-attribute", "path": "/extra/tags", "value": "rack77"}]}),
        // `node://` on a field the daemon itself has no use for.
        json!({"description": "hooks differential: by resource class", "scope": scope,
            "conditions": [{"op": "eq", "field": "node://resource_class", "value": "hooks-diff-gold"}],
            "actions": [{"action": "set-attribute", "path": "/extra/by_class", "value": "gold"}]}),
        json!({"description": "hooks differential: fail", "scope": fail_scope, "conditions": [],
            "actions": [{"action": "fail", "message": "hooks differential: refused by rule"}]}),
    ]
}

async fn enroll(ironic: &IronicRest, tag: u8, scope: &str) -> anyhow::Result<Subject> {
    let (mac_prefix, bmc) = unique_prefixes(tag);
    let s = Subject {
        uuid: String::new(),
        mac_prefix,
        bmc,
    };
    let uuid = ironic.enroll(&s.bmc, &s.mac(0)).await?;
    ironic
        .send(
            Method::POST,
            "/v1/ports",
            Some(json!({"address": s.mac(1), "node_uuid": uuid})),
        )
        .await?;
    ironic
        .send(
            Method::PATCH,
            &format!("/v1/nodes/{uuid}"),
            Some(json!([
                {"op": "add", "path": "/properties/root_device", "value": {"size": ">= 300", "rotational": false}},
                {"op": "add", "path": "/properties/inspection_scope", "value": scope},
                {"op": "add", "path": "/properties/capabilities", "value": "boot_mode:bios,profile:compute"},
                {"op": "add", "path": "/resource_class", "value": "hooks-diff-gold"}
            ])),
        )
        .await?;
    Ok(Subject { uuid, ..s })
}

struct Service<'a> {
    name: &'static str,
    url: String,
    http: &'a reqwest::Client,
}

impl Service<'_> {
    async fn status(&self, uuid: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/v1/introspection/{uuid}", self.url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Starts introspection, waits for `waiting`, posts the report; the
    /// final status.
    async fn introspect(&self, s: &Subject, report: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}/v1/introspection/{}", self.url, s.uuid))
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "{}: start answered {}",
            self.name,
            r.status()
        );
        eventually(
            &format!("{} to wait", self.name),
            Duration::from_secs(30),
            async || Ok((self.status(&s.uuid).await?["state"] == "waiting").then_some(())),
        )
        .await?;
        let r = self
            .http
            .post(format!("{}/v1/continue", self.url))
            .json(&report)
            .send()
            .await?;
        let code = r.status();
        let body = r.text().await?;
        anyhow::ensure!(
            code.as_u16() < 500,
            "{}: continue answered {code}: {body}",
            self.name
        );
        eventually(
            &format!("{} to finish", self.name),
            Duration::from_secs(30),
            async || {
                let st = self.status(&s.uuid).await?;
                Ok((st["finished"] == true).then_some(st))
            },
        )
        .await
    }

    async fn data(&self, uuid: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/v1/introspection/{uuid}/data", self.url))
            .send()
            .await?
            .json()
            .await?)
    }
}

/// What Ironic holds of the node after introspection.
async fn in_ironic(ironic: &IronicRest, s: &Subject) -> anyhow::Result<Value> {
    let node = ironic
        .send_at("1.37", Method::GET, &format!("/v1/nodes/{}", s.uuid), None)
        .await?;
    let mut ports: Vec<Value> = ironic
        .send_at("1.37", Method::GET, &format!("/v1/ports/detail?node={}", s.uuid), None)
        .await?["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            json!({"address": p["address"], "pxe_enabled": p["pxe_enabled"],
                   "local_link_connection": p["local_link_connection"], "physical_network": p["physical_network"]})
        })
        .collect();
    ports.sort_by_key(|p| p["address"].as_str().map(str::to_owned));
    let mut traits: Vec<Value> = node["traits"].as_array().cloned().unwrap_or_default();
    traits.sort_by_key(|t| t.as_str().map(str::to_owned));
    Ok(s.anonymize(&json!({
        "properties": node["properties"], "extra": node["extra"], "traits": traits, "ports": ports
    })))
}

/// What the stored data says of the hooks' work.
fn hook_data(s: &Subject, d: &Value) -> Value {
    let lldp: serde_json::Map<String, Value> = d["all_interfaces"]
        .as_object()
        .map(|all| {
            all.iter()
                .map(|(name, i)| {
                    (
                        name.clone(),
                        json!({"lldp_processed": i["lldp_processed"], "pxe": i["pxe"]}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    s.anonymize(&json!({
        "all_interfaces": lldp, "extra": d["extra"], "root_disk": d["root_disk"]["name"],
        "local_gb": d["local_gb"], "has_data": d.get("data").is_some(), "has_logs": d.get("logs").is_some()
    }))
}

/// Every path where `a` and `b` differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let null = Value::Null;
                diff(
                    &format!("{path}/{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: daemon {a}, ironic-inspector {b}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_rules_give_what_ironic_inspector_gives() -> anyhow::Result<()> {
    let Some(ironic_url) = ironic_url(TEST)? else {
        return Ok(());
    };
    let Some(inspector) = inspector_url(TEST)? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&ironic_url)?;
    let p = std::process::id();
    let (scope, fail_scope) = (format!("hooks-diff-{p}"), format!("hooks-diff-fail-{p}"));
    let ours = enroll(&ironic, 0x70, &scope).await?;
    let theirs = enroll(&ironic, 0x71, &scope).await?;
    let ours_fail = enroll(&ironic, 0x72, &fail_scope).await?;
    let theirs_fail = enroll(&ironic, 0x73, &fail_scope).await?;
    // The daemon keeps the ramdisk's logs of failed runs (the inspector
    // here has no ramdisk_logs_dir: only the daemon's files are checked).
    let logs = tempfile::tempdir()?;
    ironic_discoverd_e2e::give_to_daemon_user(&[logs.path()])?;
    let options = OPTIONS.replace(
        "[processing]\n",
        &format!("[processing]\nramdisk_logs_dir = {}\n", logs.path().display()),
    );
    let daemon = PlainDaemon::start(&ironic_url, &options).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let a = Service {
        name: "the daemon",
        url: daemon.url.clone(),
        http: &http,
    };
    let b = Service {
        name: "ironic-inspector",
        url: inspector.trim_end_matches('/').to_owned(),
        http: &http,
    };
    let mut theirs_rules = Vec::new();
    for rule in rules(&scope, &fail_scope) {
        for svc in [&a, &b] {
            let r = http
                .post(format!("{}/v1/rules", svc.url))
                .header("X-OpenStack-Ironic-Inspector-API-Version", "1.6")
                .json(&rule)
                .send()
                .await?;
            let code = r.status();
            let v: Value = r.json().await?;
            anyhow::ensure!(code.is_success(), "{}: rule refused ({code}): {v}", svc.name);
            if svc.name == b.name {
                theirs_rules.push(v["uuid"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    let outcome = async {
        let marker = format!("hd-{p}");
        let (sa, sb) = tokio::join!(
            a.introspect(&ours, report(&ours, &marker)),
            b.introspect(&theirs, report(&theirs, &marker))
        );
        let (sa, sb) = (sa.map_err(|e| e.context(daemon.log()))?, sb?);
        anyhow::ensure!(
            sa["error"].is_null(),
            "the daemon failed the node: {sa}\n{}",
            daemon.log()
        );
        anyhow::ensure!(sb["error"].is_null(), "ironic-inspector failed the node: {sb}");
        let mut differences = Vec::new();
        let (ironic_ours, ironic_theirs) = (
            in_ironic(&ironic, &ours).await?,
            in_ironic(&ironic, &theirs).await?,
        );
        // The `node://resource_class` rule held for both (equal would
        // also be neither).
        anyhow::ensure!(
            ironic_theirs["extra"]["by_class"] == "gold",
            "the inspector did not apply the node:// rule: {ironic_theirs}"
        );
        diff("", &ironic_ours, &ironic_theirs, &mut differences);
        diff(
            "/data",
            &hook_data(&ours, &a.data(&ours.uuid).await?),
            &hook_data(&theirs, &b.data(&theirs.uuid).await?),
            &mut differences,
        );
        // The fail rule: both fail the node with its message.
        let (fa, fb) = tokio::join!(
            a.introspect(&ours_fail, report(&ours_fail, &marker)),
            b.introspect(&theirs_fail, report(&theirs_fail, &marker))
        );
        let (fa, fb) = (fa?, fb?);
        diff("/fail/error", &fa["error"], &fb["error"], &mut differences);
        // Logs: kept for the failed run only, as sent, mode 0600.
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(logs.path())?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        anyhow::ensure!(files.len() == 1, "ramdisk logs: {files:?}");
        let name = files[0]
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        anyhow::ensure!(
            name.starts_with(&format!("{}_", ours_fail.uuid)) && name.ends_with(".tar.gz"),
            "ramdisk log file {name}"
        );
        anyhow::ensure!(std::fs::read(&files[0])? == b"hello world", "ramdisk log content");
        use std::os::unix::fs::PermissionsExt;
        anyhow::ensure!(std::fs::metadata(&files[0])?.permissions().mode() & 0o777 == 0o600);
        anyhow::ensure!(
            fb["error"] == "hooks differential: refused by rule",
            "ironic-inspector: {fb}"
        );
        differences.retain(|d| {
            let allowed = DELIBERATE.iter().find(|(path, _)| d.starts_with(path));
            if let Some((_, why)) = allowed {
                eprintln!("{d}: differs on purpose: {why}");
            }
            allowed.is_none()
        });
        anyhow::ensure!(
            differences.is_empty(),
            "{} difference(s) from ironic-inspector 12.5:\n  {}",
            differences.len(),
            differences.join("\n  ")
        );
        Ok(())
    }
    .await;
    // The inspector is shared: its rules go, whatever happened.
    for uuid in theirs_rules {
        let _ = http.delete(format!("{}/v1/rules/{uuid}", b.url)).send().await;
    }
    outcome
}
