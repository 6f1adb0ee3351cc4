//! Persisted introspection rules, behind their own trait (kept apart from
//! [`super::NodeStore`] so a backend can add them on its own schedule).
//! A rule is stored as the JSON the API shows (`Rule::as_json`), with its
//! UUID and its place in creation order; the rules layer validates it
//! before it gets here and parses it again when reading (once per
//! [`RuleStore::rules_version`]).

use std::fmt;

use serde_json::Value;

use super::StoreError;

/// The most rules a store holds (a create beyond it is refused).
pub const MAX_RULES: usize = 10_000;
/// The largest stored rule (JSON text).
pub const MAX_RULE_BYTES: usize = 1024 * 1024;

/// One stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// Lower-case, hyphenated.
    pub uuid: String,
    /// The rule as the API shows it.
    pub body: Value,
}

/// Why a rule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleStoreError {
    #[error("Rule with UUID {0} already exists")]
    Exists(String),
    #[error("Rule {0} was not found")]
    NotFound(String),
    #[error("there are already {MAX_RULES} rules; delete some first")]
    TooMany,
    #[error("the rule is {0} bytes, over the {MAX_RULE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Introspection rules, in creation order. Implementations are cheap to
/// share and safe to call concurrently.
#[async_trait::async_trait]
pub trait RuleStore: Send + Sync + fmt::Debug {
    /// Adds a rule after every existing one; a UUID already stored is
    /// [`RuleStoreError::Exists`] and nothing is written.
    async fn create_rule(&self, rule: &StoredRule) -> Result<(), RuleStoreError>;
    /// Every rule, oldest first.
    async fn list_rules(&self) -> Result<Vec<StoredRule>, RuleStoreError>;
    async fn get_rule(&self, uuid: &str) -> Result<StoredRule, RuleStoreError>;
    async fn delete_rule(&self, uuid: &str) -> Result<(), RuleStoreError>;
    /// Deletes every rule; returns how many went.
    async fn delete_all_rules(&self) -> Result<u64, RuleStoreError>;
    /// A number that moves with every rule write, by whichever daemon
    /// sharing the store made it, once that write is visible to
    /// [`RuleStore::list_rules`]: a reader that holds the rules it listed
    /// after seeing version `v` need not list them again while the
    /// version stays `v`.
    async fn rules_version(&self) -> Result<u64, RuleStoreError>;
}
