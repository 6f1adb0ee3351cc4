//! Today's python clients against the daemon on a real Ironic: the
//! `openstack baremetal introspection ...` commands of
//! python-ironic-inspector-client 5.4 under python-openstackclient (both
//! pinned in `scripts/pyenv.sh clients`), noauth, `--inspector-url`. Each
//! command exits 0 and what it prints (`-f json`) is what the daemon holds,
//! read back over its own API. Needs `DISCOVERD_TEST_IRONIC_URL` and the
//! venv; skips without them, fails under `DISCOVERD_REQUIRE_PRIVILEGED=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{PlainDaemon, ironic_url, openstack_cli};
use ironic_discoverd_e2e::stack::eventually;
use serde_json::{Value, json};

const TEST: &str = "openstack_cli";

/// The CLI pointed at the daemon.
struct Osc {
    bin: PathBuf,
    url: String,
}

impl Osc {
    /// Runs `openstack baremetal introspection <args>`; a non-zero exit is
    /// an error with its stderr; returns stdout. The future owns what it
    /// needs, so several can run side by side.
    fn run(&self, args: &[&str]) -> impl Future<Output = anyhow::Result<String>> + use<> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--os-auth-type", "none", "--inspector-url", &self.url])
            .args(["baremetal", "introspection"])
            .args(args);
        for var in [
            "OS_CLOUD",
            "OS_AUTH_URL",
            "OS_TOKEN",
            "INSPECTOR_URL",
            "INSPECTOR_VERSION",
        ] {
            cmd.env_remove(var);
        }
        let shown = args.join(" ");
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
            anyhow::ensure!(
                out.status.success(),
                "openstack baremetal introspection {shown} exited {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    }

    /// Like [`Osc::run`] with `-f json`, parsed.
    fn json(&self, args: &[&str]) -> impl Future<Output = anyhow::Result<Value>> + use<> {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let run = self.run(&all);
        let shown = args.join(" ");
        async move {
            let out = run.await?;
            serde_json::from_str(&out).map_err(|e| anyhow::anyhow!("{shown} printed no JSON ({e}): {out}"))
        }
    }
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(u16, Value)> {
    let r = http.get(url).send().await?;
    let code = r.status().as_u16();
    Ok((code, r.json().await.unwrap_or(Value::Null)))
}

/// A status as `introspection status -f json` shows it: every field but
/// `links`.
fn shown_status(daemon: &Value) -> Value {
    let mut v = daemon.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("links");
    }
    v
}

/// A status as a row of `introspection list -f json`.
fn list_row(s: &Value) -> Value {
    json!({"UUID": s["uuid"], "Started at": s["started_at"], "Finished at": s["finished_at"], "Error": s["error"]})
}

fn flat_payload(mac: &str, bmc: &str) -> Value {
    json!({
        "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.70"}},
        "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 2048, "cpus": 2, "local_gb": 20
    })
}

fn write(dir: &Path, name: &str, v: &Value) -> anyhow::Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v)?)?;
    Ok(p.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_baremetal_introspection_commands_match_the_daemon() -> anyhow::Result<()> {
    let Some(ironic_url) = ironic_url(TEST)? else {
        return Ok(());
    };
    let Some(bin) = openstack_cli(TEST)? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&ironic_url)?;
    let p = std::process::id();
    let nodes: Vec<(String, String)> = (0..3)
        .map(|i| {
            (
                format!("52:c1:{:02x}:{:02x}:00:{i:02x}", (p >> 8) & 0xff, p & 0xff),
                format!("198.51.193.{}", (p % 80) * 3 + i),
            )
        })
        .collect();
    // Independent steps run side by side: each command is a python start-up.
    let (a, b, c) = tokio::try_join!(
        ironic.enroll(&nodes[0].1, &nodes[0].0),
        ironic.enroll(&nodes[1].1, &nodes[1].0),
        ironic.enroll(&nodes[2].1, &nodes[2].0),
    )?;
    let uuids = [a, b, c];
    let daemon = PlainDaemon::start(
        &ironic_url,
        "store_data = database\nprocessing_hooks = ramdisk_error,scheduler,validate_interfaces",
    )
    .await?;
    let base = daemon.url.clone();
    let osc = Osc {
        bin,
        url: base.clone(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let status = async |u: &str| -> anyhow::Result<Value> {
        let (code, v) = get(&http, &format!("{base}/v1/introspection/{u}")).await?;
        anyhow::ensure!(code == 200, "status of {u}: {code} {v}");
        Ok(v)
    };
    let wait_state = async |u: &str, state: &str| -> anyhow::Result<Value> {
        eventually(&format!("{u} {state}"), Duration::from_secs(60), async || {
            let v = status(u).await?;
            Ok((v["state"] == state).then_some(v))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", daemon.log()))
    };

    // start: three nodes in one command; without --wait it prints no rows.
    let started = osc.json(&["start", &uuids[0], &uuids[1], &uuids[2]]).await?;
    assert_eq!(started, json!([]));
    for u in &uuids {
        wait_state(u, "waiting").await?;
    }

    // The first node's ramdisk reports; it finishes.
    let (mac, bmc) = &nodes[0];
    let r = http
        .post(format!("{base}/v1/continue"))
        .json(&flat_payload(mac, bmc))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await?);
    wait_state(&uuids[0], "finished").await?;

    // status: every field but links, as the daemon holds it.
    let shown = tokio::try_join!(
        osc.json(&["status", &uuids[0]]),
        osc.json(&["status", &uuids[1]]),
        osc.json(&["status", &uuids[2]]),
    )?;
    for (u, shown) in uuids.iter().zip([shown.0, shown.1, shown.2]) {
        assert_eq!(shown, shown_status(&status(u).await?), "{u}");
    }

    // A name works too, at the API version the command asks by default (1.0).
    let name = format!("osc-{p}");
    ironic
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/nodes/{}", uuids[2]),
            Some(json!([{"op": "add", "path": "/name", "value": name}])),
        )
        .await?;
    assert_eq!(
        osc.json(&["status", &name]).await?,
        shown_status(&status(&uuids[2]).await?)
    );

    // abort the second; the daemon records it.
    assert_eq!(osc.run(&["abort", &uuids[1]]).await?, "");
    let aborted = wait_state(&uuids[1], "error").await?;
    assert_eq!(aborted["finished"], true, "{aborted}");
    assert_eq!(osc.json(&["status", &uuids[1]]).await?, shown_status(&aborted));

    // list: the rows and their order are the daemon's, pages included.
    let (_, all) = get(&http, &format!("{base}/v1/introspection")).await?;
    let all: Vec<Value> = all["introspection"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 3, "{all:?}");
    let rows: Vec<Value> = all.iter().map(list_row).collect();
    let (m0, m1) = (
        all[0]["uuid"].as_str().unwrap_or_default(),
        all[1]["uuid"].as_str().unwrap_or_default(),
    );
    let lists = tokio::try_join!(
        osc.json(&["list"]),
        osc.json(&["list", "--limit", "2"]),
        osc.json(&["list", "--marker", m0, "--limit", "1"]),
        osc.json(&["list", "--marker", m1]),
    )?;
    assert_eq!(lists.0, json!(rows));
    assert_eq!(lists.1, json!(rows[..2]));
    assert_eq!(lists.2, json!(rows[1..2]));
    assert_eq!(lists.3, json!(rows[2..]));

    // data save: processed to stdout, unprocessed to a file.
    let (code, processed) = get(&http, &format!("{base}/v1/introspection/{}/data", uuids[0])).await?;
    assert_eq!(code, 200, "{processed}");
    let file = daemon.dir.path().join("unprocessed.json");
    let file_arg = file.display().to_string();
    let (saved, _) = tokio::try_join!(
        osc.run(&["data", "save", &uuids[0]]),
        osc.run(&["data", "save", "--unprocessed", "--file", &file_arg, &uuids[0]]),
    )?;
    assert_eq!(serde_json::from_str::<Value>(&saved)?, processed);
    let (_, raw) = get(
        &http,
        &format!("{base}/v1/introspection/{}/data/unprocessed", uuids[0]),
    )
    .await?;
    assert_eq!(serde_json::from_slice::<Value>(&std::fs::read(&file)?)?, raw);
    assert_eq!(raw["ipmi_address"], json!(bmc), "{raw}");

    // reprocess: the stored data runs again and the node finishes again.
    let before = status(&uuids[0]).await?;
    assert_eq!(osc.run(&["reprocess", &uuids[0]]).await?, "");
    let again = eventually(
        "the reprocessing to finish",
        Duration::from_secs(60),
        async || {
            let v = status(&uuids[0]).await?;
            Ok((v["state"] == "finished" && v["finished_at"] != before["finished_at"]).then_some(v))
        },
    )
    .await?;
    assert_eq!(again["error"], Value::Null, "{again}");

    // rules: import two from one file, list, show, delete one, purge.
    let rules = json!([
        {"description": "osc rule one", "conditions": [{"op": "ge", "field": "memory_mb", "value": 1024}],
         "actions": [{"action": "set-attribute", "path": "/extra/osc_one", "value": "yes"}]},
        {"description": "osc rule two", "actions": [{"action": "set-attribute", "path": "/extra/osc_two", "value": 2}]}
    ]);
    let path = write(daemon.dir.path(), "rules.json", &rules)?;
    let imported = osc.json(&["rule", "import", &path]).await?;
    let (_, held) = get(&http, &format!("{base}/v1/rules")).await?;
    let held: Vec<Value> = held["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(held.len(), 2, "{held:?}");
    let rule_rows: Vec<Value> = held
        .iter()
        .map(|r| json!({"UUID": r["uuid"], "Description": r["description"]}))
        .collect();
    assert_eq!(imported, json!(rule_rows));
    let first = held[0]["uuid"].as_str().unwrap_or_default();
    let second = held[1]["uuid"].as_str().unwrap_or_default();
    let (listed, show0, show1) = tokio::try_join!(
        osc.json(&["rule", "list"]),
        osc.json(&["rule", "show", first]),
        osc.json(&["rule", "show", second]),
    )?;
    assert_eq!(listed, json!(rule_rows));
    for (uuid, shown) in [(first, show0), (second, show1)] {
        let (code, mut full) = get(&http, &format!("{base}/v1/rules/{uuid}")).await?;
        assert_eq!(code, 200, "{full}");
        if let Some(o) = full.as_object_mut() {
            o.remove("links");
        }
        assert_eq!(shown, full);
    }
    assert_eq!(osc.run(&["rule", "delete", first]).await?, "");
    assert_eq!(get(&http, &format!("{base}/v1/rules/{first}")).await?.0, 404);
    assert_eq!(osc.json(&["rule", "list"]).await?, json!(rule_rows[1..]));
    assert_eq!(osc.run(&["rule", "purge"]).await?, "");
    assert_eq!(
        get(&http, &format!("{base}/v1/rules")).await?.1,
        json!({"rules": []})
    );
    assert_eq!(osc.json(&["rule", "list"]).await?, json!([]));
    Ok(())
}
