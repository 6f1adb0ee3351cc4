//! The store conformance suite against the SQLite store, plus what only
//! SQLite has: its in-memory status mirror stays equal to the file.

use std::sync::Arc;

use discoverd::domain::{State, Timestamp};
use discoverd::store::sqlite::SqliteStore;
use discoverd::store::{NewIntrospection, NodeStore, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let n = std::sync::atomic::AtomicUsize::new(0);
    test_support::store_conformance::run(|| {
        let path = dir.path().join(format!(
            "case-{}/discoverd.sqlite",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        async move { Ok(Arc::new(SqliteStore::open(&path).await?) as Arc<dyn NodeStore>) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_rule_conformance_suite() -> anyhow::Result<()> {
    use discoverd::store::rules::RuleStore;
    let dir = tempfile::tempdir()?;
    let n = std::sync::atomic::AtomicUsize::new(0);
    test_support::rule_conformance::run(|| {
        let path = dir.path().join(format!(
            "rules-{}/discoverd.sqlite",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        async move { Ok(Arc::new(SqliteStore::open(&path).await?) as Arc<dyn RuleStore>) }
    })
    .await
}

#[tokio::test]
async fn the_memory_mirror_matches_the_file_after_every_kind_of_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("discoverd.sqlite");
    let s = SqliteStore::open(&path).await?;
    let same = |s: &SqliteStore| {
        let s = s.clone();
        async move {
            anyhow::ensure!(s.mirror_matches_file_for_tests().await?, "memory and file differ");
            Ok(())
        }
    };
    let node = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02}").parse();
    let new = |id| NewIntrospection {
        node: id,
        bmc_address: Some(format!("10.0.0.{}", id)),
        options: Options::new(),
    };
    let (a, b) = (node(1)?, node(2)?);
    s.start(&new(a), None, Timestamp::from_micros(1_000_000)).await?;
    s.start(&new(b), None, Timestamp::now()).await?;
    same(&s).await?;
    s.add_macs(a, &["52:54:00:00:00:01".parse()?]).await?;
    same(&s).await?;
    s.transition(a, State::Starting, State::Waiting).await?;
    same(&s).await?;
    s.finish(b, State::Starting, Some("boom"), Timestamp::now())
        .await?;
    same(&s).await?;
    s.start(&new(b), Some(State::Error), Timestamp::now()).await?;
    same(&s).await?;
    s.finish(a, State::Waiting, None, Timestamp::from_micros(2_000_000))
        .await?;
    s.purge(Timestamp::from_micros(3_000_000)).await?;
    same(&s).await?;
    drop(s);
    let reopened = SqliteStore::open(&path).await?;
    same(&reopened).await?;
    anyhow::ensure!(reopened.status_count_for_tests() == 1);
    Ok(())
}
