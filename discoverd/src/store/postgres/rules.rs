//! [`RuleStore`] on PostgreSQL: table `rules` (migration 3), shared by
//! every daemon on the database. Every write first moves the one
//! `rules_version` row (locking it, so writers take turns and the count
//! limit holds), then changes `rules`, in one transaction.

use tokio_postgres::Row;

use super::PostgresStore;
use super::rows::backend;
use crate::store::StoreError;
use crate::store::rules::{MAX_RULE_BYTES, MAX_RULES, RuleStore, RuleStoreError, StoredRule};

const BUMP: &str = "UPDATE rules_version SET version = version + 1";

fn parse(r: &Row, location: &str) -> Result<StoredRule, StoreError> {
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
        action: "decode a rule",
        location: location.to_owned(),
        source: e,
    };
    let uuid: String = r.try_get(0).map_err(|e| bad(Box::new(e)))?;
    let text: String = r.try_get(1).map_err(|e| bad(Box::new(e)))?;
    let body = serde_json::from_str(&text).map_err(|e| bad(Box::new(e)))?;
    Ok(StoredRule { uuid, body })
}

#[async_trait::async_trait]
impl RuleStore for PostgresStore {
    async fn create_rule(&self, rule: &StoredRule) -> Result<(), RuleStoreError> {
        let text = rule.body.to_string();
        if text.len() > MAX_RULE_BYTES {
            return Err(RuleStoreError::TooLarge(text.len()));
        }
        let err = backend("create a rule", &self.location);
        let mut c = self.client("create a rule").await?;
        let tx = c.transaction().await.map_err(&err)?;
        tx.execute(BUMP, &[]).await.map_err(&err)?;
        let count: i64 = tx
            .query_one("SELECT COUNT(*) FROM rules", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(&err)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_RULES {
            return Err(RuleStoreError::TooMany);
        }
        let n = tx
            .execute(
                "INSERT INTO rules (uuid, body) VALUES ($1, $2) ON CONFLICT (uuid) DO NOTHING",
                &[&rule.uuid, &text],
            )
            .await
            .map_err(&err)?;
        if n == 0 {
            return Err(RuleStoreError::Exists(rule.uuid.clone()));
        }
        tx.commit().await.map_err(&err)?;
        Ok(())
    }

    async fn list_rules(&self) -> Result<Vec<StoredRule>, RuleStoreError> {
        let rows = self
            .query("list rules", "SELECT uuid, body FROM rules ORDER BY seq", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| parse(r, &self.location))
            .collect::<Result<_, _>>()?)
    }

    async fn get_rule(&self, uuid: &str) -> Result<StoredRule, RuleStoreError> {
        let rows = self
            .query(
                "read a rule",
                "SELECT uuid, body FROM rules WHERE uuid = $1",
                &[&uuid],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(parse(r, &self.location)?),
            None => Err(RuleStoreError::NotFound(uuid.to_owned())),
        }
    }

    async fn delete_rule(&self, uuid: &str) -> Result<(), RuleStoreError> {
        let err = backend("delete a rule", &self.location);
        let mut c = self.client("delete a rule").await?;
        let tx = c.transaction().await.map_err(&err)?;
        tx.execute(BUMP, &[]).await.map_err(&err)?;
        let n = tx
            .execute("DELETE FROM rules WHERE uuid = $1", &[&uuid])
            .await
            .map_err(&err)?;
        if n == 0 {
            return Err(RuleStoreError::NotFound(uuid.to_owned()));
        }
        tx.commit().await.map_err(&err)?;
        Ok(())
    }

    async fn delete_all_rules(&self) -> Result<u64, RuleStoreError> {
        let err = backend("delete all rules", &self.location);
        let mut c = self.client("delete all rules").await?;
        let tx = c.transaction().await.map_err(&err)?;
        tx.execute(BUMP, &[]).await.map_err(&err)?;
        let n = tx.execute("DELETE FROM rules", &[]).await.map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(n)
    }

    async fn rules_version(&self) -> Result<u64, RuleStoreError> {
        let rows = self
            .query(
                "read the rules' version",
                "SELECT version FROM rules_version",
                &[],
            )
            .await?;
        let v: i64 = match rows.first() {
            Some(r) => r
                .try_get(0)
                .map_err(backend("read the rules' version", &self.location))?,
            None => 0,
        };
        Ok(u64::try_from(v).unwrap_or_default())
    }
}
