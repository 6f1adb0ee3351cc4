//! Bounds on the HTTP API's connections: how long a client may take to send
//! a request's headers, how long a keep-alive connection may sit idle, and
//! how many connections are open at once.
//!
//! Every connection is in one of two phases. *Busy* from the moment its
//! request's headers are complete until its response has been written: no
//! timer runs (a held report may legitimately take `report_hold`).
//! *Waiting* otherwise: a new connection, or a keep-alive one between
//! requests. A waiting connection is closed when its request has started
//! (first byte, or the accept for a new connection) and its headers are not
//! complete `header_timeout` later, or when it stays silent `idle_timeout`
//! after its last response.
//!
//! At `max_connections` the oldest *waiting* connection is closed to make
//! room (a half-open connection never finishes; a real client sends its
//! headers at once and is busy by the time it could be chosen), so a flood
//! of half-open connections cannot starve real clients. Only when every
//! connection is busy is the new one refused. Either is logged, at most
//! every ten seconds.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The settings (`http_header_timeout`, `http_idle_timeout`,
/// `max_connections`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Busy,
    Waiting {
        since: Instant,
        request_started: Option<Instant>,
    },
}

/// Why a connection was closed by these bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    HeaderTimeout,
    IdleTimeout,
}

/// One connection's phase and the signals its task waits on.
#[derive(Debug)]
pub struct Connection {
    phase: Mutex<Phase>,
    /// The phase moved so the deadline may have changed.
    changed: Notify,
    /// Closed to make room for a new connection.
    evicted: Notify,
}

impl Connection {
    fn new(now: Instant) -> Self {
        Connection {
            phase: Mutex::new(Phase::Waiting {
                since: now,
                request_started: Some(now),
            }),
            changed: Notify::new(),
            evicted: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection must be closed if nothing changes, and why.
    pub fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Closed)> {
        match *self.phase() {
            Phase::Busy => None,
            Phase::Waiting {
                request_started: Some(t),
                ..
            } => Some((t + limits.header_timeout, Closed::HeaderTimeout)),
            Phase::Waiting { since, .. } => Some((since + limits.idle_timeout, Closed::IdleTimeout)),
        }
    }

    /// Resolves when the phase changed (the deadline must be read again).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Resolves when the registry chose this connection to make room.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// A request's headers are complete: no timer until its response is out.
    /// The phase returns to waiting when the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> BusyGuard {
        *self.phase() = Phase::Busy;
        BusyGuard(Arc::clone(self))
    }

    fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Waiting {
            request_started: started @ None,
            ..
        } = &mut *phase
        {
            *started = Some(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Busy => None,
            Phase::Waiting { since, .. } => Some(since),
        }
    }
}

/// Marks its connection waiting again when dropped (the response body has
/// been written, or the request was abandoned).
#[derive(Debug)]
pub struct BusyGuard(Arc<Connection>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *self.0.phase() = Phase::Waiting {
            since: Instant::now(),
            request_started: None,
        };
        self.0.changed.notify_one();
    }
}

/// The open connections, capped at `max_connections`.
#[derive(Debug)]
pub struct Registry {
    max: usize,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    emptied: Notify,
    report: Mutex<CapReport>,
}

#[derive(Debug, Default)]
struct CapReport {
    last: Option<Instant>,
    evicted: u64,
    refused: u64,
}

/// Log the cap at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// An admitted connection; leaves the registry when dropped.
#[derive(Debug)]
pub struct Admitted {
    pub conn: Arc<Connection>,
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        open.remove(&self.id);
        if open.is_empty() {
            self.registry.emptied.notify_waiters();
        }
    }
}

impl Registry {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Registry {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            emptied: Notify::new(),
            report: Mutex::new(CapReport::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a new connection, closing the oldest waiting one when the cap
    /// is reached; `None` (refuse it) when every open connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.lock();
        let mut evicted = false;
        if open.len() >= self.max {
            let oldest = open
                .iter()
                .filter_map(|(id, c)| c.waiting_since().map(|s| (s, *id)))
                .min();
            match oldest.and_then(|(_, id)| open.remove(&id)) {
                Some(victim) => {
                    victim.evicted.notify_one();
                    evicted = true;
                }
                None => {
                    drop(open);
                    self.at_cap(false);
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection::new(Instant::now()));
        open.insert(id, Arc::clone(&conn));
        drop(open);
        if evicted {
            self.at_cap(true);
        }
        Some(Admitted {
            conn,
            id,
            registry: Arc::clone(self),
        })
    }

    fn at_cap(&self, evicted: bool) {
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        if evicted {
            r.evicted += 1;
        } else {
            r.refused += 1;
        }
        let now = Instant::now();
        if r.last.is_none_or(|t| now.duration_since(t) >= REPORT_EVERY) {
            tracing::warn!(
                max_connections = self.max,
                closed_waiting = r.evicted,
                refused = r.refused,
                "connection limit reached: closing the oldest connections still waiting for a request \
                 (refusing new ones only when all are busy); counts since the last such message"
            );
            *r = CapReport {
                last: Some(now),
                ..CapReport::default()
            };
        }
    }

    /// Resolves when no connection is open.
    pub async fn wait_empty(&self) {
        loop {
            let notified = self.emptied.notified();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// A stream that tells its connection when request bytes arrive (so the
/// header timeout starts at a keep-alive connection's first byte).
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Connection>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, conn: Arc<Connection>) -> Self {
        Tracked { inner, conn }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.bytes_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// File descriptors kept free of connections: the database, the helper's
/// socket, Ironic and Keystone clients, logs.
const RESERVED_FDS: u64 = 64;

/// Raises the soft open-files limit to the hard one, so the connection cap,
/// not the kernel, decides; returns the soft limit in force.
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
            return Some(soft);
        }
        tracing::debug!("open-files limit raised from {soft} to {hard}");
    }
    Some(hard.max(soft))
}

/// `limits` with the cap lowered (and a warning) when the open-files limit
/// could not hold it.
pub fn fit_to_open_files(mut limits: ConnectionLimits) -> ConnectionLimits {
    use nix::sys::resource::{Resource, getrlimit};
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let room = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
        if room < limits.max_connections {
            tracing::warn!(
                "max_connections = {} does not fit the open-files limit {soft} ({RESERVED_FDS} kept for other files); \
                 using {room}: raise LimitNOFILE= in the unit",
                limits.max_connections
            );
            limits.max_connections = room;
        }
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_oldest_waiting_connection_makes_room_and_busy_ones_are_kept() {
        let reg = Registry::new(2);
        let a = reg.admit().expect("first");
        let b = reg.admit().expect("second");
        let _busy_b = b.conn.busy();
        // a is the only waiting one: it is chosen, b (busy) is kept.
        let c = reg.admit().expect("third admitted by closing a");
        tokio::time::timeout(Duration::from_secs(1), a.conn.evicted())
            .await
            .expect("a was told to close");
        assert_eq!(reg.len(), 2);
        let _busy_c = c.conn.busy();
        assert!(reg.admit().is_none(), "all busy: refused");
        drop(a);
        assert_eq!(reg.len(), 2, "a had already left the registry");
    }

    #[tokio::test]
    async fn deadlines_follow_the_phase() {
        let limits = ConnectionLimits::default();
        let reg = Registry::new(4);
        let a = reg.admit().expect("admitted");
        assert_eq!(a.conn.deadline(&limits).map(|d| d.1), Some(Closed::HeaderTimeout));
        let guard = a.conn.busy();
        assert!(a.conn.deadline(&limits).is_none());
        drop(guard);
        assert_eq!(a.conn.deadline(&limits).map(|d| d.1), Some(Closed::IdleTimeout));
        a.conn.bytes_read();
        assert_eq!(a.conn.deadline(&limits).map(|d| d.1), Some(Closed::HeaderTimeout));
    }
}
