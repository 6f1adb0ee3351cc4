//! The running daemon: shared state, start-up in discoverd 1.0's order
//! (spec §9), background tasks, and serving until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::auth::{AuthError, Authenticator};
use crate::config::Config;
use crate::firewall::{Firewall, FirewallSettings};
use crate::ironic::{IronicClient, IronicError, RetryPolicy};
use crate::keystone::{KeystoneError, Session, SessionTokens};
use crate::node_cache::{CacheError, NodeCache};
use crate::process::{HookChain, HookSettings, UnknownHook};
use crate::{api, periodic};

/// Most background tasks (introspection starts and finishes) at once;
/// beyond this, new ones wait for a slot instead of piling up.
const MAX_BACKGROUND_TASKS: usize = 4096;

/// Intervals the flows poll at; shortened in tests.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Between power-state polls after power-off, and between power
    /// validations while waiting for new IPMI credentials (1.0: 5 s).
    pub power_poll: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            power_poll: Duration::from_secs(5),
        }
    }
}

/// Everything handlers and tasks share.
#[derive(Debug, Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub cache: NodeCache,
    pub ironic: IronicClient,
    pub firewall: Firewall,
    pub hooks: Arc<HookChain>,
    pub auth: Arc<Authenticator>,
    pub metrics: crate::metrics::Metrics,
    pub timings: Timings,
    tasks: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Hook(#[from] UnknownHook),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("failed to reach Ironic at {url} after {attempts} attempts: {source}")]
    Ironic {
        url: String,
        attempts: u32,
        #[source]
        source: IronicError,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("failed to talk to Keystone: {0}")]
    Keystone(#[from] KeystoneError),
    #[error("failed to serve HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

impl App {
    /// Builds the shared state from its parts (used by `run` and tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        cache: NodeCache,
        ironic: IronicClient,
        firewall: Firewall,
        auth: Arc<Authenticator>,
        timings: Timings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, StartupError> {
        let hooks = HookChain::from_names(
            &config.processing_hooks,
            HookSettings {
                overwrite_existing: config.overwrite_existing,
                ports_for_inactive_interfaces: config.ports_for_inactive_interfaces,
            },
        )?;
        let metrics = crate::metrics::Metrics::new();
        let ironic = ironic.with_metrics(metrics.clone());
        Ok(App {
            metrics,
            config: Arc::new(config),
            cache,
            ironic,
            firewall,
            hooks: Arc::new(hooks),
            auth,
            timings,
            tasks: Arc::new(Semaphore::new(MAX_BACKGROUND_TASKS)),
            shutdown,
        })
    }

    /// Runs `fut` in the background, bounded, and cancelled at shutdown.
    pub fn spawn(&self, what: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
        let slots = self.tasks.clone();
        let mut stop = self.shutdown.clone();
        tokio::spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else {
                return;
            };
            tokio::select! {
                _ = fut => {}
                _ = stop.wait_for(|s| *s) => tracing::debug!(task = what, "cancelled by shutdown"),
            }
        });
    }

    /// Resolves when shutdown starts.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// Builds the Ironic client: `ironic_url` when set, otherwise the
/// `baremetal` endpoint of the service user's Keystone catalog; tokens
/// from that session when there is one (none for a noauth Ironic).
pub async fn ironic_client(
    config: &Config,
    session: Option<Arc<Session>>,
) -> Result<IronicClient, StartupError> {
    let url = match (&config.ironic_url, &session) {
        (Some(u), _) => u.clone(),
        (None, Some(s)) => s.endpoint("baremetal", "public").await?,
        (None, None) => {
            return Err(StartupError::Config(format!(
                "{}: [discoverd] ironic_url is not set and there are no Keystone credentials (os_username, os_password, os_tenant_name) to look it up; set ironic_url (standalone Ironic: http://127.0.0.1:6385)",
                config.source.display()
            )));
        }
    };
    let tokens = session.map(|s| Arc::new(SessionTokens(s)) as Arc<dyn crate::ironic::TokenSource>);
    IronicClient::new(
        &url,
        &config.ironic_api_version,
        config.ironic_timeout,
        tokens,
        RetryPolicy {
            conflict_attempts: config.ironic_conflict_retries,
            conflict_period: config.ironic_conflict_retry_period,
        },
    )
    .map_err(|source| StartupError::Ironic {
        url,
        attempts: 0,
        source,
    })
}

/// The firewall settings from the config.
pub fn firewall_settings(config: &Config) -> FirewallSettings {
    FirewallSettings {
        enabled: config.manage_firewall,
        socket: config.firewall_helper_socket.clone(),
        mode: config.firewall_mode,
        interfaces: config.dnsmasq_interface.clone(),
        request_timeout: Duration::from_secs(30),
    }
}

/// Start-up checks in 1.0's order, then serve until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let session = Session::from_config(&config)?;
    let auth = Authenticator::from_config(&config, session.clone())?;
    let cache = NodeCache::open(&config.database).await?;
    let ironic = ironic_client(&config, session).await?;
    check_ironic(&ironic, &config).await?;
    let firewall = Firewall::new(firewall_settings(&config));
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = App::new(config, cache, ironic, firewall, auth, Timings::default(), stop_rx)?;
    tracing::info!(hooks = ?app.hooks.names(), "processing hooks");
    app.firewall.spawn_reconnector(app.stopping());
    periodic::spawn(&app);
    let notifier = crate::notify::Notifier::from_env();
    notifier.spawn_watchdog(app.stopping());
    spawn_ready(&app, notifier.clone());
    let router = api::router(app.clone());
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            notifier.stopping();
            let _ = stop_tx.send(true);
        })
        .await
        .map_err(StartupError::Serve);
    tracing::info!("stopped");
    result
}

/// Tells systemd the daemon is ready: after the first successful firewall
/// sync (nodes must not PXE-boot into discovery unfiltered), or at once
/// when the firewall is not managed.
fn spawn_ready(app: &App, notifier: crate::notify::Notifier) {
    let fw = app.firewall.clone();
    let managed = app.config.manage_firewall;
    let stop = app.stopping();
    tokio::spawn(async move {
        let wait = async {
            if managed {
                notifier.status("waiting for the first firewall sync");
                while !fw.status().synced_once {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        tokio::select! {
            _ = wait => {
                tracing::info!("ready");
                notifier.ready();
            }
            _ = stop => {}
        }
    });
}

/// §9 step 5: `ironic_retry_attempts + 1` tries, `ironic_retry_period`
/// apart, then give up.
async fn check_ironic(ironic: &IronicClient, config: &Config) -> Result<(), StartupError> {
    let attempts = config.ironic_retry_attempts + 1;
    let ironic = ironic.single_attempt();
    let mut last = None;
    for attempt in 1..=attempts {
        match ironic.check_api_version().await {
            Ok(max) => {
                tracing::info!(url = ironic.base_url(), max_version = %max, using = %config.ironic_api_version, "Ironic is reachable");
                return Ok(());
            }
            // Too old an Ironic will not get newer by waiting.
            Err(e @ IronicError::Rejected { .. }) => {
                return Err(StartupError::Ironic {
                    url: ironic.base_url().to_owned(),
                    attempts: attempt,
                    source: e,
                });
            }
            Err(e) => {
                tracing::warn!(attempt, of = attempts, "Ironic is not reachable yet: {e}");
                last = Some(e);
                if attempt < attempts {
                    tokio::time::sleep(config.ironic_retry_period).await;
                }
            }
        }
    }
    Err(StartupError::Ironic {
        url: ironic.base_url().to_owned(),
        attempts,
        source: last.unwrap_or_else(|| IronicError::Unavailable("no attempt made".into())),
    })
}
