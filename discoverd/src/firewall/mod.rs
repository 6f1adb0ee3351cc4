//! The DHCP filter's desired state, and keeping the helper in step with it.
//!
//! The daemon computes *what* the filter must hold with a pure function of
//! (Ironic's port MACs, MACs under introspection, how many introspections
//! run, mode, auto-discovery) and sends it to `ironic-discoverd-fw-helper`,
//! which owns the kernel. Full syncs happen at startup and on every
//! periodic tick; introspection start and finish send incremental changes,
//! or a full sync when the plan changes (deny mode opening for unknown MACs
//! at the first running introspection, closing after the last). When the helper is away the daemon keeps
//! working, remembers that the filter is stale, and a reconnector resends
//! the full state as soon as the helper answers again. When Ironic cannot
//! be read, the last good state stays.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::protocol::{self, ErrorCode, PROTOCOL_VERSION, Reply, ReplyBody, Request, RequestBody};
use common::{FilterMode, FilterState, InterfaceName};
use tokio::net::UnixStream;

mod changes;
mod desired;

pub use desired::{DesiredMacs, Plan, desired_macs, plan};

/// How often the reconnector checks for a stale filter.
const RECONNECT_POLL: Duration = Duration::from_millis(250);

/// Settings from the config file.
#[derive(Debug, Clone)]
pub struct FirewallSettings {
    /// `manage_firewall`; when false every call is a no-op.
    pub enabled: bool,
    pub socket: PathBuf,
    /// `firewall_mode` as configured.
    pub mode: FilterMode,
    /// Auto-discovery is on (`node_not_found_hook` set): unknown MACs
    /// always pass.
    pub discovery: bool,
    pub interfaces: Vec<InterfaceName>,
    pub request_timeout: Duration,
}

/// Why the helper could not be made to hold the state.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("failed to reach the firewall helper at {path}: {message}")]
    Unreachable { path: String, message: String },
    #[error("the firewall helper did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the firewall helper refused the request ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("unexpected answer from the firewall helper: {0}")]
    Protocol(String),
}

/// What `/readyz` and metrics report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallStatus {
    pub enabled: bool,
    pub connected: bool,
    pub synced_once: bool,
    /// True when the kernel may not hold the desired state.
    pub stale: bool,
    pub mac_count: usize,
    pub last_sync: Option<SystemTime>,
    pub last_error: Option<String>,
}

/// Outcome of a full sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub mac_count: usize,
    pub skipped: Vec<String>,
}

#[derive(Debug, Default)]
struct Desired {
    /// Ironic's port MACs from the last successful listing; `None` until then.
    ironic: Option<Vec<String>>,
    active: HashSet<String>,
    /// How many introspections run (nodes not finished, with or without
    /// MACs), as the store last said.
    introspections: u64,
    /// The plan of the state last computed; `None` before the first.
    plan: Option<Plan>,
    status: FirewallStatus,
}

impl Desired {
    /// Records the new count and returns the plan, logging when unknown
    /// MACs start or stop passing (and why).
    fn replan(&mut self, settings: &FirewallSettings, introspections: u64) -> Plan {
        let before = self.plan;
        self.introspections = introspections;
        let now = plan(settings.mode, settings.discovery, introspections);
        self.plan = Some(now);
        desired::log_change(before, now, settings.discovery, introspections);
        now
    }
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    next_id: u64,
}

#[derive(Debug)]
struct Inner {
    settings: FirewallSettings,
    desired: Mutex<Desired>,
    /// Start and finish read the number of running introspections and
    /// apply it one at a time, so that the last applied count is the
    /// newest.
    gate: tokio::sync::Mutex<()>,
    /// One request at a time on one connection.
    conn: tokio::sync::Mutex<Option<Conn>>,
}

/// The daemon's side of the filter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Firewall {
    inner: Arc<Inner>,
}

impl Firewall {
    pub fn new(settings: FirewallSettings) -> Self {
        let status = FirewallStatus {
            enabled: settings.enabled,
            ..FirewallStatus::default()
        };
        Firewall {
            inner: Arc::new(Inner {
                settings,
                desired: Mutex::new(Desired {
                    status,
                    ..Desired::default()
                }),
                gate: tokio::sync::Mutex::new(()),
                conn: tokio::sync::Mutex::new(None),
            }),
        }
    }

    fn desired(&self) -> std::sync::MutexGuard<'_, Desired> {
        self.inner
            .desired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> FirewallStatus {
        self.desired().status.clone()
    }

    pub fn mode(&self) -> FilterMode {
        self.inner.settings.mode
    }

    /// The plan the filter follows now; `None` before the first sync.
    pub fn plan(&self) -> Option<Plan> {
        self.desired().plan
    }

    /// Records a failure: the kernel may now differ from the desired state.
    fn failed(&self, e: &FirewallError) {
        let mut d = self.desired();
        d.status.stale = true;
        d.status.last_error = Some(e.to_string());
        if matches!(e, FirewallError::Unreachable { .. } | FirewallError::Timeout(_)) {
            d.status.connected = false;
        }
    }

    /// Sends one request on the (re)opened connection, with a timeout.
    async fn request(&self, body: RequestBody) -> Result<ReplyBody, FirewallError> {
        let timeout = self.inner.settings.request_timeout;
        let mut guard = self.inner.conn.lock().await;
        let result = tokio::time::timeout(timeout, async {
            if guard.is_none() {
                *guard = Some(self.connect().await?);
            }
            let conn = guard
                .as_mut()
                .ok_or_else(|| FirewallError::Protocol("no connection".into()))?;
            exchange(conn, body).await
        })
        .await
        .unwrap_or(Err(FirewallError::Timeout(timeout)));
        match &result {
            Ok(_) => self.desired().status.connected = true,
            // The stream may be mid-frame: start over next time.
            Err(_) => *guard = None,
        }
        result
    }

    async fn connect(&self) -> Result<Conn, FirewallError> {
        let path = &self.inner.settings.socket;
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| FirewallError::Unreachable {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        let mut conn = Conn { stream, next_id: 1 };
        match exchange(
            &mut conn,
            RequestBody::Hello {
                version: PROTOCOL_VERSION,
            },
        )
        .await?
        {
            ReplyBody::Hello { backend, .. } => {
                tracing::info!(%backend, socket = %path.display(), "connected to the firewall helper");
                Ok(conn)
            }
            other => Err(FirewallError::Protocol(format!("hello answered with {other:?}"))),
        }
    }

    /// The full state from what is remembered, if Ironic was read once.
    fn full_state(&self) -> Option<(FilterState, Vec<String>)> {
        let d = self.desired();
        let ironic = d.ironic.as_ref()?;
        let plan = d.plan?;
        let want = desired_macs(plan, ironic, &d.active);
        Some((
            FilterState {
                interfaces: self.inner.settings.interfaces.clone(),
                mode: plan.wire_mode(),
                macs: want.macs,
            },
            want.skipped,
        ))
    }

    async fn send_full(&self) -> Result<SyncOutcome, FirewallError> {
        let Some((state, skipped)) = self.full_state() else {
            return Ok(SyncOutcome {
                mac_count: 0,
                skipped: Vec::new(),
            });
        };
        let n = state.macs.len();
        match self.request(RequestBody::Sync(state)).await {
            Ok(ReplyBody::Applied(s)) => {
                let mut d = self.desired();
                d.status.stale = false;
                d.status.synced_once = true;
                d.status.mac_count = s.mac_count;
                d.status.last_sync = Some(SystemTime::now());
                d.status.last_error = None;
                Ok(SyncOutcome {
                    mac_count: n,
                    skipped,
                })
            }
            Ok(other) => Err(refusal(other)),
            Err(e) => Err(e),
        }
        .inspect_err(|e| self.failed(e))
    }

    /// Recomputes the whole state from Ironic's ports, the active MACs and
    /// the number of running introspections, and sends it as one full sync.
    pub async fn sync(
        &self,
        ironic_port_macs: &[String],
        active_macs: &HashSet<String>,
        introspections: u64,
    ) -> Result<SyncOutcome, FirewallError> {
        if !self.inner.settings.enabled {
            return Ok(SyncOutcome {
                mac_count: 0,
                skipped: Vec::new(),
            });
        }
        {
            let mut d = self.desired();
            d.ironic = Some(ironic_port_macs.to_vec());
            d.active = active_macs.clone();
            d.replan(&self.inner.settings, introspections);
        }
        let outcome = self.send_full().await?;
        if !outcome.skipped.is_empty() {
            tracing::warn!(skipped = ?outcome.skipped, "Ironic ports with addresses that cannot be filtered were left out");
        }
        Ok(outcome)
    }

    /// Whether the helper closed the idle connection (or sent something
    /// unasked); the connection is dropped then. Never waits: a connection
    /// in use is not idle.
    fn connection_lost(&self) -> bool {
        let Ok(mut guard) = self.inner.conn.try_lock() else {
            return false;
        };
        let Some(conn) = guard.as_mut() else {
            return false;
        };
        let mut byte = [0u8; 1];
        match conn.stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            _ => {
                *guard = None;
                true
            }
        }
    }

    /// Keeps the helper in step: whenever the filter is stale (the helper
    /// was away, or a change failed), resends the full state, polling
    /// every 250 ms, until `shutdown` resolves.
    pub fn spawn_reconnector(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let fw = self.clone();
        tokio::spawn(async move {
            if !fw.inner.settings.enabled {
                return;
            }
            tokio::pin!(shutdown);
            let mut ticker = tokio::time::interval(RECONNECT_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut logged_down = false;
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = ticker.tick() => {}
                }
                if !fw.desired().status.stale && fw.connection_lost() {
                    // A restarted helper closes our connection: resync at
                    // once rather than at the next periodic tick.
                    tracing::warn!("the firewall helper closed the connection; resyncing when it is back");
                    fw.desired().status.stale = true;
                }
                let stale = fw.desired().status.stale;
                if !stale || fw.full_state().is_none() {
                    continue;
                }
                match fw.send_full().await {
                    Ok(o) => {
                        tracing::info!(macs = o.mac_count, "firewall helper back; full state resent");
                        logged_down = false;
                    }
                    Err(e) if !logged_down => {
                        tracing::warn!("firewall filter is stale, will keep retrying: {e}");
                        logged_down = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn refusal(reply: ReplyBody) -> FirewallError {
    match reply {
        ReplyBody::Error(e) => FirewallError::Refused {
            code: e.code,
            message: e.message,
        },
        other => FirewallError::Protocol(format!("unexpected reply {other:?}")),
    }
}

async fn exchange(conn: &mut Conn, body: RequestBody) -> Result<ReplyBody, FirewallError> {
    let id = conn.next_id;
    conn.next_id += 1;
    body.validate().map_err(|e| FirewallError::Refused {
        code: e.code,
        message: e.message,
    })?;
    let io = |e: protocol::FrameError| FirewallError::Protocol(e.to_string());
    protocol::io::write_frame(&mut conn.stream, &Request { id, body })
        .await
        .map_err(io)?;
    let reply: Reply = protocol::io::read_frame(&mut conn.stream)
        .await
        .map_err(io)?
        .ok_or_else(|| FirewallError::Protocol("the helper closed the connection".into()))?;
    if reply.id != id {
        return Err(FirewallError::Protocol(format!(
            "reply id {} for request {id}",
            reply.id
        )));
    }
    Ok(reply.body)
}

#[cfg(test)]
mod tests;
