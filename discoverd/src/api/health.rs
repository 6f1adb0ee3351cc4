//! Health endpoints for load balancers and systemd: `GET /healthz` (the
//! process answers) and `GET /readyz` (the database, the firewall helper
//! when managed, and Ironic all answer).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;

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
        self.store.ping().await.map_err(|e| e.to_string())?;
        self.store.check_writable().await.map_err(|e| e.to_string())
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
