//! Prometheus metrics (`GET /metrics`, OpenMetrics text) and health
//! endpoints (`GET /healthz`, `GET /readyz`) for load balancers.
//!
//! `prometheus-client` is the Prometheus project's own Rust client: typed
//! counters/gauges/histograms with label structs, no global registry
//! (tests get their own), and an OpenMetrics encoder. Since that encoder
//! writes OpenMetrics (`_total` suffixes, `# EOF`), `/metrics` says so in
//! its content type rather than claiming the older 0.0.4 text format;
//! Prometheus 2.x and later negotiate OpenMetrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::app::App;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub call: String,
}

/// Every metric the daemon exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub introspections_started: Counter,
    pub introspections_finished: Counter,
    pub introspections_failed: Counter,
    pub in_flight: Gauge,
    pub continue_requests: Family<ResultLabel, Counter>,
    pub ironic_latency: Family<CallLabel, Histogram>,
    pub ironic_errors: Family<CallLabel, Counter>,
    pub firewall_sync_seconds: Histogram,
    pub firewall_macs: Gauge,
    pub helper_connected: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("ironic_discoverd");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            introspections_started: Counter::default(),
            introspections_finished: Counter::default(),
            introspections_failed: Counter::default(),
            in_flight: Gauge::default(),
            continue_requests: Family::default(),
            ironic_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            ironic_errors: Family::default(),
            firewall_sync_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            firewall_macs: Gauge::default(),
            helper_connected: Gauge::default(),
        };
        r.register(
            "introspections_started",
            "Introspections accepted",
            m.introspections_started.clone(),
        );
        r.register(
            "introspections_finished",
            "Introspections finished without error",
            m.introspections_finished.clone(),
        );
        r.register(
            "introspections_failed",
            "Introspections finished with an error (timeouts included)",
            m.introspections_failed.clone(),
        );
        r.register(
            "introspections_in_flight",
            "Nodes under introspection",
            m.in_flight.clone(),
        );
        r.register(
            "continue_requests",
            "Ramdisk callbacks by result",
            m.continue_requests.clone(),
        );
        r.register(
            "ironic_call_seconds",
            "Ironic API call latency by call",
            m.ironic_latency.clone(),
        );
        r.register(
            "ironic_call_errors",
            "Failed Ironic API calls by call",
            m.ironic_errors.clone(),
        );
        r.register(
            "firewall_sync_seconds",
            "Full firewall sync duration",
            m.firewall_sync_seconds.clone(),
        );
        r.register("firewall_macs", "MACs in the filter set", m.firewall_macs.clone());
        r.register(
            "firewall_helper_connected",
            "1 when the firewall helper answers",
            m.helper_connected.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Records one Ironic call.
    pub fn ironic_call(&self, call: &str, took: Duration, ok: bool) {
        let label = CallLabel {
            call: call.to_owned(),
        };
        self.ironic_latency
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        if !ok {
            self.ironic_errors.get_or_create(&label).inc();
        }
    }

    /// Records a `/v1/continue` outcome by HTTP status.
    pub fn continue_result(&self, status: StatusCode) {
        let result = match status.as_u16() {
            200 => "ok",
            400 => "bad_request",
            404 => "not_found",
            413 => "too_large",
            _ => "error",
        };
        self.continue_requests
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<App>) -> Response {
    if let Ok(n) = app.cache.count_active().await {
        app.metrics.in_flight.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let fw = app.firewall.status();
    app.metrics
        .firewall_macs
        .set(i64::try_from(fw.mac_count).unwrap_or(i64::MAX));
    app.metrics.helper_connected.set(i64::from(fw.connected));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// What `/readyz` asks. Each check says why it failed; a check the
/// deployment does not use (the firewall when it is not managed) returns
/// `None`.
pub trait ReadinessChecks {
    /// The node cache answers a query.
    fn database(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// The helper holds the desired filter (`None`: firewall not managed).
    fn firewall(&self) -> impl Future<Output = Option<Result<(), String>>> + Send;
    /// Ironic answers its API version query.
    fn ironic(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// How long one readiness check may take before it counts as failed.
pub const READINESS_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

async fn timed<T>(check: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(READINESS_CHECK_TIMEOUT, check)
        .await
        .map_err(|_| format!("no answer within {} s", READINESS_CHECK_TIMEOUT.as_secs()))
}

/// 200 `{"status":"ready"}` when every check passes, else 503
/// `{"status":"not ready","failed":[{"check":..,"error":..}]}`. The checks
/// run concurrently, each bounded by [`READINESS_CHECK_TIMEOUT`].
pub async fn readiness(checks: &impl ReadinessChecks) -> Response {
    let (database, firewall, ironic) = tokio::join!(
        timed(checks.database()),
        timed(checks.firewall()),
        timed(checks.ironic())
    );
    let firewall = firewall.map(|r| r.unwrap_or(Ok(()))).and_then(|r| r);
    let failed: Vec<_> = [
        ("database", database.and_then(|r| r)),
        ("firewall", firewall),
        ("ironic", ironic.and_then(|r| r)),
    ]
    .into_iter()
    .filter_map(|(check, r)| r.err().map(|error| json!({"check": check, "error": error})))
    .collect();
    if failed.is_empty() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "failed": failed})),
        )
            .into_response()
    }
}

impl ReadinessChecks for App {
    async fn database(&self) -> Result<(), String> {
        self.cache.ping().await.map_err(|e| e.to_string())?;
        self.cache.check_writable().await.map_err(|e| e.to_string())
    }

    async fn firewall(&self) -> Option<Result<(), String>> {
        if !self.config.manage_firewall {
            return None;
        }
        let fw = self.firewall.status();
        Some(if fw.synced_once && !fw.stale {
            Ok(())
        } else {
            Err(fw.last_error.unwrap_or_else(|| "not synced yet".into()))
        })
    }

    async fn ironic(&self) -> Result<(), String> {
        self.ironic
            .single_attempt()
            .check_api_version()
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// `GET /readyz`: the database, the firewall helper (when managed) and
/// Ironic all answer; 503 listing what does not.
pub async fn readyz(State(app): State<App>) -> Response {
    readiness(&app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_counters_and_labels() {
        let m = Metrics::new();
        m.introspections_started.inc();
        m.continue_result(StatusCode::NOT_FOUND);
        m.ironic_call("get_node", Duration::from_millis(3), false);
        let text = m.render();
        assert!(
            text.contains("ironic_discoverd_introspections_started_total 1"),
            "{text}"
        );
        assert!(
            text.contains("ironic_discoverd_continue_requests_total{result=\"not_found\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ironic_discoverd_ironic_call_errors_total{call=\"get_node\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ironic_discoverd_ironic_call_seconds_count{call=\"get_node\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn gauges_and_histograms_show_their_values() {
        let m = Metrics::new();
        m.in_flight.set(3);
        m.firewall_macs.set(12);
        m.helper_connected.set(1);
        m.introspections_finished.inc_by(2);
        m.introspections_failed.inc();
        m.firewall_sync_seconds.observe(0.002);
        m.continue_result(StatusCode::OK);
        m.continue_result(StatusCode::OK);
        m.ironic_call("patch_node", Duration::from_millis(1), true);
        let text = m.render();
        for line in [
            "ironic_discoverd_introspections_in_flight 3",
            "ironic_discoverd_firewall_macs 12",
            "ironic_discoverd_firewall_helper_connected 1",
            "ironic_discoverd_introspections_finished_total 2",
            "ironic_discoverd_introspections_failed_total 1",
            "ironic_discoverd_firewall_sync_seconds_count 1",
            "ironic_discoverd_continue_requests_total{result=\"ok\"} 2",
            "ironic_discoverd_ironic_call_seconds_count{call=\"patch_node\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // A successful call is not an error.
        assert!(
            !text.contains("ironic_call_errors_total{call=\"patch_node\"}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn healthz_is_always_ok() -> Result<(), axum::Error> {
        let resp = healthz().await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await?;
        assert_eq!(&body[..], br#"{"status":"ok"}"#);
        Ok(())
    }

    /// Checks with canned answers; `ironic_hangs` never answers.
    struct Canned {
        database: Result<(), String>,
        firewall: Option<Result<(), String>>,
        ironic_hangs: bool,
    }

    impl ReadinessChecks for Canned {
        async fn database(&self) -> Result<(), String> {
            self.database.clone()
        }
        async fn firewall(&self) -> Option<Result<(), String>> {
            self.firewall.clone()
        }
        async fn ironic(&self) -> Result<(), String> {
            if self.ironic_hangs {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    async fn ask(checks: &Canned) -> Result<(StatusCode, serde_json::Value), Box<dyn std::error::Error>> {
        let resp = readiness(checks).await;
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await?;
        Ok((status, serde_json::from_slice(&body)?))
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_lists_every_failed_check() -> Result<(), Box<dyn std::error::Error>> {
        let all_ok = Canned {
            database: Ok(()),
            firewall: Some(Ok(())),
            ironic_hangs: false,
        };
        assert_eq!(ask(&all_ok).await?, (StatusCode::OK, json!({"status": "ready"})));
        // An unmanaged firewall is not a reason to be unready.
        let unmanaged = Canned {
            firewall: None,
            ..all_ok
        };
        assert_eq!(ask(&unmanaged).await?.0, StatusCode::OK);
        let broken = Canned {
            database: Err("disk I/O error".into()),
            firewall: Some(Err("helper socket refused".into())),
            ironic_hangs: true,
        };
        let (status, body) = ask(&broken).await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            json!({"status": "not ready", "failed": [
                {"check": "database", "error": "disk I/O error"},
                {"check": "firewall", "error": "helper socket refused"},
                {"check": "ironic", "error": "no answer within 5 s"},
            ]})
        );
        Ok(())
    }
}
