//! `GET /metrics`: the Prometheus exposition (OpenMetrics text), with the
//! gauges read at scrape time.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::App;

/// `GET /metrics`.
pub async fn metrics(State(app): State<App>) -> Response {
    if let Ok(n) = app.store.count_active().await {
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
