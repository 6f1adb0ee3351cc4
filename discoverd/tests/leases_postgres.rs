//! Leases on in-flight work (issue 16) against a real PostgreSQL
//! (`DISCOVERD_TEST_POSTGRES_URL`): a node in flight is held by the daemon
//! that moved it there; when that daemon stops renewing, exactly one other
//! claims it, with the step it recorded; a node waiting for its ramdisk
//! or ended is held by nobody.

use std::collections::HashSet;
use std::time::Duration;

use discoverd::domain::{NodeId, State, Timestamp};
use discoverd::store::postgres::PostgresStore;
use discoverd::store::{NewIntrospection, NodeStore, Options, Step};
use serde_json::json;
use test_support::postgres::TestDatabase;

const LEASE: Duration = Duration::from_millis(300);

fn node(i: usize) -> NodeId {
    format!("00000000-0000-4000-8000-{i:012x}")
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid UUID"))
}

async fn start(s: &PostgresStore, i: usize) -> anyhow::Result<()> {
    let new = NewIntrospection {
        node: node(i),
        bmc_address: None,
        options: Options::new(),
    };
    s.start(&new, None, Timestamp::now()).await?;
    Ok(())
}

/// Until the lease of a holder that stopped renewing is over.
async fn expire() {
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_node_is_claimed_once_with_its_step() -> anyhow::Result<()> {
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    let a = PostgresStore::open_with_lease(&db.url, LEASE).await?;
    let b = PostgresStore::open_with_lease(&db.url, LEASE).await?;
    let c = PostgresStore::open_with_lease(&db.url, LEASE).await?;
    assert_ne!(a.owner(), b.owner());

    start(&a, 1).await?; // starting: in flight
    start(&a, 2).await?;
    a.transition(node(2), State::Starting, State::Waiting).await?; // waiting: held by nobody
    start(&a, 3).await?;
    a.transition(node(3), State::Starting, State::Waiting).await?;
    a.transition(node(3), State::Waiting, State::Processing).await?;
    let ops = json!([{"op": "add", "path": "/properties/cpus", "value": 2}]);
    a.record_step(
        node(3),
        &Step::Finish {
            node_ops: ops.clone(),
        },
    )
    .await?;
    start(&a, 4).await?;
    a.finish(node(4), State::Starting, Some("x"), Timestamp::now())
        .await?; // ended

    // While A renews, nobody else gets its nodes.
    for _ in 0..3 {
        tokio::time::sleep(LEASE / 3).await;
        assert!(a.renew_leases().await? >= 2);
        assert!(b.claim_expired(10).await?.is_empty(), "claimed while A renews");
    }
    // A stops renewing (dies): B gets its two in-flight nodes, C none.
    expire().await;
    let claimed = b.claim_expired(10).await?;
    let mut got: Vec<_> = claimed.iter().map(|o| (o.status.node, o.status.state)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![(node(1), State::Starting), (node(3), State::Processing)]
    );
    for o in &claimed {
        assert_eq!(o.previous_owner, a.owner());
    }
    let step = claimed
        .iter()
        .find(|o| o.status.node == node(3))
        .and_then(|o| o.step.clone());
    assert_eq!(step, Some(Step::Finish { node_ops: ops }));
    assert!(
        claimed
            .iter()
            .any(|o| o.status.node == node(1) && o.step.is_none())
    );
    assert!(c.claim_expired(10).await?.is_empty(), "claimed twice");
    // B now holds them and renews; A (back from the dead) cannot record
    // a step on a node it lost, and renews nothing.
    assert_eq!(b.renew_leases().await?, 2);
    assert_eq!(a.renew_leases().await?, 0);
    let lost = a
        .record_step(node(3), &Step::Finish { node_ops: json!([]) })
        .await;
    assert!(lost.is_err(), "A recorded a step on B's node");
    expire().await;
    // B stopped renewing too: C takes them, once more with the step.
    let again = c.claim_expired(10).await?;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|o| o.previous_owner == b.owner()));
    // Moving on releases: waiting and ended nodes are never claimed.
    c.transition(node(1), State::Starting, State::Waiting).await?;
    c.finish(node(3), State::Processing, None, Timestamp::now())
        .await?;
    expire().await;
    assert!(a.claim_expired(10).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_claiming_at_once_split_the_orphans() -> anyhow::Result<()> {
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    let dead = PostgresStore::open_with_lease(&db.url, LEASE).await?;
    const N: usize = 60;
    for i in 0..N {
        start(&dead, i).await?;
    }
    expire().await;
    let mut claimers = Vec::new();
    for _ in 0..3 {
        let s = PostgresStore::open_with_lease(&db.url, Duration::from_secs(30)).await?;
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_expired(7).await?;
                if got.is_empty() {
                    return anyhow::Ok(mine);
                }
                mine.extend(got.into_iter().map(|o| o.status.node));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await??);
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), N, "some node claimed twice or not at all");
    assert_eq!(distinct.len(), N);
    Ok(())
}
