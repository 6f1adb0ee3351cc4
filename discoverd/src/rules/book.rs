//! The rules the daemon holds: validated on the way into the
//! [`RuleStore`], parsed once on the way out and kept parsed in memory
//! (compiled regexes, parsed paths and networks) while the store's
//! [`RuleStore::rules_version`] stays the same. The processing flow asks
//! for them on every report: that costs one version check (a counter in
//! memory on SQLite, one small query on PostgreSQL, where another daemon
//! may have changed the rules a moment ago).

use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::{Rule, RuleError};
use crate::store::rules::{RuleStore, RuleStoreError, StoredRule};

/// Why a rule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleBookError {
    #[error(transparent)]
    Invalid(#[from] RuleError),
    #[error(transparent)]
    Store(#[from] RuleStoreError),
}

/// The parsed rules and the store version they were listed at (or after).
#[derive(Debug)]
struct Cache {
    version: u64,
    rules: Arc<Vec<Rule>>,
}

/// The rule store and its parsed copy; cheap to clone.
#[derive(Debug, Clone)]
pub struct RuleBook {
    store: Arc<dyn RuleStore>,
    cache: Arc<RwLock<Option<Cache>>>,
}

fn parsed(stored: StoredRule) -> Option<Rule> {
    match Rule::parse(&stored.body) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(rule = %stored.uuid, "stored rule no longer valid, skipped: {e}");
            None
        }
    }
}

impl RuleBook {
    pub fn new(store: Arc<dyn RuleStore>) -> Self {
        RuleBook {
            store,
            cache: Arc::new(RwLock::new(None)),
        }
    }

    /// Validates and stores a rule; returns it as stored.
    pub async fn create(&self, body: &Value) -> Result<Rule, RuleBookError> {
        let rule = Rule::parse(body)?;
        let stored = StoredRule {
            uuid: rule.uuid.clone(),
            body: rule.as_json(false),
        };
        self.store.create_rule(&stored).await?;
        tracing::info!(rule = %rule.uuid, scope = ?rule.scope, "created rule");
        Ok(rule)
    }

    /// Every rule, in creation order (parsed once per change).
    pub async fn all(&self) -> Result<Arc<Vec<Rule>>, RuleBookError> {
        // The version first: rules listed after it are at least that new.
        let version = self.store.rules_version().await?;
        if let Some(c) = &*self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            && c.version == version
        {
            return Ok(c.rules.clone());
        }
        let rules: Arc<Vec<Rule>> = Arc::new(
            self.store
                .list_rules()
                .await?
                .into_iter()
                .filter_map(parsed)
                .collect(),
        );
        *self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Cache {
            version,
            rules: rules.clone(),
        });
        Ok(rules)
    }

    pub async fn get(&self, uuid: &str) -> Result<Rule, RuleBookError> {
        let stored = self.store.get_rule(&uuid.to_ascii_lowercase()).await?;
        let id = stored.uuid.clone();
        parsed(stored).ok_or_else(|| RuleBookError::Store(RuleStoreError::NotFound(id)))
    }

    pub async fn delete(&self, uuid: &str) -> Result<(), RuleBookError> {
        self.store.delete_rule(&uuid.to_ascii_lowercase()).await?;
        tracing::info!(rule = %uuid, "introspection rule deleted");
        Ok(())
    }

    pub async fn delete_all(&self) -> Result<(), RuleBookError> {
        let n = self.store.delete_all_rules().await?;
        tracing::info!(count = n, "all introspection rules deleted");
        Ok(())
    }
}
