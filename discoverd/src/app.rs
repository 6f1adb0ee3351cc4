//! The application container: every part of the daemon, built once and
//! wired together. Start-up and serving are in `daemon.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::events::EventBus;
use crate::firewall::Firewall;
use crate::hooks::{HookChain, HookSettings, UnknownHook};
use crate::introspection::{Introspector, Lifecycle, StartSettings};
use crate::ironic::IronicClient;
use crate::metrics::Metrics;
use crate::periodic::{self, PeriodicSettings};
use crate::processing::{ProcessSettings, Processor};
use crate::rules::RuleBook;
use crate::store::NodeStore;
use crate::store::rules::RuleStore;
use crate::tasks::Tasks;

/// Intervals the flows poll or wait at; shortened in tests.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Upper bound on the pauses between power validations while waiting
    /// for new IPMI credentials; the config's `power_poll_initial`/`power_poll_max`
    /// apply below it. Unbounded by default; tests shorten it.
    pub power_poll: Duration,
    /// How long a report for a node still `starting` is held.
    pub report_hold: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            power_poll: Duration::MAX,
            report_hold: Duration::from_secs(30),
        }
    }
}

/// The application container: every part, built once. Only the API layer
/// and start-up see it; the flows get the narrow handles they use. One
/// `Arc` to clone: axum clones the state for every request, and cloning
/// and dropping each part's own handles (a few dozen reference counts)
/// took a sixth of the daemon's CPU under a wrk load (perf, 2026-12-03).
#[derive(Debug, Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`App`].
#[derive(Debug)]
pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Arc<dyn NodeStore>,
    pub ironic: IronicClient,
    pub firewall: Firewall,
    pub lifecycle: Lifecycle,
    pub introspector: Introspector,
    pub processor: Processor,
    pub metrics: Metrics,
    pub bus: EventBus,
    pub tasks: Tasks,
    /// Introspection rules (kept in the same database as the nodes).
    pub rules: RuleBook,
}

impl App {
    /// Wires the parts together (used by `daemon::run` and tests).
    pub fn new(
        config: Config,
        store: Arc<dyn NodeStore>,
        rules: Arc<dyn RuleStore>,
        ironic: IronicClient,
        firewall: Firewall,
        timings: Timings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, UnknownHook> {
        let hooks = HookChain::from_names(
            &config.processing_hooks,
            HookSettings {
                overwrite_existing: config.overwrite_existing,
                ports_for_inactive_interfaces: config.ports_for_inactive_interfaces,
                disk_partitioning_spacing: config.hook_options.disk_partitioning_spacing,
                add_ports: config.hook_options.add_ports,
                keep_ports: config.hook_options.keep_ports,
                update_pxe_enabled: config.hook_options.update_pxe_enabled,
                pci_aliases: config.hook_options.pci_aliases.clone(),
                cidr_map: config.hook_options.cidr_map.clone(),
                boot_mode: config.hook_options.boot_mode,
                cpu_flags: config.hook_options.cpu_flags.clone(),
                extra_hardware_strict: config.hook_options.extra_hardware_strict,
                // Set by from_names from the list.
                root_disk_selection: false,
            },
        )?;
        let metrics = Metrics::new();
        let ironic = ironic.with_observer(Arc::new(metrics.clone()));
        let bus = EventBus::new();
        let tasks = Tasks::new(shutdown);
        metrics.count_events(&bus, tasks.stopping());
        // 1.0's extra.on_discovery on every node whose run fails.
        crate::introspection::mark::mark_failed_nodes(&bus, ironic.clone(), store.clone(), &tasks);
        let lifecycle = Lifecycle::new(store.clone(), bus.clone(), firewall.clone());
        let introspector = Introspector::new(
            ironic.clone(),
            lifecycle.clone(),
            StartSettings {
                enable_setting_ipmi_credentials: config.enable_setting_ipmi_credentials,
                timeout_secs: config.timeout_secs(),
                request_retry_budget: config.ironic_request_retry_budget,
                can_manage_boot: config.can_manage_boot,
                introspection_delay: config.introspection_delay,
            },
            tasks.clone(),
        );
        let rules = RuleBook::new(rules);
        let processor = Processor::new(
            ironic.clone(),
            lifecycle.clone(),
            Arc::new(hooks),
            ProcessSettings {
                timeout: config.timeout,
                power_poll: crate::backoff::BackoffSettings {
                    initial: config.power_poll_initial.min(timings.power_poll),
                    max: config.power_poll_max.min(timings.power_poll),
                },
                report_hold: timings.report_hold,
                request_retry_budget: config.ironic_request_retry_budget,
                store_data: config.store_data == crate::config::StoreData::Database,
            },
            tasks.clone(),
        )
        .with_rules(rules.clone())
        .with_ramdisk_logs(config.hook_options.ramdisk_logs.clone());
        let processor = match &config.discovery {
            Some(d) => processor.with_discovery(d.clone()),
            None => processor,
        };
        Ok(App(Arc::new(AppParts {
            config: Arc::new(config),
            store,
            ironic,
            firewall,
            lifecycle,
            introspector,
            processor,
            metrics,
            bus,
            tasks,
            rules,
        })))
    }

    /// The periodic tasks' settings from the config.
    pub fn periodic_settings(&self) -> PeriodicSettings {
        let c = &self.config;
        PeriodicSettings {
            manage_firewall: c.manage_firewall,
            firewall_update_period: c.firewall_update_period,
            timeout: c.timeout,
            node_status_keep_time: c.node_status_keep_time,
            clean_up_period: c.clean_up_period,
        }
    }

    /// Starts the periodic tasks.
    pub fn spawn_periodic(&self) {
        let metrics = self.metrics.clone();
        periodic::spawn(
            self.lifecycle.clone(),
            self.ironic.clone(),
            self.periodic_settings(),
            Arc::new(move |took| metrics.firewall_sync_seconds.observe(took.as_secs_f64())),
            &self.tasks,
        );
    }
}
