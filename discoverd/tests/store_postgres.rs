//! The node and rule store conformance suites against PostgreSQL (a real
//! server: `scripts/postgres.sh`, `DISCOVERD_TEST_POSTGRES_URL`), each
//! case on a database of its own, plus what only a shared database has.

use std::sync::{Arc, Mutex};

use discoverd::store::NodeStore;
use discoverd::store::postgres::PostgresStore;
use test_support::postgres::TestDatabase;

/// The databases of a suite's cases, kept (alive) until the suite ends.
#[derive(Clone, Default)]
struct Databases(Arc<Mutex<Vec<TestDatabase>>>);

impl Databases {
    /// A store on a database of its own.
    async fn fresh_store(&self) -> anyhow::Result<Arc<PostgresStore>> {
        let db = TestDatabase::create()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no PostgreSQL"))?;
        let store = PostgresStore::open(&db.url).await?;
        self.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(db);
        Ok(Arc::new(store))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() -> anyhow::Result<()> {
    if test_support::postgres::server()?.is_none() {
        return Ok(());
    }
    let dbs = Databases::default();
    test_support::store_conformance::run(|| {
        let dbs = dbs.clone();
        async move { Ok(dbs.fresh_store().await? as Arc<dyn NodeStore>) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_rule_conformance_suite() -> anyhow::Result<()> {
    use discoverd::store::rules::RuleStore;
    if test_support::postgres::server()?.is_none() {
        return Ok(());
    }
    let dbs = Databases::default();
    test_support::rule_conformance::run(|| {
        let dbs = dbs.clone();
        async move { Ok(dbs.fresh_store().await? as Arc<dyn RuleStore>) }
    })
    .await
}

/// Two daemons on one database: the rules one creates or deletes are the
/// rules the other applies to its next report (its parsed copy follows
/// the shared version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_written_by_one_daemon_are_applied_by_another() -> anyhow::Result<()> {
    use discoverd::rules::RuleBook;
    use serde_json::json;
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    let a = RuleBook::new(Arc::new(PostgresStore::open(&db.url).await?));
    let b = RuleBook::new(Arc::new(PostgresStore::open(&db.url).await?));
    let node: discoverd::ironic::Node =
        serde_json::from_value(json!({"uuid": "00000000-0000-4000-8000-000000000001",
        "driver": "ipmi", "driver_info": {}, "properties": {}, "extra": {}}))?;
    let data = json!({"memory_mb": 4096});
    let traits = |b: &RuleBook| {
        let (b, node, data) = (b.clone(), node.clone(), data.clone());
        async move { anyhow::Ok(b.apply(&node, &[], &data).await?.add_traits) }
    };
    anyhow::ensure!(traits(&b).await?.is_empty());
    let rule = a
        .create(
            &json!({"conditions": [{"op": "ge", "field": "memory_mb", "value": 1024}],
                        "actions": [{"action": "add-trait", "name": "CUSTOM_A"}]}),
        )
        .await?;
    anyhow::ensure!(traits(&b).await? == ["CUSTOM_A"], "B did not see A's rule");
    a.create(&json!({"actions": [{"action": "add-trait", "name": "CUSTOM_B"}]}))
        .await?;
    anyhow::ensure!(traits(&b).await? == ["CUSTOM_A", "CUSTOM_B"], "creation order");
    b.delete(&rule.uuid).await?;
    anyhow::ensure!(traits(&a).await? == ["CUSTOM_B"], "A did not see B's delete");
    a.delete_all().await?;
    anyhow::ensure!(traits(&b).await?.is_empty(), "B did not see A's delete of all");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_or_missing_database_is_a_clear_error_at_open() -> anyhow::Result<()> {
    let Some(server) = test_support::postgres::server()? else {
        return Ok(());
    };
    let e = PostgresStore::open("postgresql://discoverd:s3cret@127.0.0.1:1/discoverd")
        .await
        .err()
        .map(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
        .unwrap_or_default();
    anyhow::ensure!(
        e.contains("[discoverd] database") && e.contains("127.0.0.1:1") && !e.contains("s3cret"),
        "{e}"
    );
    let missing = format!(
        "{}/no_such_database_here",
        server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b)
    );
    let e = PostgresStore::open(&missing)
        .await
        .err()
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    anyhow::ensure!(e.contains("no_such_database_here"), "{e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_starting_together_migrate_once_and_a_newer_schema_is_refused() -> anyhow::Result<()> {
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PostgresStore::open(&url).await })
        })
        .collect();
    for o in opens {
        o.await??;
    }
    db.execute("INSERT INTO discoverd_schema (version) VALUES (99)")
        .await?;
    let e = PostgresStore::open(&db.url)
        .await
        .err()
        .map(|e| {
            format!(
                "{e}: {:?}",
                std::error::Error::source(&e).map(ToString::to_string)
            )
        })
        .unwrap_or_default();
    anyhow::ensure!(e.contains("version 99") && e.contains("newer"), "{e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_daemons_mac_changes_are_announced_at_commit() -> anyhow::Result<()> {
    use discoverd::domain::{State, Timestamp};
    use discoverd::store::{NewIntrospection, Options};
    let Some(db) = TestDatabase::create().await? else {
        return Ok(());
    };
    let (a, b) = (
        PostgresStore::open(&db.url).await?,
        PostgresStore::open(&db.url).await?,
    );
    let mut rx = b
        .mac_changes()
        .ok_or_else(|| anyhow::anyhow!("no announcements"))?;
    // The first move is the listener connecting.
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed()).await??;
    rx.borrow_and_update();
    let node = "00000000-0000-4000-8000-000000000001".parse()?;
    let new = NewIntrospection {
        node,
        bmc_address: None,
        options: Options::new(),
    };
    a.start(&new, None, Timestamp::now()).await?;
    a.add_macs(node, &["52:54:00:00:00:01".parse()?]).await?;
    let bound = std::time::Duration::from_secs(10);
    tokio::time::timeout(bound, rx.changed())
        .await
        .map_err(|_| anyhow::anyhow!("B never heard of A's new MAC"))??;
    rx.borrow_and_update();
    a.finish(node, State::Starting, None, Timestamp::now()).await?;
    tokio::time::timeout(bound, rx.changed())
        .await
        .map_err(|_| anyhow::anyhow!("B never heard of A's ending"))??;
    Ok(())
}
