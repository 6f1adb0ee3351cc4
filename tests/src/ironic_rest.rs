//! A small REST client for a real Ironic (noauth), to set nodes up the way
//! an operator would: for the real-Ironic tests and the benchmarks.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct IronicRest {
    url: String,
    http: reqwest::Client,
}

impl IronicRest {
    /// `url` is Ironic's root (`http://127.0.0.1:6385`).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(IronicRest {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    /// The UUIDs of every node Ironic shows powered on, page after page (a
    /// bench's Ironic holds the nodes of earlier runs too, past one page).
    pub async fn powered_on(&self) -> anyhow::Result<std::collections::HashSet<String>> {
        let mut set = std::collections::HashSet::new();
        let mut path = "/v1/nodes?fields=uuid,power_state&limit=1000".to_owned();
        loop {
            let v = self.send(reqwest::Method::GET, &path, None).await?;
            for n in v["nodes"].as_array().into_iter().flatten() {
                if n["power_state"] == "power on"
                    && let Some(u) = n["uuid"].as_str()
                {
                    set.insert(u.to_owned());
                }
            }
            match v["next"]
                .as_str()
                .and_then(|next| next.find("/v1/").map(|i| &next[i..]))
            {
                Some(next) => path = next.to_owned(),
                None => return Ok(set),
            }
        }
    }

    /// One call with API version 1.31; a non-2xx answer is an error with
    /// Ironic's text.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.send_at("1.31", method, path, body).await
    }

    /// [`Self::send`] with another API `version` (traits need 1.37, a
    /// port's `physical_network` 1.34).
    pub async fn send_at(
        &self,
        version: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-OpenStack-Ironic-API-Version", version);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        if !status.is_success() {
            anyhow::bail!("{path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn node(&self, uuid: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, &format!("/v1/nodes/{uuid}"), None)
            .await
    }

    /// Waits (up to 30 s) until the node carries `extra.on_discovery`,
    /// the mark the daemon writes on a node whose introspection failed,
    /// after recording the failure; returns the node.
    pub async fn wait_failure_mark(&self, uuid: &str) -> anyhow::Result<Value> {
        crate::stack::eventually(
            "extra.on_discovery on the failed node",
            Duration::from_secs(30),
            async || {
                let node = self.node(uuid).await?;
                Ok((node["extra"]["on_discovery"] == json!("true")).then_some(node))
            },
        )
        .await
    }

    /// Asks for a provision-state `target` and waits (up to 2 minutes)
    /// until the node is in `want`.
    pub async fn set_provision(&self, uuid: &str, target: &str, want: &str) -> anyhow::Result<()> {
        self.send(
            reqwest::Method::PUT,
            &format!("/v1/nodes/{uuid}/states/provision"),
            Some(json!({"target": target})),
        )
        .await?;
        // A plain loop, not `eventually`: callers spawn this (Send).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n = self.node(uuid).await?;
            if n["provision_state"] == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("{uuid} not {want} after 120 s: {}", n["provision_state"]);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ironic's root URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A manageable fake-hardware node with one port; returns its UUID.
    pub async fn enroll(&self, bmc: &str, mac: &str) -> anyhow::Result<String> {
        let n = self
            .send(
                reqwest::Method::POST,
                "/v1/nodes",
                Some(json!({"driver": "fake-hardware", "driver_info": {"ipmi_address": bmc}})),
            )
            .await?;
        let uuid = n["uuid"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("node create answered without a uuid: {n}"))?
            .to_owned();
        self.send(
            reqwest::Method::POST,
            "/v1/ports",
            Some(json!({"address": mac, "node_uuid": uuid})),
        )
        .await?;
        self.set_provision(&uuid, "manage", "manageable").await?;
        Ok(uuid)
    }

    /// The node's port addresses, sorted.
    pub async fn port_macs(&self, uuid: &str) -> anyhow::Result<Vec<String>> {
        let v = self
            .send(reqwest::Method::GET, &format!("/v1/nodes/{uuid}/ports"), None)
            .await?;
        let mut macs: Vec<String> = v["ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["address"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        macs.sort();
        Ok(macs)
    }
}
