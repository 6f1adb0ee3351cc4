//! The rule store conformance suite: written once against [`RuleStore`],
//! run against every implementation (SQLite in `discoverd/tests/store.rs`,
//! PostgreSQL in `discoverd/tests/store_postgres.rs`).
//! Each case gets a fresh, empty store from the factory.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, ensure};
use discoverd::store::rules::{MAX_RULE_BYTES, RuleStore, RuleStoreError, StoredRule};
use serde_json::json;

type Store = Arc<dyn RuleStore>;

/// Runs every case; the first failure names the case.
pub async fn run<F, Fut>(make: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Store>>,
{
    macro_rules! case {
        ($name:ident) => {
            $name(make().await?).await.context(stringify!($name))?;
        };
    }
    case!(creation_order_is_kept_across_deletes);
    case!(duplicate_uuid_is_refused_and_changes_nothing);
    case!(missing_rules_are_not_found);
    case!(delete_all_empties_the_store);
    case!(oversized_rules_are_refused);
    case!(concurrent_creates_of_one_uuid_one_wins);
    case!(every_write_moves_the_version);
    Ok(())
}

fn rule(n: u32) -> StoredRule {
    let uuid = format!("00000000-0000-4000-8000-{n:012}");
    StoredRule {
        body: json!({"uuid": uuid, "description": format!("rule {n}"),
                     "actions": [{"action": "add-trait", "name": format!("CUSTOM_{n}")}]}),
        uuid,
    }
}

fn uuids(rules: &[StoredRule]) -> Vec<String> {
    rules.iter().map(|r| r.uuid.clone()).collect()
}

async fn creation_order_is_kept_across_deletes(s: Store) -> anyhow::Result<()> {
    // UUIDs in an order unlike their creation order.
    for n in [5, 1, 9, 3] {
        s.create_rule(&rule(n)).await?;
    }
    s.delete_rule(&rule(1).uuid).await?;
    s.create_rule(&rule(1)).await?;
    let all = s.list_rules().await?;
    ensure!(
        uuids(&all) == uuids(&[rule(5), rule(9), rule(3), rule(1)]),
        "order: {:?}",
        uuids(&all)
    );
    ensure!(all[0] == rule(5), "body changed: {:?}", all[0]);
    ensure!(s.get_rule(&rule(9).uuid).await? == rule(9));
    Ok(())
}

async fn duplicate_uuid_is_refused_and_changes_nothing(s: Store) -> anyhow::Result<()> {
    s.create_rule(&rule(1)).await?;
    let mut other = rule(1);
    other.body["description"] = json!("other");
    let e = s.create_rule(&other).await;
    ensure!(
        matches!(e, Err(RuleStoreError::Exists(ref u)) if *u == rule(1).uuid),
        "{e:?}"
    );
    ensure!(s.list_rules().await? == vec![rule(1)]);
    Ok(())
}

async fn missing_rules_are_not_found(s: Store) -> anyhow::Result<()> {
    let u = rule(7).uuid;
    ensure!(matches!(s.get_rule(&u).await, Err(RuleStoreError::NotFound(ref x)) if *x == u));
    ensure!(matches!(
        s.delete_rule(&u).await,
        Err(RuleStoreError::NotFound(_))
    ));
    ensure!(s.list_rules().await?.is_empty());
    Ok(())
}

async fn delete_all_empties_the_store(s: Store) -> anyhow::Result<()> {
    ensure!(s.delete_all_rules().await? == 0);
    for n in 0..3 {
        s.create_rule(&rule(n)).await?;
    }
    ensure!(s.delete_all_rules().await? == 3);
    ensure!(s.list_rules().await?.is_empty());
    s.create_rule(&rule(0)).await?;
    ensure!(s.list_rules().await?.len() == 1);
    Ok(())
}

async fn oversized_rules_are_refused(s: Store) -> anyhow::Result<()> {
    let mut big = rule(1);
    big.body["description"] = json!("x".repeat(MAX_RULE_BYTES));
    ensure!(matches!(
        s.create_rule(&big).await,
        Err(RuleStoreError::TooLarge(_))
    ));
    ensure!(s.list_rules().await?.is_empty());
    Ok(())
}

async fn concurrent_creates_of_one_uuid_one_wins(s: Store) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.create_rule(&rule(4)).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await? {
            Ok(()) => won += 1,
            Err(RuleStoreError::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ensure!(won == 1, "{won} creates won");
    ensure!(s.list_rules().await?.len() == 1);
    Ok(())
}

async fn every_write_moves_the_version(s: Store) -> anyhow::Result<()> {
    let mut seen = vec![s.rules_version().await?];
    let mut moved = |v: u64, what: &str| {
        ensure!(
            !seen.contains(&v),
            "{what} left the version at {v} (seen {seen:?})"
        );
        seen.push(v);
        Ok(())
    };
    s.create_rule(&rule(1)).await?;
    moved(s.rules_version().await?, "a create")?;
    s.create_rule(&rule(2)).await?;
    moved(s.rules_version().await?, "a second create")?;
    s.delete_rule(&rule(1).uuid).await?;
    moved(s.rules_version().await?, "a delete")?;
    s.delete_all_rules().await?;
    moved(s.rules_version().await?, "a delete of all")?;
    // Reading changes nothing.
    s.list_rules().await?;
    s.get_rule(&rule(7).uuid).await.ok();
    let last = *seen.last().context("no version")?;
    ensure!(s.rules_version().await? == last, "a read moved the version");
    Ok(())
}
