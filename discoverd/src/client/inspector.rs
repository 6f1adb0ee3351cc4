//! ironic-inspector's v1 additions (API 1.1–1.18): list, abort, reprocess,
//! stored data and introspection rules. The same calls work against
//! ironic-inspector itself.

use serde_json::Value;

use super::{Client, ClientError, Status, url_encode};

/// Largest introspection data the client reads (an IPA report with its
/// logs runs to a few MiB; the server caps a stored blob well below this).
const MAX_DATA: usize = 64 * 1024 * 1024;

/// `GET /v1/introspection` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// The last UUID of the previous page.
    pub marker: Option<String>,
    /// At most this many (the server's `api_max_limit` when unset).
    pub limit: Option<u32>,
    /// Only these states (`waiting`, `finished`, `error`, …).
    pub states: Vec<String>,
}

impl Client {
    /// Statuses, newest first (API 1.8).
    pub async fn list(&self, q: &ListQuery) -> Result<Vec<Status>, ClientError> {
        let mut params = Vec::new();
        if let Some(m) = &q.marker {
            params.push(format!("marker={}", url_encode(m)));
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        if !q.states.is_empty() {
            params.push(format!("state={}", url_encode(&q.states.join(","))));
        }
        let path = if params.is_empty() {
            "/introspection".to_owned()
        } else {
            format!("/introspection?{}", params.join("&"))
        };
        let v = self.send(reqwest::Method::GET, &path, None).await?;
        let list = v
            .get("introspection")
            .cloned()
            .ok_or_else(|| ClientError::Protocol("the list has no \"introspection\" key".into()))?;
        serde_json::from_value(list).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Aborts a running introspection (API 1.9); the node powers off.
    pub async fn abort(&self, node: &str) -> Result<(), ClientError> {
        let path = format!("/introspection/{}/abort", Self::node(node)?);
        self.send(reqwest::Method::POST, &path, None).await.map(drop)
    }

    /// Reapplies the stored raw data (API 1.4), or `data` (API 1.15).
    pub async fn reprocess(&self, node: &str, data: Option<&Value>) -> Result<(), ClientError> {
        let path = format!("/introspection/{}/data/unprocessed", Self::node(node)?);
        self.send(reqwest::Method::POST, &path, data).await.map(drop)
    }

    /// Stored introspection data: processed, or raw as the ramdisk sent it
    /// (API 1.17).
    pub async fn data(&self, node: &str, unprocessed: bool) -> Result<Value, ClientError> {
        let suffix = if unprocessed { "/unprocessed" } else { "" };
        let path = format!("/introspection/{}/data{suffix}", Self::node(node)?);
        self.send_limited(reqwest::Method::GET, &path, None, MAX_DATA)
            .await
    }

    /// Every rule, short (API 1.6).
    pub async fn rules(&self) -> Result<Vec<Value>, ClientError> {
        let v = self.send(reqwest::Method::GET, "/rules", None).await?;
        match v.get("rules") {
            Some(Value::Array(a)) => Ok(a.clone()),
            _ => Err(ClientError::Protocol(
                "the rule list has no \"rules\" array".into(),
            )),
        }
    }

    /// One rule in full.
    pub async fn rule(&self, uuid: &str) -> Result<Value, ClientError> {
        let path = format!("/rules/{}", url_encode(uuid));
        self.send(reqwest::Method::GET, &path, None).await
    }

    /// Creates a rule; the answer is the rule as stored.
    pub async fn create_rule(&self, rule: &Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, "/rules", Some(rule)).await
    }

    /// Deletes one rule.
    pub async fn delete_rule(&self, uuid: &str) -> Result<(), ClientError> {
        let path = format!("/rules/{}", url_encode(uuid));
        self.send(reqwest::Method::DELETE, &path, None).await.map(drop)
    }

    /// Deletes every rule.
    pub async fn delete_rules(&self) -> Result<(), ClientError> {
        self.send(reqwest::Method::DELETE, "/rules", None).await.map(drop)
    }
}
