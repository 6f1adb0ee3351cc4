//! Process lifecycle: bind, serve until a shutdown signal, drain.

use std::future::Future;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The minimal router of the foundation: version discovery only.
pub fn version_router() -> Router {
    Router::new().route(
        "/",
        get(|| async {
            axum::Json(serde_json::json!({
                "versions": [{"id": "1.0", "status": "CURRENT", "links": [{"href": "/v1", "rel": "self"}]}]
            }))
        }),
    )
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
