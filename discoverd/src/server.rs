//! Process lifecycle helpers for the binary, and the HTTP server: the API
//! router served over connections bounded by `crate::connections`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::connections::{Admitted, Closed, ConnectionLimits, Registry, Tracked};

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

/// How long open requests may take to finish once shutdown has begun.
const DRAIN: Duration = Duration::from_secs(35);

/// Largest buffer for a request head: real clients send a few KiB of
/// headers (a Keystone token included).
const MAX_HEAD: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// requests finish (at most 35 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Registry::new(limits.max_connections);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match registry.admit() {
                    Some(admitted) => {
                        tokio::spawn(connection(stream, admitted, router.clone(), limits, stop_rx.clone()));
                    }
                    None => drop(stream),
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("failed to accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN, registry.wait_empty()).await.is_err() {
        tracing::warn!(
            open = registry.len(),
            "requests still open after {DRAIN:?}; closing them"
        );
    }
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    admitted: Admitted,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let conn = Arc::clone(&admitted.conn);
    let io = TokioIo::new(Tracked::new(stream, Arc::clone(&conn)));
    let service = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = conn.busy();
            let router = router.clone();
            async move {
                let Ok(response) = router.oneshot(req.map(Body::new)).await;
                // The connection is busy until the body has been written.
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _busy = &guard;
                        frame
                    }))
                }))
            }
        })
    };
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service);
    tokio::pin!(http);
    let mut stopping = *stop.borrow();
    if stopping {
        http.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = conn.deadline(&limits);
        let expire = async {
            match deadline {
                Some((at, why)) => {
                    tokio::time::sleep_until(at).await;
                    why
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            () = conn.evicted() => break,
            () = conn.changed() => {}
            why = expire => {
                // Read again: the phase may have moved at the same instant.
                if conn.deadline(&limits).is_some_and(|(at, _)| at <= tokio::time::Instant::now()) {
                    match why {
                        Closed::HeaderTimeout => tracing::debug!("closing a connection whose request headers did not arrive within {:?}", limits.header_timeout),
                        Closed::IdleTimeout => tracing::debug!("closing a connection idle for {:?}", limits.idle_timeout),
                    }
                    break;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    http.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(admitted);
}
