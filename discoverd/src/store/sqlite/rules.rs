//! [`RuleStore`] on the SQLite file: table `rules` (migration 3), creation
//! order kept by an autoincrement sequence. One daemon writes the file,
//! so the rules' version is a counter in memory, moved right after each
//! rule write commits (on the blocking thread: a caller that goes away
//! cannot skip it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::store::rules::{MAX_RULE_BYTES, MAX_RULES, RuleStore, RuleStoreError, StoredRule};

fn parse(uuid: String, text: &str) -> rusqlite::Result<StoredRule> {
    let body = serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(StoredRule { uuid, body })
}

fn moved<T>(version: &Arc<AtomicU64>) -> impl FnOnce(&mut super::Mirror, &T) + Send + 'static {
    let version = version.clone();
    move |_, _| {
        version.fetch_add(1, Ordering::Release);
    }
}

#[async_trait::async_trait]
impl RuleStore for SqliteStore {
    async fn create_rule(&self, rule: &StoredRule) -> Result<(), RuleStoreError> {
        let text = rule.body.to_string();
        if text.len() > MAX_RULE_BYTES {
            return Err(RuleStoreError::TooLarge(text.len()));
        }
        let uuid = rule.uuid.clone();
        self.write(
            "create a rule",
            move |tx| {
                let action = "create a rule";
                let err = |e| backend(action, tx.path, e);
                let count: i64 = tx
                    .tx
                    .query_row("SELECT COUNT(*) FROM rules", [], |r| r.get(0))
                    .map_err(err)?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_RULES {
                    return Ok(Err(RuleStoreError::TooMany));
                }
                let n = tx
                    .tx
                    .execute(
                        "INSERT OR IGNORE INTO rules (uuid, body) VALUES (?1, ?2)",
                        params![uuid, text],
                    )
                    .map_err(err)?;
                Ok(if n == 0 {
                    Err(RuleStoreError::Exists(uuid))
                } else {
                    Ok(())
                })
            },
            moved(&self.rules_version),
        )
        .await?
    }

    async fn list_rules(&self) -> Result<Vec<StoredRule>, RuleStoreError> {
        Ok(self
            .read("list rules", |tx| {
                let err = |e| backend("list rules", tx.path, e);
                let mut st = tx
                    .tx
                    .prepare("SELECT uuid, body FROM rules ORDER BY seq")
                    .map_err(err)?;
                let rows = st
                    .query_map([], |r| parse(r.get(0)?, &r.get::<_, String>(1)?))
                    .map_err(err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(err)
            })
            .await?)
    }

    async fn get_rule(&self, uuid: &str) -> Result<StoredRule, RuleStoreError> {
        let id = uuid.to_owned();
        let found = self
            .read("read a rule", move |tx| {
                tx.tx
                    .query_row("SELECT uuid, body FROM rules WHERE uuid = ?1", [&id], |r| {
                        parse(r.get(0)?, &r.get::<_, String>(1)?)
                    })
                    .optional()
                    .map_err(|e| backend("read a rule", tx.path, e))
            })
            .await?;
        found.ok_or_else(|| RuleStoreError::NotFound(uuid.to_owned()))
    }

    async fn delete_rule(&self, uuid: &str) -> Result<(), RuleStoreError> {
        let id = uuid.to_owned();
        let n = self
            .write(
                "delete a rule",
                move |tx| {
                    tx.tx
                        .execute("DELETE FROM rules WHERE uuid = ?1", [&id])
                        .map_err(|e| backend("delete a rule", tx.path, e))
                },
                moved(&self.rules_version),
            )
            .await?;
        if n == 0 {
            return Err(RuleStoreError::NotFound(uuid.to_owned()));
        }
        Ok(())
    }

    async fn delete_all_rules(&self) -> Result<u64, RuleStoreError> {
        let n = self
            .write(
                "delete all rules",
                |tx| {
                    tx.tx
                        .execute("DELETE FROM rules", [])
                        .map_err(|e| backend("delete all rules", tx.path, e))
                },
                moved(&self.rules_version),
            )
            .await?;
        Ok(n as u64)
    }

    async fn rules_version(&self) -> Result<u64, RuleStoreError> {
        Ok(self.rules_version.load(Ordering::Acquire))
    }
}
