//! Prometheus metrics (`GET /metrics`, OpenMetrics text) and health
//! endpoints (`GET /healthz`, `GET /readyz`) for load balancers.

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

/// `GET /readyz`: the database, the firewall helper (when managed) and
/// Ironic all answer; 503 listing what does not.
pub async fn readyz(State(app): State<App>) -> Response {
    let mut failed = Vec::new();
    if let Err(e) = app.cache.ping().await {
        failed.push(json!({"check": "database", "error": e.to_string()}));
    }
    let fw = app.firewall.status();
    if app.config.manage_firewall && (!fw.synced_once || fw.stale) {
        failed.push(
            json!({"check": "firewall", "error": fw.last_error.unwrap_or_else(|| "not synced yet".into())}),
        );
    }
    match tokio::time::timeout(Duration::from_secs(5), app.ironic.check_api_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failed.push(json!({"check": "ironic", "error": e.to_string()})),
        Err(_) => failed.push(json!({"check": "ironic", "error": "no answer within 5 s"})),
    }
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
}
