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

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::State;
use crate::events::EventBus;
use crate::ironic::{CallObserver, CallOutcome, CallRecord};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub call: String,
}

/// A failed Ironic request: the call and what came back (`409`, `503`,
/// ..., `connection` for a failed or dropped connection, `timeout`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallErrorLabel {
    pub call: String,
    pub answer: String,
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
    pub ironic_errors: Family<CallErrorLabel, Counter>,
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

    /// Records one Ironic request.
    pub fn ironic_call(&self, call: &str, took: Duration, outcome: CallOutcome) {
        let label = CallLabel {
            call: call.to_owned(),
        };
        self.ironic_latency
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        if !outcome.is_success() {
            let answer = match outcome {
                CallOutcome::Status(s) => s.to_string(),
                CallOutcome::ConnectionFailed => "connection".to_owned(),
                CallOutcome::TimedOut => "timeout".to_owned(),
            };
            self.ironic_errors
                .get_or_create(&CallErrorLabel {
                    call: call.to_owned(),
                    answer,
                })
                .inc();
        }
    }

    /// Records a `/v1/continue` outcome by HTTP status.
    pub fn continue_result(&self, status: u16) {
        let result = match status {
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

    /// Counts introspections from the event bus: every start, and every
    /// ending, whichever path it took (timeouts and failed starts too).
    pub fn count_events(&self, bus: &EventBus, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut events = bus.subscribe();
        let m = self.clone();
        tokio::spawn(async move {
            let count = async {
                loop {
                    match events.recv().await {
                        Ok(change) => m.count(change.to),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::error!(
                                missed = n,
                                "metrics fell behind the event bus; counters are low by up to {n}"
                            );
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            };
            tokio::select! { _ = count => {} _ = stop => {} }
        });
    }

    /// Counts one state change by the state it reached.
    pub fn count(&self, to: State) {
        match to {
            State::Starting => self.introspections_started.inc(),
            State::Finished => self.introspections_finished.inc(),
            State::Error => self.introspections_failed.inc(),
            _ => 0,
        };
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

/// The Ironic client reports every request here (wired in `app.rs`):
/// latency by call, failures by call and answer, every try counted
/// (retries included).
impl CallObserver for Metrics {
    fn observe(&self, r: &CallRecord<'_>) {
        self.ironic_call(r.call, r.took, r.outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_counters_and_labels() {
        let m = Metrics::new();
        m.introspections_started.inc();
        m.continue_result(404);
        m.ironic_call("get_node", Duration::from_millis(3), CallOutcome::Status(409));
        m.ironic_call("get_node", Duration::from_millis(3), CallOutcome::TimedOut);
        m.ironic_call("get_node", Duration::from_millis(3), CallOutcome::Status(200));
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
            text.contains("ironic_discoverd_ironic_call_errors_total{call=\"get_node\",answer=\"409\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "ironic_discoverd_ironic_call_errors_total{call=\"get_node\",answer=\"timeout\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("ironic_discoverd_ironic_call_seconds_count{call=\"get_node\"} 3"),
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
        m.continue_result(200);
        m.continue_result(200);
        m.ironic_call("patch_node", Duration::from_millis(1), CallOutcome::Status(200));
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
}
