//! The socket server: accepts the daemon, checks who it is, and answers
//! one request at a time per connection. Changes to the kernel are
//! serialised across connections by one lock around the [`Filter`].

use std::future::Future;
use std::sync::{Arc, Mutex};

use common::protocol::{
    self, ErrorCode, FrameError, PROTOCOL_VERSION, ProtocolError, Reply, ReplyBody, Request, RequestBody,
    StatusReport,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info, warn};

use crate::backend::Filter;
use crate::peer::AllowedPeer;

/// Connections served at once; the daemon needs one, the rest is slack
/// for operators' `ctl` calls.
pub const MAX_CONNECTIONS: usize = 8;

/// Shared by all connections.
#[derive(Debug, Clone)]
pub struct Shared {
    filter: Arc<Mutex<Filter>>,
    peer: AllowedPeer,
}

impl Shared {
    pub fn new(filter: Filter, peer: AllowedPeer) -> Self {
        Shared {
            filter: Arc::new(Mutex::new(filter)),
            peer,
        }
    }

    /// The filter itself, for the watch that restores it.
    pub fn filter(&self) -> Arc<Mutex<Filter>> {
        self.filter.clone()
    }

    /// Runs `f` on the filter on a blocking thread: kernel transactions
    /// take up to a few hundred ms and must not stall the accept loop.
    async fn with_filter<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Filter) -> Result<T, ProtocolError> + Send + 'static,
    ) -> Result<T, ProtocolError> {
        let filter = self.filter.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = filter
                .lock()
                .map_err(|_| ProtocolError::new(ErrorCode::Internal, "filter lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| ProtocolError::new(ErrorCode::Internal, format!("filter task failed: {e}")))?
    }

    /// Tears the filter down (for `teardown_on_stop`).
    pub async fn teardown(&self) -> Result<(), ProtocolError> {
        self.with_filter(|f| f.teardown()).await
    }
}

/// Serves `listener` until `shutdown` resolves.
pub async fn serve(listener: UnixListener, shared: Shared, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "failed to accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let pid = match shared.peer.check(&stream) {
            Ok(pid) => pid,
            Err(e) => {
                warn!("refused connection: {e}");
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!(
                ?pid,
                "refused connection: {MAX_CONNECTIONS} connections already open"
            );
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(
            async move {
                debug!("connected");
                handle(stream, shared).await;
                debug!("disconnected");
                drop(permit);
            }
            .instrument(tracing::info_span!("conn", peer_pid = ?pid)),
        );
    }
}

/// The id of a request we could not parse, if its JSON has one.
fn salvage_id(payload: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

async fn send(stream: &mut UnixStream, reply: &Reply) -> bool {
    match protocol::io::write_frame(stream, reply).await {
        Ok(()) => true,
        Err(e) => {
            debug!(error = %e, "failed to send a reply");
            false
        }
    }
}

async fn handle(mut stream: UnixStream, shared: Shared) {
    let mut greeted = false;
    loop {
        let payload = match protocol::io::read_payload(&mut stream).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e @ (FrameError::TooLarge { .. } | FrameError::Empty)) => {
                // The payload was not read, so the stream has lost its
                // place: answer, then close.
                warn!("refused frame: {e}");
                let reply = Reply {
                    id: 0,
                    body: ReplyBody::Error(ProtocolError::new(e.code(), e.to_string())),
                };
                send(&mut stream, &reply).await;
                return;
            }
            Err(e) => {
                debug!(error = %e, "connection ended");
                return;
            }
        };
        let request: Request = match serde_json::from_slice(&payload) {
            Ok(r) => r,
            Err(e) => {
                warn!("malformed request: {e}");
                let reply = Reply {
                    id: salvage_id(&payload),
                    body: ReplyBody::Error(ProtocolError::new(
                        ErrorCode::Malformed,
                        format!("malformed request: {e}"),
                    )),
                };
                if !send(&mut stream, &reply).await {
                    return;
                }
                continue;
            }
        };
        let id = request.id;
        let op = request.body.op();
        let span = tracing::info_span!("request", id, op);
        let body = async {
            let result = answer(&shared, request.body, &mut greeted).await;
            match &result {
                ReplyBody::Error(e) => warn!(code = ?e.code, "refused: {}", e.message),
                ReplyBody::Applied(s) => {
                    info!(
                        macs = s.mac_count,
                        generation = s.generation,
                        micros = s.apply_micros,
                        "applied"
                    )
                }
                _ => debug!("answered"),
            }
            result
        }
        .instrument(span)
        .await;
        if !send(&mut stream, &Reply { id, body }).await {
            return;
        }
    }
}

async fn answer(shared: &Shared, body: RequestBody, greeted: &mut bool) -> ReplyBody {
    if let Err(e) = body.validate() {
        return ReplyBody::Error(e);
    }
    if !*greeted && !matches!(body, RequestBody::Hello { .. }) {
        return ReplyBody::Error(ProtocolError::new(
            ErrorCode::HelloRequired,
            "the first request on a connection must be hello",
        ));
    }
    let result = match body {
        RequestBody::Hello { .. } => {
            *greeted = true;
            let backend = shared
                .with_filter(|f| Ok(f.backend_name()))
                .await
                .unwrap_or("unknown")
                .to_owned();
            info!(version = PROTOCOL_VERSION, %backend, "hello");
            Ok(ReplyBody::Hello {
                version: PROTOCOL_VERSION,
                backend,
            })
        }
        RequestBody::Sync(state) => {
            debug!(?state, "sync");
            shared
                .with_filter(move |f| f.sync(&state))
                .await
                .map(ReplyBody::Applied)
        }
        RequestBody::Add { macs } => shared
            .with_filter(move |f| f.add(&macs))
            .await
            .map(ReplyBody::Applied),
        RequestBody::Remove { macs } => shared
            .with_filter(move |f| f.remove(&macs))
            .await
            .map(ReplyBody::Applied),
        RequestBody::Status => shared
            .with_filter(|f| {
                let (applied, generation) = f.status()?;
                Ok(StatusReport {
                    backend: f.backend_name().to_owned(),
                    applied,
                    generation,
                })
            })
            .await
            .map(ReplyBody::Status),
        RequestBody::Teardown => shared
            .with_filter(|f| f.teardown())
            .await
            .map(|()| ReplyBody::TornDown),
    };
    result.unwrap_or_else(ReplyBody::Error)
}
