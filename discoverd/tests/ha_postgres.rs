//! Several daemons, one PostgreSQL (issue 16): in-process daemons
//! (`TestApp`) sharing one real database and one fake Ironic. What one
//! daemon writes the others see at once, a report may land on any of
//! them, and the clean-up runs once per period across them all.

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use discoverd::domain::{NodeId, State, Timestamp};
use discoverd::periodic::{PeriodicSettings, claimed_clean_up};
use discoverd::store::{NewIntrospection, Options};
use serde_json::{Value, json};
use test_support::postgres::TestDatabase;
use test_support::{FakeIronic, Fault, TestApp, call};

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn mac(i: usize) -> String {
    format!("52:54:00:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff)
}

fn bmc(i: usize) -> String {
    format!("10.0.{}.{}", (i >> 8) & 0xff, i & 0xff)
}

fn add(fake: &FakeIronic, i: usize) {
    fake.add_node(&uuid(i), &bmc(i));
    fake.add_port(&uuid(i), &mac(i));
}

fn report(i: usize) -> Value {
    json!({"ipmi_address": bmc(i), "interfaces": {"eth0": {"mac": mac(i), "ip": "192.0.2.10"}},
           "cpus": 2, "cpu_arch": "x86_64", "memory_mb": 2048, "local_gb": 20})
}

async fn start(r: &Router, i: usize) -> anyhow::Result<()> {
    let (code, v) = call(r, Method::POST, &format!("/v1/introspection/{}", uuid(i)), None).await?;
    anyhow::ensure!(code == StatusCode::ACCEPTED, "start {i}: {code} {v}");
    Ok(())
}

async fn status(r: &Router, i: usize) -> anyhow::Result<(StatusCode, Value)> {
    call(r, Method::GET, &format!("/v1/introspection/{}", uuid(i)), None).await
}

/// Liveness bound only (not a speed claim).
const LIVENESS: Duration = Duration::from_secs(20);

async fn wait(r: &Router, i: usize, f: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let (code, v) = status(r, i).await?;
        if code == StatusCode::OK && f(&v) {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node {i} never matched: {code} {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `n` daemons on one new database and one fake Ironic; `None`: no server, skip.
async fn cluster(n: usize, extra: &str) -> anyhow::Result<Option<(FakeIronic, TestDatabase, Vec<TestApp>)>> {
    let Some(db) = TestDatabase::create().await? else {
        return Ok(None);
    };
    let fake = FakeIronic::start().await?;
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(TestApp::on_database(&fake.url(), Some(&db.url), extra).await?);
    }
    Ok(Some((fake, db, apps)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_one_daemon_is_seen_at_once_by_the_others() -> anyhow::Result<()> {
    let Some((fake, _db, apps)) = cluster(3, "").await? else {
        return Ok(());
    };
    for i in 0..30 {
        add(&fake, i);
        start(&apps[i % 3].router, i).await?;
        for (k, other) in apps.iter().enumerate() {
            let (code, v) = status(&other.router, i).await?;
            anyhow::ensure!(
                code == StatusCode::OK,
                "node {i} started on {} unknown to {k}: {v}",
                i % 3
            );
        }
    }
    let listed = apps[2]
        .app
        .store
        .list(&discoverd::store::ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await?
        .len();
    anyhow::ensure!(listed == 30, "daemon 2 lists {listed} of 30");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_at_b_waits_for_the_start_flow_running_on_a() -> anyhow::Result<()> {
    let Some((fake, _db, apps)) = cluster(2, "").await? else {
        return Ok(());
    };
    let (a, b) = (&apps[0], &apps[1]);
    add(&fake, 1);
    // A's reboot is slow: the node stays `starting` for a second.
    fake.inject(
        Method::PUT,
        &format!("/v1/nodes/{}/states/power", uuid(1)),
        Fault::Delay(Duration::from_secs(1)),
        1,
    );
    start(&a.router, 1).await?;
    // The ramdisk reports to B at once; B has no event of A's start flow
    // and must see A's progress in the database (its hold is 10 s).
    let (code, v) = call(&b.router, Method::POST, "/v1/continue", Some(report(1))).await?;
    anyhow::ensure!(code == StatusCode::OK, "report at B: {code} {v}");
    let st = wait(&a.router, 1, |v| v["finished"] == true).await?;
    anyhow::ensure!(st["error"] == Value::Null, "{st}");
    let power: Vec<Value> = fake
        .calls_to("PUT", &format!("/v1/nodes/{}/states/power", uuid(1)))
        .into_iter()
        .filter_map(|c| c.body.map(|b| b["target"].clone()))
        .collect();
    anyhow::ensure!(
        power == vec![json!("rebooting"), json!("power off")],
        "the reboot (A) came before the report was processed (B): {power:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reports_racing_on_two_daemons_process_the_node_once() -> anyhow::Result<()> {
    let Some((fake, _db, apps)) = cluster(2, "").await? else {
        return Ok(());
    };
    for i in 0..10 {
        add(&fake, i);
        start(&apps[0].router, i).await?;
        wait(&apps[1].router, i, |v| v["state"] == "waiting").await?;
        let (ra, rb) = (apps[0].router.clone(), apps[1].router.clone());
        let one = tokio::spawn(async move { call(&ra, Method::POST, "/v1/continue", Some(report(i))).await });
        let two = tokio::spawn(async move { call(&rb, Method::POST, "/v1/continue", Some(report(i))).await });
        let mut codes = vec![one.await??.0, two.await??.0];
        codes.sort();
        // The loser sees the node busy (409), or no longer waiting (400),
        // or, when the winner's whole processing ran before its lookup,
        // no node waiting for these MACs at all (404). Never two 200s.
        anyhow::ensure!(
            codes == vec![StatusCode::OK, StatusCode::CONFLICT]
                || codes == vec![StatusCode::OK, StatusCode::BAD_REQUEST]
                || codes == vec![StatusCode::OK, StatusCode::NOT_FOUND],
            "node {i}: {codes:?}"
        );
        wait(&apps[0].router, i, |v| v["finished"] == true).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_up_runs_once_per_period_across_daemons() -> anyhow::Result<()> {
    let Some((_fake, _db, apps)) = cluster(3, "").await? else {
        return Ok(());
    };
    let period = Duration::from_millis(800);
    let settings = PeriodicSettings {
        manage_firewall: false,
        firewall_update_period: Duration::from_secs(15),
        timeout: Some(Duration::from_secs(1)),
        node_status_keep_time: Duration::from_secs(3600),
        clean_up_period: period,
    };
    // A node started long ago: the first clean-up times it out.
    let node: NodeId = uuid(1).parse()?;
    let new = NewIntrospection {
        node,
        bmc_address: None,
        options: Options::new(),
    };
    apps[0]
        .app
        .store
        .start(&new, None, Timestamp::now().minus(Duration::from_secs(60)))
        .await?;
    let round = || async {
        let runs = futures_join(apps.iter().map(|t| {
            let l = t.app.lifecycle.clone();
            async move { claimed_clean_up(&l, &settings).await }
        }))
        .await?;
        anyhow::Ok(runs)
    };
    let first = round().await?;
    let ran: Vec<_> = first.iter().flatten().collect();
    anyhow::ensure!(
        ran == vec![&1],
        "one daemon runs it and times the node out: {first:?}"
    );
    let st = apps[1].app.store.get(node).await?;
    anyhow::ensure!(st.state == State::Error, "{st:?}");
    // Within the period nobody runs it again.
    let again = round().await?;
    anyhow::ensure!(
        again.iter().all(Option::is_none),
        "ran twice in one period: {again:?}"
    );
    // After it, exactly one does, even with the last runner gone.
    tokio::time::sleep(period).await;
    let winner = first.iter().position(Option::is_some).unwrap_or(0);
    let rest: Vec<_> = apps.iter().enumerate().filter(|(k, _)| *k != winner).collect();
    let mut later = Vec::new();
    for (_, t) in &rest {
        later.push(claimed_clean_up(&t.app.lifecycle, &settings).await?);
    }
    anyhow::ensure!(
        later.iter().filter(|r| r.is_some()).count() == 1,
        "the next period: {later:?}"
    );
    Ok(())
}

/// Runs the futures concurrently and collects their results in order.
async fn futures_join<F, T, E>(fs: impl Iterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_daemons_firewall_state_holds_the_nodes_others_started() -> anyhow::Result<()> {
    let Some((fake, _db, apps)) = cluster(2, "").await? else {
        return Ok(());
    };
    for i in 0..5 {
        add(&fake, i);
        start(&apps[0].router, i).await?;
        wait(&apps[0].router, i, |v| v["state"] == "waiting").await?;
    }
    // What B's firewall sync opens comes from the shared store.
    let on_b = apps[1].app.store.active_macs().await?;
    let want: std::collections::HashSet<_> = (0..5).map(|i| mac(i).parse()).collect::<Result<_, _>>()?;
    anyhow::ensure!(on_b == want, "B would open {on_b:?}, want {want:?}");
    // And closes once A's nodes end.
    let (code, v) = call(&apps[1].router, Method::POST, "/v1/continue", Some(report(0))).await?;
    anyhow::ensure!(code == StatusCode::OK, "{code} {v}");
    wait(&apps[0].router, 0, |v| v["finished"] == true).await?;
    anyhow::ensure!(apps[1].app.store.active_macs().await?.len() == 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_down_starts_answer_503_and_nothing_is_lost() -> anyhow::Result<()> {
    let Some((fake, db, apps)) = cluster(1, "").await? else {
        return Ok(());
    };
    let r = &apps[0].router;
    for i in 0..3 {
        add(&fake, i);
    }
    start(r, 0).await?;
    db.set_reachable(false).await?;
    let (code, v) = call(r, Method::POST, &format!("/v1/introspection/{}", uuid(1)), None).await?;
    anyhow::ensure!(
        code == StatusCode::SERVICE_UNAVAILABLE,
        "start while down: {code} {v}"
    );
    let (code, v) = status(r, 0).await?;
    anyhow::ensure!(
        code == StatusCode::SERVICE_UNAVAILABLE,
        "status while down: {code} {v}"
    );
    db.set_reachable(true).await?;
    // Back: what was accepted is there, the refused start was not recorded.
    wait(r, 0, |v| v["finished"] == false).await?;
    let (code, _) = status(r, 1).await?;
    anyhow::ensure!(code == StatusCode::NOT_FOUND, "the refused start left a record");
    start(r, 1).await?;
    wait(r, 1, |v| v["state"] == "waiting").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_starting_up_leaves_the_nodes_others_are_working_on_alone() -> anyhow::Result<()> {
    let Some((_fake, _db, apps)) = cluster(2, "").await? else {
        return Ok(());
    };
    let store = &apps[0].app.store;
    let (starting, processing): (NodeId, NodeId) = (uuid(1).parse()?, uuid(2).parse()?);
    for node in [starting, processing] {
        let new = NewIntrospection {
            node,
            bmc_address: None,
            options: Options::new(),
        };
        store.start(&new, None, Timestamp::now()).await?;
    }
    store
        .transition(processing, State::Starting, State::Waiting)
        .await?;
    store
        .transition(processing, State::Waiting, State::Processing)
        .await?;
    // B (re)starts while A is processing one node and starting another.
    discoverd::daemon::resume(&apps[1].app).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let p = store.get(processing).await?;
    anyhow::ensure!(p.state == State::Processing, "B failed A's node: {p:?}");
    let s = store.get(starting).await?;
    anyhow::ensure!(s.state == State::Starting, "B took over A's start: {s:?}");
    Ok(())
}
