//! Test support shared by the integration tests, the end-to-end crate
//! and the benchmarks: in-process fakes of Ironic and Keystone, a daemon
//! wired in-process on a temporary SQLite file, and the store conformance
//! suite. Never a dependency of a product crate (`publish = false`).

pub mod fake_ironic;
pub mod fake_keystone;
pub mod postgres;
pub mod router;
pub mod rule_conformance;
pub mod store_conformance;

pub use fake_ironic::{Call, FakeIronic, Fault};
pub use fake_keystone::FakeKeystone;
pub use router::call;

use std::path::Path;
use std::time::Duration;

use discoverd::app::{App, Timings};
use discoverd::config::Config;
use discoverd::daemon;
use discoverd::firewall::Firewall;
use discoverd::keystone::Session;

/// A daemon's state and router, in-process, on a temporary SQLite file,
/// talking to the Ironic at `ironic_url`. `extra` adds `[discoverd]` lines.
#[derive(Debug)]
pub struct TestApp {
    pub app: App,
    pub router: axum::Router,
    pub dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl TestApp {
    pub async fn new(ironic_url: &str, extra: &str) -> anyhow::Result<Self> {
        Self::on_database(ironic_url, None, extra).await
    }

    /// Like [`TestApp::new`], on `database` (a `postgresql://` URL, shared
    /// by several daemons) when given.
    pub async fn on_database(ironic_url: &str, database: Option<&str>, extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database = match database {
            Some(d) => d.to_owned(),
            None => dir.path().join("discoverd.sqlite").display().to_string(),
        };
        let text = format!(
            "[discoverd]\ndatabase = {database}\nironic_url = {ironic_url}\nmanage_firewall = false\nironic_conflict_retry_period = 0.01\n{extra}\n",
        );
        let text = if text.contains("auth_strategy") {
            text
        } else {
            format!("{text}auth_strategy = noauth\n")
        };
        let ini = common::ini::IniFile::parse(Path::new("test.conf"), &text)?;
        let config = Config::from_ini(&ini)?;
        let session = Session::from_config(&config)?;
        let auth = discoverd::api::auth::Authenticator::from_config(&config, session.clone())?;
        let stores = daemon::open_store(&config.database, config.lease_time).await?;
        let ironic = daemon::ironic_client(&config, session).await?;
        let firewall = Firewall::new(daemon::firewall_settings(&config));
        let (stop, rx) = tokio::sync::watch::channel(false);
        let timings = Timings {
            power_poll: Duration::from_millis(10),
            report_hold: Duration::from_secs(10),
        };
        let app = App::new(config, stores.nodes, stores.rules, ironic, firewall, timings, rx)?;
        let router = discoverd::api::router(app.clone(), auth);
        Ok(TestApp {
            app,
            router,
            dir,
            _stop: stop,
        })
    }
}
