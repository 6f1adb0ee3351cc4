//! The rules the daemon holds: validated on the way into the
//! [`RuleStore`], parsed once on the way out and kept parsed in memory
//! until the next change (the processing flow reads them on every
//! report). One daemon per store: a second daemon's changes are seen
//! after this one's next write or restart.

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

#[derive(Debug, Default)]
struct Cache {
    /// Bumped by every write; a load keeps its result only if unchanged.
    generation: u64,
    rules: Option<Arc<Vec<Rule>>>,
}

/// The rule store and its parsed copy; cheap to clone.
#[derive(Debug, Clone)]
pub struct RuleBook {
    store: Arc<dyn RuleStore>,
    cache: Arc<RwLock<Cache>>,
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
            cache: Arc::new(RwLock::new(Cache::default())),
        }
    }

    fn invalidate(&self) {
        let mut c = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.generation += 1;
        c.rules = None;
    }

    /// Validates and stores a rule; returns it as stored.
    pub async fn create(&self, body: &Value) -> Result<Rule, RuleBookError> {
        let rule = Rule::parse(body)?;
        let stored = StoredRule {
            uuid: rule.uuid.clone(),
            body: rule.as_json(false),
        };
        let result = self.store.create_rule(&stored).await;
        self.invalidate();
        result?;
        tracing::info!(rule = %rule.uuid, scope = ?rule.scope, "created rule");
        Ok(rule)
    }

    /// Every rule, in creation order (parsed once per change).
    pub async fn all(&self) -> Result<Arc<Vec<Rule>>, RuleBookError> {
        let generation = {
            let c = self
                .cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(r) = &c.rules {
                return Ok(r.clone());
            }
            c.generation
        };
        let rules: Arc<Vec<Rule>> = Arc::new(
            self.store
                .list_rules()
                .await?
                .into_iter()
                .filter_map(parsed)
                .collect(),
        );
        let mut c = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.generation == generation {
            c.rules = Some(rules.clone());
        }
        Ok(rules)
    }

    pub async fn get(&self, uuid: &str) -> Result<Rule, RuleBookError> {
        let stored = self.store.get_rule(&uuid.to_ascii_lowercase()).await?;
        let id = stored.uuid.clone();
        parsed(stored).ok_or_else(|| RuleBookError::Store(RuleStoreError::NotFound(id)))
    }

    pub async fn delete(&self, uuid: &str) -> Result<(), RuleBookError> {
        let result = self.store.delete_rule(&uuid.to_ascii_lowercase()).await;
        self.invalidate();
        result?;
        tracing::info!(rule = %uuid, "introspection rule deleted");
        Ok(())
    }

    pub async fn delete_all(&self) -> Result<(), RuleBookError> {
        let result = self.store.delete_all_rules().await;
        self.invalidate();
        let n = result?;
        tracing::info!(count = n, "all introspection rules deleted");
        Ok(())
    }
}
