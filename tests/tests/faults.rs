//! Fault tolerance with the real binaries: the helper SIGKILLed while the
//! daemon keeps serving and changing the desired state; Ironic failing for
//! a while; the filter converging once things are back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::Method;
use ironic_discoverd_e2e::stack::{Stack, eventually, sorted};
use ironic_discoverd_e2e::{Netns, privileged_available, proc_status_field};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use test_support::{FakeIronic, Fault};

const NODE_A: &str = "7c1a3e70-2b2a-4e55-9a8f-5b0d6a0c0a01";
const NODE_B: &str = "7c1a3e70-2b2a-4e55-9a8f-5b0d6a0c0a02";
const MAC_A: &str = "52:54:00:7a:00:01";
const MAC_B: &str = "52:54:00:7b:00:01";

/// A fake Ironic with nodes A and B, one port each, BMC addresses
/// 192.0.2.`bmc` and the next one.
async fn fake_with_a_and_b(bmc: u8) -> anyhow::Result<FakeIronic> {
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE_A, &format!("192.0.2.{bmc}"));
    fake.add_port(NODE_A, MAC_A);
    fake.add_node(NODE_B, &format!("192.0.2.{}", bmc + 1));
    fake.add_port(NODE_B, MAC_B);
    Ok(fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_killed_then_back_gets_the_full_state() -> anyhow::Result<()> {
    if !privileged_available("fault_helper_kill")? {
        return Ok(());
    }
    let fake = fake_with_a_and_b(31).await?;
    let ns = Netns::new("fault")?;
    // A long periodic sync period: the resync must come from the reconnector.
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let mut stack = Stack::new(
        &fake.url(),
        &ns,
        "br-fault",
        &format!("firewall_update_period = 300{}", Stack::DENY_OPEN),
    )?;
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let both = sorted(&[MAC_A, MAC_B]);
    eventually("the first sync", Duration::from_secs(10), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == both))
    })
    .await?;

    stack.kill_helper();
    // The daemon keeps serving and accepts an introspection meanwhile.
    assert_eq!(stack.introspect(NODE_A).await?, 202);
    stack
        .wait_status(NODE_A, Duration::from_secs(10), |s| s["state"] == "waiting")
        .await?;
    // The old filter is still in the kernel, unchanged.
    assert_eq!(ns.nft_set_macs()?, Some(both.clone()));

    stack.start_helper(&ns)?;
    let back = Instant::now();
    let only_b = sorted(&[MAC_B]);
    // Liveness bound only (the periodic sync is 300 s away, so converging
    // at all proves the reconnector's resync); how fast is measured, not
    // asserted.
    eventually("the resync", Duration::from_secs(60), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == only_b))
    })
    .await?;
    println!(
        "helper back → kernel holds the desired set after {:?}",
        back.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ironic_outage_keeps_the_last_filter_and_loses_no_node() -> anyhow::Result<()> {
    if !privileged_available("fault_ironic_outage")? {
        return Ok(());
    }
    let fake = FakeIronic::start().await?;
    fake.add_node(NODE_A, "192.0.2.41");
    fake.add_port(NODE_A, MAC_A);
    let ns = Netns::new("outage")?;
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let stack = Stack::new(
        &fake.url(),
        &ns,
        "br-out",
        &format!(
            "ironic_conflict_retry_period = 0.05\nironic_timeout = 0.5{}",
            Stack::DENY_OPEN
        ),
    )?;
    let daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let a = sorted(&[MAC_A]);
    eventually("the first sync", Duration::from_secs(10), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == a))
    })
    .await?;
    let threads = || -> anyhow::Result<u64> { Ok(proc_status_field(daemon.pid(), "Threads")?.parse()?) };
    let rss_kib = || -> anyhow::Result<u64> {
        Ok(proc_status_field(daemon.pid(), "VmRSS")?
            .trim_end_matches("kB")
            .trim()
            .parse()?)
    };
    let (threads_before, rss_before) = (threads()?, rss_kib()?);
    // Ironic answers the port listing with 503s, garbage, connections
    // dropped mid-answer and hangs past the client's timeout, for a few
    // seconds: periodic syncs fail and the filter must stay as it was
    // (never emptied), while the API keeps answering.
    let listings_before = fake.calls_to("GET", "/v1/ports").len();
    fake.inject(Method::GET, "/v1/ports", Fault::Status(503), 2);
    fake.inject(Method::GET, "/v1/ports", Fault::BadJson, 1);
    fake.inject(Method::GET, "/v1/ports", Fault::Close, 2);
    fake.inject(Method::GET, "/v1/ports", Fault::Delay(Duration::from_secs(30)), 3);
    // Observed until every injected fault, the hangs last, has been served
    // and two more listings came (a generous liveness bound, not a speed
    // claim): the window covers the hangs themselves.
    const INJECTED: usize = 2 + 1 + 2 + 3;
    let liveness = Instant::now() + Duration::from_secs(60);
    let (mut threads_during, mut rss_during) = (threads_before, rss_before);
    while fake.calls_to("GET", "/v1/ports").len() < listings_before + INJECTED + 2 {
        assert!(
            Instant::now() < liveness,
            "the daemon stopped listing Ironic's ports"
        );
        threads_during = threads_during.max(threads()?);
        rss_during = rss_during.max(rss_kib()?);
        assert_eq!(
            ns.nft_set_macs()?,
            Some(a.clone()),
            "a failed Ironic listing must not change the filter"
        );
        let ready = stack.http.get(stack.url("/")).send().await?;
        assert!(ready.status().is_success());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing piles up while Ironic misbehaves: hung calls are bounded by
    // the timeout and syncs do not overlap (the highest readings of the
    // window; generous bounds, not a benchmark).
    println!(
        "during the outage: threads {threads_before} → {threads_during}, RSS {rss_before} → {rss_during} KiB"
    );
    assert!(
        threads_during <= threads_before + 4,
        "{threads_before} → {threads_during} threads"
    );
    assert!(
        rss_during <= rss_before + 16 * 1024,
        "{rss_before} → {rss_during} KiB"
    );
    // Node locked (409) a few times during the start: retried, not lost.
    fake.inject(
        Method::PATCH,
        &format!("/v1/nodes/{NODE_A}"),
        Fault::Status(409),
        3,
    );
    assert_eq!(stack.introspect(NODE_A).await?, 202);
    let st = stack
        .wait_status(NODE_A, Duration::from_secs(15), |s| s["state"] == "waiting")
        .await?;
    assert!(st["error"].is_null(), "{st}");
    eventually(
        "A's MAC out of the deny set",
        Duration::from_secs(30),
        async || Ok(ns.nft_set_macs()?.filter(|s| s.is_empty())),
    )
    .await?;
    Ok(())
}

/// Node `i` of the kill test: uuid, MAC and BMC address.
fn fleet_node(i: usize) -> (String, String, String) {
    (
        format!("7c1a3e70-2b2a-4e55-9a8f-5b0d6a{i:06x}"),
        format!("52:54:10:00:{:02x}:{:02x}", i / 256, i % 256),
        format!("198.51.100.{}", i % 250 + 1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_with_100_in_flight_keeps_every_status_and_the_filter() -> anyhow::Result<()> {
    if !privileged_available("fault_daemon_kill_100")? {
        return Ok(());
    }
    const FLIGHT: usize = 100;
    const BYSTANDERS: usize = 20;
    const SLOW: usize = 30;
    let fake = FakeIronic::start().await?;
    let nodes: Vec<_> = (0..FLIGHT + BYSTANDERS).map(fleet_node).collect();
    for (uuid, mac, bmc) in &nodes {
        fake.add_node(uuid, bmc);
        fake.add_port(uuid, mac);
    }
    let ns = Arc::new(Netns::new("kill100")?);
    // Auto-discovery on: this test is about the deny set's contents, which
    // deny mode alone empties (closes) while nothing is introspected.
    let stack = Stack::new(
        &fake.url(),
        &ns,
        "br-kill",
        &format!(
            "timeout = 20\nclean_up_period = 1\nprocessing_hooks = ramdisk_error,scheduler,validate_interfaces{}",
            Stack::DENY_OPEN
        ),
    )?;
    let mut daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let every_mac = {
        let mut v: Vec<String> = nodes.iter().map(|n| n.1.clone()).collect();
        v.sort();
        v
    };
    eventually("the first sync", Duration::from_secs(15), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == every_mac))
    })
    .await?;

    // From here to the end, sample the kernel every 50 ms: the table must
    // always be there and always deny the bystanders' MACs, and the MACs of
    // nodes waiting for their ramdisk when the daemon is killed must stay
    // allowed (out of the deny set) until their report is sent.
    let bystanders: Vec<String> = nodes[FLIGHT..].iter().map(|n| n.1.clone()).collect();
    let must_allow: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (ns, stop, must_allow) = (ns.clone(), stop.clone(), must_allow.clone());
        std::thread::spawn(move || -> anyhow::Result<(usize, usize)> {
            let (mut samples, mut allow_checks) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                // A MAC leaves the list before its report is sent: one still
                // listed after the kernel was read had not been reported when
                // it was (a report can finish within the read).
                let listed = || must_allow.lock().map(|v| v.clone()).unwrap_or_default();
                let before = listed();
                let kernel = ns.nft_set_macs()?;
                let after = listed();
                let allowed: Vec<&String> = before.iter().filter(|m| after.contains(m)).collect();
                match kernel {
                    None => anyhow::bail!("the table vanished after {samples} samples"),
                    Some(set) => {
                        if let Some(m) = bystanders.iter().find(|m| set.binary_search(m).is_err()) {
                            anyhow::bail!("bystander {m} not denied after {samples} samples");
                        }
                        if let Some(m) = allowed.iter().find(|m| set.binary_search(m).is_ok()) {
                            anyhow::bail!("in-flight node's {m} denied after {samples} samples");
                        }
                        allow_checks += allowed.len();
                    }
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok((samples, allow_checks))
        })
    };

    // The first SLOW power-ons hang for 3 s: those nodes are mid-start
    // when the daemon dies; the rest are waiting for their ramdisk.
    fake.inject(
        Method::PUT,
        "/v1/nodes/",
        Fault::Delay(Duration::from_secs(3)),
        SLOW,
    );
    for code in stack.introspect_all(nodes[..FLIGHT].iter().map(|n| &n.0)).await? {
        assert_eq!(code, 202);
    }
    let waiting_macs = eventually("most nodes waiting", Duration::from_secs(20), async || {
        let mut macs = Vec::new();
        for (uuid, mac, _) in &nodes[..FLIGHT] {
            if stack.status(uuid).await?.1["state"] == "waiting" {
                macs.push(mac.clone());
            }
        }
        Ok((macs.len() >= FLIGHT - SLOW).then_some(macs))
    })
    .await?;
    let waiting = waiting_macs.len();
    // The filter has caught up with them: their MACs are allowed.
    eventually("waiting nodes allowed", Duration::from_secs(30), async || {
        Ok(ns
            .nft_set_macs()?
            .filter(|s| waiting_macs.iter().all(|m| s.binary_search(m).is_err())))
    })
    .await?;
    if let Ok(mut v) = must_allow.lock() {
        *v = waiting_macs.clone();
    }
    daemon.kill();
    println!(
        "SIGKILLed the daemon with {waiting} nodes waiting, {} mid-start",
        FLIGHT - waiting
    );

    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    // Every status survived; the waiting ones finish on their ramdisk's
    // report, the others time out (1.0 does not resume a start).
    let mut reported = Vec::new();
    for (uuid, mac, bmc) in &nodes[..FLIGHT] {
        let (code, st) = stack.status(uuid).await?;
        assert_eq!(code, 200, "{uuid} lost: {st}");
        assert_eq!(st["finished"], false, "{uuid}: {st}");
        if st["state"] == "waiting" {
            if let Ok(mut v) = must_allow.lock() {
                v.retain(|m| m != mac);
            }
            let body = json!({
                "interfaces": {"em1": {"mac": mac, "ip": "192.0.2.60"}},
                "ipmi_address": bmc, "cpu_arch": "x86_64", "memory_mb": 4096, "cpus": 2, "local_gb": 40
            });
            let (code, answer) = stack.post_continue(&body).await?;
            assert_eq!(code, 200, "{uuid}: {answer}");
            reported.push(uuid.clone());
        }
    }
    assert!(
        reported.len() >= FLIGHT - SLOW,
        "only {} waiting after the restart",
        reported.len()
    );
    for (uuid, _, _) in &nodes[..FLIGHT] {
        let st = stack
            .wait_status(uuid, Duration::from_secs(60), |s| s["finished"] == true)
            .await?;
        if reported.contains(uuid) {
            assert!(st["error"].is_null(), "{uuid}: {st}");
        } else {
            assert_eq!(st["error"], "Introspection timeout", "{uuid}: {st}");
        }
    }
    // Everything finished: every MAC is denied again.
    eventually("every MAC denied again", Duration::from_secs(15), async || {
        Ok(ns.nft_set_macs()?.filter(|s| *s == every_mac))
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let (samples, allow_checks) = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    assert!(allow_checks > 0, "no sample saw the in-flight nodes");
    println!(
        "filter sampled {samples} times: always in place; in-flight MACs allowed in {allow_checks} checks"
    );
    Ok(())
}

/// Fills the file system holding `dir` (a tmpfs) with one file.
fn fill(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Whatever a partial write left: fill the last bytes too.
    let _ = f.write_all(&[0u8; 512]);
    let _ = f.sync_all();
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_gives_clear_errors_and_loses_nothing() -> anyhow::Result<()> {
    if !privileged_available("fault_disk_full")? {
        return Ok(());
    }
    let fake = fake_with_a_and_b(51).await?;
    let ns = Netns::new("diskfull")?;
    let stack = Stack::new(&fake.url(), &ns, "br-full", HOOKS)?;
    let daemon = stack.daemon_on_tmpfs("4m")?;
    stack.wait_ready().await?;
    // The daemon's view of its database directory (its own tmpfs).
    let db_dir = std::path::PathBuf::from(format!("/proc/{}/root", daemon.pid()))
        .join(stack.db_dir().strip_prefix("/")?);
    let patches_before = start_a_and_count_patches(&stack, &fake).await?;

    let filler = fill(&db_dir)?;
    let (code, body) = start(&stack, NODE_B).await?;
    assert_eq!(code, 503, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("disk full"), "{msg}");
    refused_but_readable(&stack, &fake, patches_before).await?;

    // Space back: the same report completes, a new start works.
    std::fs::remove_file(&filler)?;
    recovered(&stack, &fake, patches_before).await?;
    // SQLite resolves /proc/<pid>/root to "/": check a copy of the files.
    let copy = tempfile::tempdir()?;
    for f in ["discoverd.sqlite", "discoverd.sqlite-wal"] {
        if db_dir.join(f).exists() {
            std::fs::copy(db_dir.join(f), copy.path().join(f))?;
        }
    }
    assert_sound(&copy.path().join("discoverd.sqlite"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_gives_clear_errors_and_loses_nothing() -> anyhow::Result<()> {
    if !privileged_available("fault_read_only_db")? {
        return Ok(());
    }
    let fake = fake_with_a_and_b(53).await?;
    let ns = Netns::new("rodb")?;
    let stack = Stack::new(&fake.url(), &ns, "br-ro", HOOKS)?;
    let mut daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let patches_before = start_a_and_count_patches(&stack, &fake).await?;
    daemon.terminate(Duration::from_secs(10))?;

    // Someone made the file read-only for the daemon's user.
    let db = stack.db_dir().join("discoverd.sqlite");
    let mode = |p: &std::path::Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&db, 0o444)?;
    let mut daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let (code, body) = start(&stack, NODE_B).await?;
    assert_eq!(code, 503, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("cannot be written"), "{msg}");
    refused_but_readable(&stack, &fake, patches_before).await?;
    assert!(
        stack.log().contains("read-only"),
        "the start-up log does not warn about the read-only cache:\n{}",
        stack.log()
    );

    // Fixed and restarted: nothing was lost.
    daemon.terminate(Duration::from_secs(10))?;
    // Only the file fixed: SQLite made its -shm/-wal files read-only too,
    // and the error names the one still in the way.
    mode(&db, 0o644)?;
    let mut daemon = stack.daemon()?;
    stack.wait_ready().await?;
    let (code, body) = start(&stack, NODE_B).await?;
    assert_eq!(code, 503, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("discoverd.sqlite-"), "{msg}");
    daemon.terminate(Duration::from_secs(10))?;
    for side in ["-wal", "-shm"] {
        let p = stack.db_dir().join(format!("discoverd.sqlite{side}"));
        if p.exists() {
            mode(&p, 0o644)?;
        }
    }
    let _daemon = stack.daemon()?;
    stack.wait_ready().await?;
    recovered(&stack, &fake, patches_before).await?;
    assert_sound(&db)
}

const HOOKS: &str = "processing_hooks = ramdisk_error,scheduler,validate_interfaces";

fn report_a() -> Value {
    json!({
        "interfaces": {"em1": {"mac": MAC_A, "ip": "192.0.2.61"}},
        "cpu_arch": "x86_64", "memory_mb": 2048, "cpus": 1, "local_gb": 20
    })
}

fn node_a_patches(fake: &FakeIronic) -> usize {
    fake.calls_to("PATCH", &format!("/v1/nodes/{NODE_A}")).len()
}

/// Starts A, waits until it waits for its ramdisk; returns the PATCH count.
async fn start_a_and_count_patches(stack: &Stack, fake: &FakeIronic) -> anyhow::Result<usize> {
    assert_eq!(stack.introspect(NODE_A).await?, 202);
    stack
        .wait_status(NODE_A, Duration::from_secs(10), |s| s["state"] == "waiting")
        .await?;
    Ok(node_a_patches(fake))
}

/// `POST /v1/introspection/<uuid>` with the answer's JSON body.
async fn start(stack: &Stack, uuid: &str) -> anyhow::Result<(u16, Value)> {
    let r = stack
        .http
        .post(stack.url(&format!("/v1/introspection/{uuid}")))
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

/// While the cache cannot be written: a start left no trace, A's report
/// is refused with 503 before Ironic is touched, statuses still read,
/// and readiness says why.
async fn refused_but_readable(stack: &Stack, fake: &FakeIronic, patches_before: usize) -> anyhow::Result<()> {
    assert_eq!(
        stack.status(NODE_B).await?.0,
        404,
        "a refused start leaves no trace"
    );
    let (code, body) = stack.post_continue(&report_a()).await?;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("node cache"),
        "{body}"
    );
    assert_eq!(
        node_a_patches(fake),
        patches_before,
        "Ironic was patched for a refused report"
    );
    let (code, st) = stack.status(NODE_A).await?;
    assert_eq!((code, &st["state"]), (200, &json!("waiting")), "{st}");
    let ready = stack.http.get(stack.url("/readyz")).send().await?;
    assert_eq!(ready.status().as_u16(), 503);
    Ok(())
}

/// Once writable: A's report (the ramdisk retrying) completes and B starts.
async fn recovered(stack: &Stack, fake: &FakeIronic, patches_before: usize) -> anyhow::Result<()> {
    let (code, body) = stack.post_continue(&report_a()).await?;
    assert_eq!(code, 200, "{body}\n{}", stack.log());
    let st = stack
        .wait_status(NODE_A, Duration::from_secs(10), |s| s["finished"] == true)
        .await?;
    assert!(st["error"].is_null(), "{st}");
    // The report itself patched A (the start's patches were counted before),
    // with what the report said.
    assert!(
        node_a_patches(fake) > patches_before,
        "the report did not patch node A ({patches_before} patches before it)"
    );
    let props = fake
        .node(NODE_A)
        .map(|n| n["properties"].clone())
        .unwrap_or_default();
    assert_eq!(props["memory_mb"], "2048", "{props}");
    assert_eq!(stack.introspect(NODE_B).await?, 202);
    stack
        .wait_status(NODE_B, Duration::from_secs(10), |s| s["state"] == "waiting")
        .await?;
    Ok(())
}

/// SQLite's own consistency check, and both nodes recorded.
fn assert_sound(db: &std::path::Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    let nodes: i64 = conn.query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))?;
    assert_eq!(nodes, 2);
    Ok(())
}
