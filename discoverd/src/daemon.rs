//! Start-up in discoverd 1.0's order (spec §9), what a previous run left
//! unfinished, and serving until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api;
use crate::api::auth::{AuthError, Authenticator};
use crate::app::{App, Timings};
use crate::config::{Config, Database};
use crate::firewall::{Firewall, FirewallSettings};
use crate::hooks::UnknownHook;
use crate::ironic::{IronicClient, IronicError, IronicErrorKind, RetryPolicy};
use crate::keystone::{KeystoneError, Session, SessionTokens};
use crate::store::postgres::PostgresStore;
use crate::store::rules::RuleStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{NodeStore, StoreError};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Hook(#[from] UnknownHook),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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
            budget: config.ironic_retry_budget,
            backoff: config.ironic_retry_backoff,
            max_backoff: config.ironic_retry_max_backoff,
        },
    )
    .map(|c| c.with_max_requests(config.ironic_max_requests))
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
        // Auto-discovery lets unknown MACs through in any mode, always.
        discovery: config.discovery.is_some(),
        interfaces: config.dnsmasq_interface.clone(),
        request_timeout: Duration::from_secs(30),
    }
}

/// The node store the `database` option names.
pub async fn open_store(database: &Database, lease_time: Duration) -> Result<Stores, StoreError> {
    Ok(match database {
        Database::Sqlite(path) => {
            let sqlite = Arc::new(SqliteStore::open(path).await?);
            Stores {
                nodes: sqlite.clone(),
                rules: sqlite,
            }
        }
        Database::Postgres(url) => {
            let postgres = Arc::new(PostgresStore::open_with_lease(url, lease_time).await?);
            Stores {
                nodes: postgres.clone(),
                rules: postgres,
            }
        }
    })
}

/// What one `database` opens: the node store and the rule store (the same
/// database, seen through its two traits).
#[derive(Debug)]
pub struct Stores {
    pub nodes: Arc<dyn NodeStore>,
    pub rules: Arc<dyn RuleStore>,
}

/// Start-up checks in 1.0's order, then serve until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let session = Session::from_config(&config)?;
    let auth = Authenticator::from_config(&config, session.clone())?;
    let stores = open_store(&config.database, config.lease_time).await?;
    let ironic = ironic_client(&config, session).await?;
    check_ironic(&ironic, &config).await?;
    if config.discovery.is_some() && config.firewall_mode == common::FilterMode::Allow {
        tracing::info!(
            "node_not_found_hook is set: the DHCP filter lets unknown MACs through (firewall_mode = allow acts as deny)"
        );
    }
    let firewall = Firewall::new(firewall_settings(&config));
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = App::new(
        config,
        stores.nodes,
        stores.rules,
        ironic,
        firewall,
        Timings::default(),
        stop_rx,
    )?;
    tracing::info!(hooks = ?app.processor.hooks().names(), "processing hooks");
    app.firewall.spawn_reconnector(app.tasks.stopping());
    resume(&app).await?;
    app.spawn_periodic();
    let notifier = crate::notify::Notifier::from_env();
    notifier.spawn_watchdog(app.tasks.stopping());
    spawn_ready(&app, notifier.clone());
    let router = api::router(app.clone(), auth);
    let limits = crate::connections::fit_to_open_files(app.config.connection_limits());
    let result = crate::server::serve(listener, router, limits, async move {
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
    let stop = app.tasks.stopping();
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

/// What a previous run left unfinished: starts not yet rebooted are
/// carried on; reports that were being processed are failed with the
/// reason (whether Ironic was fully updated is unknown), never left for
/// the timeout. On a shared database (several daemons) an unfinished node
/// may be in another daemon's hands: nothing is touched now; what a dead
/// daemon left is claimed when its lease expires ([`crate::takeover`]).
pub async fn resume(app: &App) -> Result<(), StartupError> {
    if app.store.shared() {
        tracing::info!(
            "shared node store: unfinished nodes of daemons that stop renewing their leases are taken over"
        );
        let flows = crate::takeover::Takeover {
            lifecycle: app.lifecycle.clone(),
            introspector: app.introspector.clone(),
            processor: app.processor.clone(),
        };
        crate::takeover::spawn(flows, &app.tasks);
        return Ok(());
    }
    let aborts = app.introspector.resume_aborts().await?;
    if aborts > 0 {
        tracing::warn!(nodes = aborts, "finishing aborts accepted before the restart");
    }
    let resumed = app.introspector.resume().await?;
    if resumed > 0 {
        tracing::warn!(nodes = resumed, "carrying on starts accepted before the restart");
    }
    for s in app.store.in_state(crate::domain::State::Reapplying).await? {
        let msg = format!(
            "The daemon restarted while reapplying node {}'s data; Ironic may be partly updated: reapply it again",
            s.node
        );
        app.lifecycle
            .finish(s.node, crate::introspection::Outcome::Failed(msg))
            .await?;
    }
    for s in app.store.in_state(crate::domain::State::Processing).await? {
        let msg = format!(
            "The daemon restarted while processing node {}'s report; Ironic may be partly updated: introspect it again",
            s.node
        );
        app.lifecycle
            .finish(s.node, crate::introspection::Outcome::Failed(msg))
            .await?;
    }
    Ok(())
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
            Err(e) if matches!(e.kind, IronicErrorKind::Rejected { .. }) => {
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
        source: last.unwrap_or_else(|| {
            IronicError::new("GET", "/v1", IronicErrorKind::Protocol("no attempt made".into()))
        }),
    })
}
