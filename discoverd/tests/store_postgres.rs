//! The store conformance suite against PostgreSQL (a real server:
//! `scripts/postgres.sh`, `DISCOVERD_TEST_POSTGRES_URL`), each case on a
//! database of its own, plus what only a shared database has.

use std::sync::{Arc, Mutex};

use discoverd::store::NodeStore;
use discoverd::store::postgres::PostgresStore;
use test_support::postgres::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() -> anyhow::Result<()> {
    if test_support::postgres::server()?.is_none() {
        return Ok(());
    }
    let dbs = Arc::new(Mutex::new(Vec::new()));
    test_support::store_conformance::run(|| {
        let dbs = dbs.clone();
        async move {
            let db = TestDatabase::create()
                .await?
                .ok_or_else(|| anyhow::anyhow!("no PostgreSQL"))?;
            let store = PostgresStore::open(&db.url).await?;
            dbs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(db);
            Ok(Arc::new(store) as Arc<dyn NodeStore>)
        }
    })
    .await
}
