//! The daemon's configuration: the `[discoverd]` section of `discoverd.conf`.
//!
//! Every ironic-discoverd 1.0 option keeps its name, meaning and default
//! (spec §2), so a 1.0-era file loads unchanged. Options this implementation
//! adds are listed after them. Unknown options are an error naming the file
//! and option: a typo such as `timout = 60` must not silently fall back to
//! the default.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::ini::{ConfigError, IniFile, Section};
use common::{FilterMode, InterfaceName};

pub mod discovery;
pub mod processing;
mod values;

pub use values::{
    AuthStrategy, DEFAULT_IRONIC_API_VERSION, DEFAULT_MAX_BODY_SIZE, Database, Secret, StoreData,
};
use values::{
    api_max_limit, auth_strategy, count, database, interfaces, introspection_delay, ironic_max_requests,
    max_body_size, max_connections, positive, timeout,
};

/// The section discoverd has always used.
pub const SECTION: &str = "discoverd";

/// Options 1.0 accepted that this implementation reads but does not need;
/// they are accepted so old files keep loading.
const ACCEPTED_LEGACY: &[&str] = &["admin_tenant_name"];

/// Processing hooks enabled when `processing_hooks` is not set.
pub const DEFAULT_HOOKS: &[&str] = &["scheduler", "validate_interfaces"];

/// The whole daemon configuration, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from, for messages.
    pub source: PathBuf,

    // --- discoverd 1.0 options ---
    /// Keystone URL for the service user (1.0: the v2.0 URL; a trailing
    /// `/v2.0` is replaced by `/v3` when talking to Keystone).
    pub os_auth_url: String,
    pub os_username: Option<String>,
    pub os_password: Option<Secret>,
    /// Project (1.0: "tenant") of the service user.
    pub os_tenant_name: Option<String>,
    /// Keystone admin endpoint used to validate operator tokens.
    pub identity_uri: String,
    /// Extra tries to reach Ironic at startup, and the pause between them.
    pub ironic_retry_attempts: u32,
    pub ironic_retry_period: Duration,
    /// Whether the DHCP filter is managed at all.
    pub manage_firewall: bool,
    /// Interfaces dnsmasq serves PXE on (1.0: one name; a comma list is accepted).
    pub dnsmasq_interface: Vec<InterfaceName>,
    pub firewall_update_period: Duration,
    /// NICs without an IP address also get ports.
    pub ports_for_inactive_interfaces: bool,
    /// Introspection timeout; `None` when the option is ≤ 0 (disabled).
    pub timeout: Option<Duration>,
    pub node_status_keep_time: Duration,
    pub clean_up_period: Duration,
    /// The scheduler hook overwrites properties that already have values.
    pub overwrite_existing: bool,
    pub enable_setting_ipmi_credentials: bool,
    pub listen_address: IpAddr,
    pub listen_port: u16,
    /// The node cache: a SQLite file, or a shared PostgreSQL database.
    pub database: Database,
    /// On a shared database: how long a daemon holds an in-flight node
    /// without renewing (renewed every third of it); a dead daemon's
    /// nodes are taken over this long after it stopped.
    pub lease_time: Duration,
    /// Hook names in the order they run.
    pub processing_hooks: Vec<String>,
    pub debug: bool,

    // --- added by this implementation ---
    pub auth_strategy: AuthStrategy,
    /// htpasswd file for `auth_strategy = http_basic`.
    pub http_basic_auth_user_file: Option<PathBuf>,
    /// Role an operator token must carry (Keystone strategy).
    pub keystone_admin_role: String,
    pub os_user_domain_name: String,
    pub os_project_domain_name: String,
    /// How long a positive token validation is reused (never past expiry).
    pub token_cache_time: Duration,
    /// Ironic endpoint; when unset it is looked up in the Keystone catalog.
    pub ironic_url: Option<String>,
    /// `X-OpenStack-Ironic-API-Version` sent on every Ironic call.
    pub ironic_api_version: String,
    /// Timeout of one Ironic HTTP call.
    pub ironic_timeout: Duration,
    /// Attempts on 409 "node locked" (1.0: 12), and the pause between them.
    pub ironic_conflict_retries: u32,
    pub ironic_conflict_retry_period: Duration,
    /// Unix socket of `ironic-discoverd-fw-helper`.
    pub firewall_helper_socket: PathBuf,
    /// `deny`: drop DHCP from known, not-introspected MACs (discoverd);
    /// `allow`: drop DHCP from everything but the MACs under introspection.
    pub firewall_mode: FilterMode,
    /// Largest accepted HTTP request body.
    pub max_body_size: usize,
    /// Log as JSON lines instead of text.
    pub json_logs: bool,
    /// Serve `/metrics` without authentication.
    pub metrics_public: bool,

    // --- Ironic retries (issue 18; docs/ironic-client.md) ---
    /// Time a background call (start, finish) may spend retrying
    /// transient Ironic failures; 0: one try.
    pub ironic_retry_budget: Duration,
    /// The same for the Ironic calls made while an HTTP client waits: all
    /// those of one ramdisk report (past it the node waits again and the
    /// report is answered 503), and the checks of a start (503).
    pub ironic_request_retry_budget: Duration,
    /// First pause between tries, doubled up to `ironic_retry_max_backoff`.
    pub ironic_retry_backoff: Duration,
    pub ironic_retry_max_backoff: Duration,
    /// Requests in flight to Ironic at most; more wait in the daemon.
    pub ironic_max_requests: usize,
    // --- speed (issue 15): power validation polling (new IPMI credentials) ---
    /// First pause before asking Ironic to validate power again; it doubles
    /// after each read up to `power_poll_max`.
    pub power_poll_initial: Duration,
    pub power_poll_max: Duration,
    // --- ironic-inspector v1 API (issue 13) ---
    /// Most statuses one `GET /v1/introspection` returns (and its default).
    pub api_max_limit: usize,
    /// Least time between two reboots into the ramdisk (ironic-inspector's
    /// option; 0 here, as discoverd 1.0 had no delay).
    pub introspection_delay: Duration,
    /// Whether this installation may set boot devices and power nodes
    /// (`manage_boot=true` starts are refused when it may not).
    pub can_manage_boot: bool,
    /// Where introspection data is kept for `GET .../data`.
    pub store_data: StoreData,
    /// Between keep-alive comments on an idle `GET /v1/events` stream.
    pub events_keep_alive: Duration,
    // --- connection bounds (hardening) ---
    /// A request's headers must be complete this long after its first byte
    /// (after the accept for a new connection).
    pub http_header_timeout: Duration,
    /// A keep-alive connection silent this long after its last response is closed.
    pub http_idle_timeout: Duration,
    /// Open connections at most; at the cap the oldest one still waiting
    /// for a request is closed to make room.
    pub max_connections: usize,
    // --- ironic-inspector's hook options (issue 14; config/processing.rs) ---
    pub hook_options: processing::HookOptions,
    /// Auto-discovery (`[processing] node_not_found_hook = enroll`, issue
    /// 14; config/discovery.rs); `None` when off.
    pub discovery: Option<discovery::Discovery>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = IniFile::load(path)?;
        Self::from_ini(&file)
    }

    /// Builds the configuration from a parsed file.
    pub fn from_ini(file: &IniFile) -> Result<Self, ConfigError> {
        let section = file.section(SECTION);
        let mut cfg = Self::from_section(&section, file.path())?;
        cfg.hook_options = processing::read(file)?;
        cfg.discovery = discovery::read(file)?;
        if let Some(hooks) = cfg.hook_options.processing_hooks.clone() {
            if let Some(v) = section.raw("processing_hooks") {
                return Err(section.bad_value(
                    "processing_hooks",
                    v,
                    "the hooks are also set in [processing]; set them in one place",
                ));
            }
            cfg.processing_hooks = hooks;
        }
        if let Some(o) = cfg.hook_options.overwrite_existing {
            cfg.overwrite_existing = o;
        }
        Ok(cfg)
    }

    /// Every option name this section understands, lower-cased.
    pub fn known_options() -> Vec<String> {
        let file = IniFile::parse(Path::new("-"), "[discoverd]\ndatabase = /x\n");
        let Ok(file) = file else { return Vec::new() };
        let s = file.section(SECTION);
        let _ = Self::from_section(&s, file.path());
        let mut keys: Vec<String> = s.used_keys().into_iter().collect();
        keys.extend(ACCEPTED_LEGACY.iter().map(|k| (*k).to_owned()));
        keys.sort();
        keys
    }

    fn from_section(s: &Section<'_>, source: &Path) -> Result<Self, ConfigError> {
        let cfg = Config {
            source: source.to_owned(),
            os_auth_url: s.string_or("os_auth_url", "http://127.0.0.1:5000/v2.0"),
            os_username: s.string("os_username"),
            os_password: s.string("os_password").map(Secret::new),
            os_tenant_name: s.string("os_tenant_name"),
            identity_uri: s.string_or("identity_uri", "http://127.0.0.1:35357"),
            ironic_retry_attempts: count(s, "ironic_retry_attempts", 5)?,
            ironic_retry_period: Duration::from_secs_f64(s.seconds("ironic_retry_period", 5.0)?),
            manage_firewall: s.boolean("manage_firewall", true)?,
            dnsmasq_interface: interfaces(s)?,
            firewall_update_period: positive(s, "firewall_update_period", 15.0)?,
            ports_for_inactive_interfaces: s.boolean("ports_for_inactive_interfaces", false)?,
            timeout: timeout(s)?,
            node_status_keep_time: Duration::from_secs_f64(s.seconds("node_status_keep_time", 604_800.0)?),
            clean_up_period: positive(s, "clean_up_period", 60.0)?,
            overwrite_existing: s.boolean("overwrite_existing", false)?,
            enable_setting_ipmi_credentials: s.boolean("enable_setting_ipmi_credentials", false)?,
            listen_address: s.parsed("listen_address", IpAddr::from([0, 0, 0, 0]))?,
            listen_port: s.parsed("listen_port", 5050u16)?,
            database: database(s)?,
            lease_time: positive(s, "lease_time", 30.0)?,
            processing_hooks: s.list("processing_hooks", DEFAULT_HOOKS),
            debug: s.boolean("debug", false)?,
            auth_strategy: auth_strategy(s)?,
            http_basic_auth_user_file: s.string("http_basic_auth_user_file").map(PathBuf::from),
            keystone_admin_role: s.string_or("keystone_admin_role", "admin"),
            os_user_domain_name: s.string_or("os_user_domain_name", "Default"),
            os_project_domain_name: s.string_or("os_project_domain_name", "Default"),
            token_cache_time: Duration::from_secs_f64(s.seconds("token_cache_time", 300.0)?),
            ironic_url: s.string("ironic_url"),
            ironic_api_version: s.string_or("ironic_api_version", DEFAULT_IRONIC_API_VERSION),
            ironic_timeout: positive(s, "ironic_timeout", 30.0)?,
            ironic_conflict_retries: count(s, "ironic_conflict_retries", 12)?.max(1),
            ironic_conflict_retry_period: Duration::from_secs_f64(
                s.seconds("ironic_conflict_retry_period", 5.0)?,
            ),
            firewall_helper_socket: PathBuf::from(
                s.string_or("firewall_helper_socket", "/run/ironic-discoverd/fw-helper.sock"),
            ),
            firewall_mode: s.parsed("firewall_mode", FilterMode::Deny)?,
            max_body_size: max_body_size(s)?,
            json_logs: s.boolean("json_logs", false)?,
            metrics_public: s.boolean("metrics_public", false)?,
            // --- Ironic retries (issue 18) ---
            ironic_retry_budget: Duration::from_secs_f64(s.seconds("ironic_retry_budget", 120.0)?.min(1e9)),
            ironic_request_retry_budget: Duration::from_secs_f64(
                s.seconds("ironic_request_retry_budget", 10.0)?.min(1e9),
            ),
            ironic_retry_backoff: positive(s, "ironic_retry_backoff", 0.5)?,
            ironic_retry_max_backoff: positive(s, "ironic_retry_max_backoff", 15.0)?,
            ironic_max_requests: ironic_max_requests(s)?,
            // --- speed (issue 15) ---
            power_poll_initial: positive(s, "power_poll_initial", 0.1)?,
            power_poll_max: positive(s, "power_poll_max", 2.0)?,
            // --- ironic-inspector v1 API (issue 13) ---
            api_max_limit: api_max_limit(s)?,
            introspection_delay: introspection_delay(s)?,
            can_manage_boot: s.boolean("can_manage_boot", true)?,
            store_data: s.parsed("store_data", StoreData::None)?,
            events_keep_alive: positive(s, "events_keep_alive", 15.0)?,
            // --- connection bounds (hardening) ---
            http_header_timeout: positive(s, "http_header_timeout", 10.0)?,
            http_idle_timeout: positive(s, "http_idle_timeout", 60.0)?,
            max_connections: max_connections(s)?,
            hook_options: processing::HookOptions::default(),
            discovery: None,
        };
        // `authenticate` is read inside auth_strategy(); everything else
        // present in the section must have been asked for by now.
        s.reject_unknown(ACCEPTED_LEGACY)?;
        if cfg.auth_strategy == AuthStrategy::HttpBasic && cfg.http_basic_auth_user_file.is_none() {
            return Err(s.bad_value(
                "auth_strategy",
                "http_basic",
                "http_basic needs http_basic_auth_user_file",
            ));
        }
        Ok(cfg)
    }

    /// The `timeout` option as 1.0 stored it, for code that needs seconds.
    pub fn timeout_secs(&self) -> f64 {
        self.timeout.map_or(0.0, |d| d.as_secs_f64())
    }
}

impl Config {
    /// The bounds on the API's connections.
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            max_connections: self.max_connections,
        }
    }
}

#[cfg(test)]
mod tests;
