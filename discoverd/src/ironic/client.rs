//! A typed Ironic REST client: the calls discoverd makes, with an explicit
//! API microversion, a timeout on every try, and transient failures
//! retried within a budget ([`super::retry`]). Every request is reported
//! to a [`CallObserver`]. Calls that change something are made safe to
//! repeat: a port creation whose answer was lost is found by its MAC, a
//! replayed PATCH whose `remove` already happened is checked against the
//! resource.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::TokenSource;
use super::error::{IronicError, IronicErrorKind as Kind};
use super::model::{InterfaceValidation, Node, PatchOp, Port};
use super::observer::{Observer, TraceCalls};
use super::retry::{Budget, RetryPolicy, current_deadline};

/// Page size when listing ports.
const PAGE: usize = 1000;

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IronicClient {
    http: reqwest::Client,
    base: String,
    api_version: String,
    token: Option<Arc<dyn TokenSource>>,
    retry: RetryPolicy,
    timeout: Duration,
    observer: Observer,
    /// Requests in flight at most, shared by every clone: past it calls
    /// queue here, not in an overloaded Ironic, where they would run into
    /// `ironic_timeout` (`ironic_max_requests`).
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Default of `ironic_max_requests`.
pub const DEFAULT_MAX_REQUESTS: usize = 16;

mod nodes;
mod request;

use request::{Req, get, patch_applied};
#[cfg(test)]
use request::{error_message, patch_repeatable};

impl IronicClient {
    /// `base` is Ironic's root URL (`http://127.0.0.1:6385`).
    pub fn new(
        base: &str,
        api_version: &str,
        timeout: Duration,
        token: Option<Arc<dyn TokenSource>>,
        retry: RetryPolicy,
    ) -> Result<Self, IronicError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ironic-discoverd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                IronicError::new(
                    "",
                    base,
                    Kind::Protocol(format!("failed to build the HTTP client: {e}")),
                )
            })?;
        Ok(IronicClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_version: api_version.to_owned(),
            token,
            retry,
            timeout,
            observer: Arc::new(TraceCalls),
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_REQUESTS)),
        })
    }

    /// At most `n` requests in flight to Ironic (at least one).
    pub fn with_max_requests(mut self, n: usize) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// A client that makes one try, for callers that retry on their own
    /// terms (start-up's `ironic_retry_attempts`, readiness checks), so
    /// tries do not multiply.
    pub fn single_attempt(&self) -> Self {
        IronicClient {
            retry: RetryPolicy {
                budget: Duration::ZERO,
                conflict_attempts: 1,
                ..self.retry
            },
            ..self.clone()
        }
    }

    /// Reports every request to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// The base URL, for logs.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// `GET /v1/nodes/{uuid}`.
    pub async fn get_node(&self, uuid: &str) -> Result<Node, IronicError> {
        self.json(&get("get_node", &format!("/v1/nodes/{uuid}"), "/v1/nodes/{uuid}"))
            .await
    }

    /// The `power` part of `GET /v1/nodes/{uuid}/validate`.
    pub async fn validate_power(&self, uuid: &str) -> Result<InterfaceValidation, IronicError> {
        let path = format!("/v1/nodes/{uuid}/validate");
        let req = get("validate", &path, "/v1/nodes/{uuid}/validate");
        let v: Value = self.json(&req).await?;
        serde_json::from_value(v.get("power").cloned().unwrap_or(Value::Null))
            .map_err(|e| req.err(Kind::Protocol(format!("validate: {e}"))))
    }

    /// Every page of a port listing.
    async fn ports(&self, first: String, template: &'static str) -> Result<Vec<Port>, IronicError> {
        self.all_pages("list_ports", first, template, "ports").await
    }

    /// Every page of a collection: the items under `key`, following
    /// Ironic's `next` links.
    pub(super) async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
        first: String,
        template: &'static str,
        key: &'static str,
    ) -> Result<Vec<T>, IronicError> {
        let mut out = Vec::new();
        let mut path = first;
        // A malicious or broken Ironic could link pages forever.
        for _ in 0..10_000 {
            let req = get(name, &path, template);
            let mut page: Value = self.json(&req).await?;
            let items = page.get_mut(key).map(Value::take);
            let items: Vec<T> = items
                .ok_or_else(|| format!("no {key:?} in the page"))
                .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                .map_err(|e| req.err(Kind::Protocol(format!("{name}: {e}"))))?;
            let got = items.len();
            out.extend(items);
            match page.get("next").and_then(Value::as_str) {
                Some(next) if got > 0 => {
                    let rel = next.find("/v1/").map(|i| next[i..].to_owned());
                    path = rel.ok_or_else(|| req.err(Kind::Protocol(format!("bad next link {next:?}"))))?;
                }
                _ => return Ok(out),
            }
        }
        Err(IronicError::new(
            "GET",
            &path,
            Kind::Protocol(format!("{key} listing did not end")),
        ))
    }

    /// A node's ports, all pages, with the fields the port hooks read
    /// (`physical_network` needs API 1.34). Asked as `GET
    /// /v1/ports?node_uuid=`, not `GET /v1/nodes/{uuid}/ports`: the same
    /// answer (a 404 for an unknown node too), but Ironic 39 spends 18–20
    /// ms on it against 23–31 ms (idle, BENCHMARKS.md "Pace"), twice per
    /// introspection, and Ironic's CPU is what sets the pace under load.
    pub async fn list_node_ports(&self, uuid: &str) -> Result<Vec<Port>, IronicError> {
        self.at_least(Self::PHYSNET_VERSION).ports(
            format!("/v1/ports?node_uuid={uuid}&limit={PAGE}&fields=uuid,address,node_uuid,extra,pxe_enabled,physical_network,local_link_connection"),
            "/v1/ports?node_uuid={uuid}",
        )
        .await
    }

    /// `GET /v1/ports`, all pages.
    pub async fn list_all_ports(&self) -> Result<Vec<Port>, IronicError> {
        self.ports(
            format!("/v1/ports?limit={PAGE}&fields=uuid,address,node_uuid"),
            "/v1/ports",
        )
        .await
    }

    /// `GET /v1/ports?address=…`: the port with this MAC, if any.
    pub async fn find_port(&self, address: &str) -> Result<Option<Port>, IronicError> {
        let address = address.to_lowercase();
        let ports = self
            .ports(
                format!("/v1/ports?address={address}&fields=uuid,address,node_uuid,extra"),
                "/v1/ports?address={address}",
            )
            .await?;
        Ok(ports
            .into_iter()
            .find(|p| p.address.eq_ignore_ascii_case(&address)))
    }

    /// A PATCH, repeated on transient failures. Repeating add/replace
    /// changes nothing; a `remove` that already happened makes Ironic
    /// answer 400, so a 400 after a try whose answer was lost is checked
    /// against the resource: if it already shows the patch, it was
    /// applied. Patches that append (`/-`) are not repeated once a try
    /// may have been applied.
    async fn patch(&self, req: &Req<'_>, ops: &[PatchOp]) -> Result<Value, IronicError> {
        let mut budget = Budget::new(&self.retry, current_deadline());
        match self.retrying(req, &mut budget, false).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| req.err(Kind::Protocol(e.to_string()))),
            Err(e) if budget.maybe_applied && matches!(e.kind, Kind::Rejected { status: 400, .. }) => {
                match self.json::<Value>(&get(req.call, req.path, req.template)).await {
                    Ok(current) if patch_applied(&current, ops) => {
                        tracing::info!(
                            path = req.path,
                            "a repeated PATCH was refused, but the first one had been applied"
                        );
                        Ok(current)
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `PATCH /v1/nodes/{uuid}`; returns the updated node.
    pub async fn patch_node(&self, uuid: &str, ops: &[PatchOp]) -> Result<Node, IronicError> {
        let path = format!("/v1/nodes/{uuid}");
        let body = serde_json::to_value(ops)
            .map_err(|e| IronicError::new("PATCH", &path, Kind::Protocol(e.to_string())))?;
        let req = Req {
            call: "patch_node",
            method: Method::PATCH,
            path: &path,
            template: "/v1/nodes/{uuid}",
            body: Some(&body),
        };
        let v = self.patch(&req, ops).await?;
        serde_json::from_value(v).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }

    /// `PATCH /v1/ports/{uuid}`.
    pub async fn patch_port(&self, uuid: &str, ops: &[PatchOp]) -> Result<Port, IronicError> {
        let path = format!("/v1/ports/{uuid}");
        let body = serde_json::to_value(ops)
            .map_err(|e| IronicError::new("PATCH", &path, Kind::Protocol(e.to_string())))?;
        let req = Req {
            call: "patch_port",
            method: Method::PATCH,
            path: &path,
            template: "/v1/ports/{uuid}",
            body: Some(&body),
        };
        // The hooks may set `physical_network` (API 1.34).
        let v = self.at_least(Self::PHYSNET_VERSION).patch(&req, ops).await?;
        serde_json::from_value(v).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }

    /// `POST /v1/ports`, made idempotent: a 409 means a port with this MAC
    /// exists; if it is this node's (our own creation whose answer was
    /// lost, or a concurrent one) it is returned, if it is another node's
    /// the result is a `Conflict`; if there is none the 409 was a lock
    /// and is retried.
    pub async fn create_port(&self, node_uuid: &str, address: &str) -> Result<Port, IronicError> {
        self.create_port_with(node_uuid, address, None).await
    }

    /// [`Self::create_port`] with `pxe_enabled` set (Ironic's default,
    /// `true`, when `None`).
    pub async fn create_port_with(
        &self,
        node_uuid: &str,
        address: &str,
        pxe_enabled: Option<bool>,
    ) -> Result<Port, IronicError> {
        let mut body = serde_json::json!({"node_uuid": node_uuid, "address": address});
        if let Some(pxe) = pxe_enabled {
            body["pxe_enabled"] = Value::Bool(pxe);
        }
        let req = Req {
            call: "create_port",
            method: Method::POST,
            path: "/v1/ports",
            template: "/v1/ports",
            body: Some(&body),
        };
        let mut budget = Budget::new(&self.retry, current_deadline());
        loop {
            let conflict = match self.retrying(&req, &mut budget, true).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| req.err(Kind::Protocol(e.to_string())));
                }
                Err(e) if e.is_conflict() => e,
                Err(e) => return Err(e),
            };
            match self.find_port(address).await? {
                Some(p) if p.node_uuid.as_deref() == Some(node_uuid) => return Ok(p),
                Some(p) => {
                    return Err(req.err(Kind::Conflict(format!(
                        "MAC {address} already belongs to port {} of node {}",
                        p.uuid,
                        p.node_uuid.as_deref().unwrap_or("(none)")
                    ))));
                }
                None => {
                    budget.conflicts += 1;
                    let Some(pause) = budget.pause(&self.retry, true, None) else {
                        return Err(req.err(Kind::BudgetSpent {
                            attempts: budget.attempts,
                            waited: budget.waited(),
                            last: conflict.to_string(),
                        }));
                    };
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// A PUT whose answer we do not read (repeating it is harmless).
    async fn put(
        &self,
        call: &'static str,
        path: &str,
        template: &'static str,
        body: Value,
    ) -> Result<(), IronicError> {
        self.call(&Req {
            call,
            method: Method::PUT,
            path,
            template,
            body: Some(&body),
        })
        .await
        .map(drop)
    }

    /// `PUT /v1/nodes/{uuid}/management/boot_device` (PXE, one boot only).
    pub async fn set_pxe_boot(&self, uuid: &str) -> Result<(), IronicError> {
        self.put(
            "set_boot_device",
            &format!("/v1/nodes/{uuid}/management/boot_device"),
            "/v1/nodes/{uuid}/management/boot_device",
            serde_json::json!({"boot_device": "pxe", "persistent": false}),
        )
        .await
    }

    /// `PUT /v1/nodes/{uuid}/states/power`.
    pub async fn set_power_state(&self, uuid: &str, target: &str) -> Result<(), IronicError> {
        self.put(
            "set_power_state",
            &format!("/v1/nodes/{uuid}/states/power"),
            "/v1/nodes/{uuid}/states/power",
            serde_json::json!({"target": target}),
        )
        .await
    }

    /// Checks Ironic answers and supports our microversion (`GET /v1`).
    /// Returns Ironic's maximum version.
    pub async fn check_api_version(&self) -> Result<String, IronicError> {
        let req = get("version", "/v1", "/v1");
        let v: Value = self.json(&req).await?;
        let max = v["version"]["version"]
            .as_str()
            .ok_or_else(|| req.err(Kind::Protocol("GET /v1 has no version.version".into())))?
            .to_owned();
        let parse = |s: &str| -> Option<(u32, u32)> {
            let (a, b) = s.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        match (parse(&max), parse(&self.api_version)) {
            (Some(have), Some(want)) if have >= want => Ok(max),
            (Some(_), Some(_)) => Err(req.err(Kind::Rejected {
                status: 406,
                message: format!(
                    "Ironic supports API versions up to {max}, but ironic_api_version = {} is configured; upgrade Ironic or lower the option",
                    self.api_version
                ),
            })),
            _ => Err(req.err(Kind::Protocol(format!(
                "cannot compare API versions {max:?} and {:?}",
                self.api_version
            )))),
        }
    }
}

/// Calls that need a newer Ironic API than `ironic_api_version` may say
/// (its default, 1.31, lets older Ironics work): node traits (rules'
/// `add-trait` / `remove-trait`, 1.37) and ports' `physical_network` (the
/// port hooks, 1.34) are sent with at least their version.
impl IronicClient {
    const TRAITS_VERSION: (u32, u32) = (1, 37);
    const PHYSNET_VERSION: (u32, u32) = (1, 34);

    fn at_least(&self, version: (u32, u32)) -> Self {
        let parse = |v: &str| {
            v.split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        };
        let (maj, min) = version;
        match parse(&self.api_version) {
            Some(v) if v >= version => self.clone(),
            _ => IronicClient {
                api_version: format!("{maj}.{min}"),
                ..self.clone()
            },
        }
    }

    /// `DELETE /v1/ports/{uuid}`; a port already gone is not an error, so
    /// a replay is harmless.
    pub async fn delete_port(&self, uuid: &str) -> Result<(), IronicError> {
        match self
            .call(&Req {
                call: "delete_port",
                method: Method::DELETE,
                path: &format!("/v1/ports/{uuid}"),
                template: "/v1/ports/{uuid}",
                body: None,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `PUT /v1/nodes/{uuid}/traits/{trait}` (repeating it is harmless).
    pub async fn add_node_trait(&self, uuid: &str, name: &str) -> Result<(), IronicError> {
        self.at_least(Self::TRAITS_VERSION)
            .call(&Req {
                call: "add_node_trait",
                method: Method::PUT,
                path: &format!("/v1/nodes/{uuid}/traits/{name}"),
                template: "/v1/nodes/{uuid}/traits/{trait}",
                body: None,
            })
            .await
            .map(drop)
    }

    /// `DELETE /v1/nodes/{uuid}/traits/{trait}`; a trait the node does not
    /// have is not an error (as the inspector), so a replay is harmless.
    pub async fn remove_node_trait(&self, uuid: &str, name: &str) -> Result<(), IronicError> {
        match self
            .at_least(Self::TRAITS_VERSION)
            .call(&Req {
                call: "remove_node_trait",
                method: Method::DELETE,
                path: &format!("/v1/nodes/{uuid}/traits/{name}"),
                template: "/v1/nodes/{uuid}/traits/{trait}",
                body: None,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_patches_are_checked_against_the_resource() {
        let node = serde_json::json!({"extra": {"newly_discovered": "true"}, "properties": {"cpus": "4"}});
        let done = [
            PatchOp::add("/extra/newly_discovered", "true"),
            PatchOp::add("/extra/on_discovery", "true"),
            PatchOp::remove("/extra/on_discovery"),
        ];
        assert!(patch_applied(&node, &done));
        let marked = serde_json::json!({"extra": {"newly_discovered": "true", "on_discovery": "true"}});
        assert!(!patch_applied(&marked, &done));
        assert!(!patch_applied(&node, &[PatchOp::remove("/properties/cpus")]));
        assert!(!patch_applied(&node, &[PatchOp::add("/properties/cpus", "8")]));
        assert!(patch_repeatable(&done));
        assert!(!patch_repeatable(&[PatchOp::add("/extra/list/-", "x")]));
    }

    #[test]
    fn ironic_error_bodies_are_unwrapped() {
        let nested = br#"{"error_message": "{\"faultstring\": \"Node abc could not be found.\", \"debuginfo\": null}"}"#;
        assert_eq!(error_message(nested), "Node abc could not be found.");
        assert_eq!(error_message(br#"{"faultstring": "x"}"#), "x");
        assert_eq!(error_message(b"plain text"), "plain text");
        assert!(error_message(&vec![b'a'; 10_000]).len() <= 500);
    }

    /// At most `ironic_max_requests` requests reach Ironic at once; the
    /// rest wait in the daemon and none of them times out for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_in_flight_are_capped() -> Result<(), Box<dyn std::error::Error>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let app = axum::Router::new().route(
            "/v1/nodes/{uuid}",
            axum::routing::get(move || {
                let (n, p) = (n.clone(), p.clone());
                async move {
                    let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(inside, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({"uuid": "n", "power_state": "power off"}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Each try may take 250 ms: 12 calls at 100 ms through 3 slots
        // take about 400 ms, longer than a try, and none times out.
        let client = IronicClient::new(
            &url,
            "1.31",
            Duration::from_millis(250),
            None,
            RetryPolicy::default(),
        )?
        .with_max_requests(3)
        .single_attempt();
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.get_node("n").await })
            })
            .collect();
        for c in calls {
            c.await??;
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        Ok(())
    }
}
