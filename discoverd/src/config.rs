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

/// The section discoverd has always used.
pub const SECTION: &str = "discoverd";

/// Options 1.0 accepted that this implementation reads but does not need;
/// they are accepted so old files keep loading.
const ACCEPTED_LEGACY: &[&str] = &["admin_tenant_name"];

/// Processing hooks enabled when `processing_hooks` is not set.
pub const DEFAULT_HOOKS: &[&str] = &["scheduler", "validate_interfaces"];

/// How operator requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Validate `X-Auth-Token` with Keystone and require the admin role.
    Keystone,
    /// Apache htpasswd file with bcrypt entries.
    HttpBasic,
    /// Everything allowed (standalone installs on a trusted network).
    NoAuth,
}

impl std::str::FromStr for AuthStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keystone" => Ok(AuthStrategy::Keystone),
            "http_basic" => Ok(AuthStrategy::HttpBasic),
            "noauth" => Ok(AuthStrategy::NoAuth),
            other => Err(format!(
                "unknown auth strategy {other:?}: expected keystone, http_basic or noauth"
            )),
        }
    }
}

/// A secret read from the config file. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

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
    // --- speed (issue 15): power-state polling after power-off ---
    /// First pause before reading Ironic's power state again; it doubles
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
}

/// The `store_data` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreData {
    /// Data is not kept (ironic-inspector's default).
    #[default]
    None,
    /// Raw and processed data go to the node store, purged with the statuses.
    Database,
}

impl std::str::FromStr for StoreData {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(StoreData::None),
            "database" => Ok(StoreData::Database),
            other => Err(format!("unknown store_data {other:?}: expected none or database")),
        }
    }
}

/// Ceiling of `api_max_limit`.
const MAX_API_MAX_LIMIT: i64 = 100_000;

fn api_max_limit(s: &Section<'_>) -> Result<usize, ConfigError> {
    let v = s.integer("api_max_limit", 1000)?;
    if !(1..=MAX_API_MAX_LIMIT).contains(&v) {
        return Err(s.bad_value(
            "api_max_limit",
            &v.to_string(),
            format!("expected 1 to {MAX_API_MAX_LIMIT}"),
        ));
    }
    usize::try_from(v).map_err(|_| s.bad_value("api_max_limit", &v.to_string(), "out of range"))
}

fn introspection_delay(s: &Section<'_>) -> Result<Duration, ConfigError> {
    let v = s.seconds("introspection_delay", 0.0)?;
    if !(0.0..=3600.0).contains(&v) {
        return Err(s.bad_value(
            "introspection_delay",
            &v.to_string(),
            "expected 0 to 3600 seconds",
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = IniFile::load(path)?;
        Self::from_ini(&file)
    }

    /// Builds the configuration from a parsed file.
    pub fn from_ini(file: &IniFile) -> Result<Self, ConfigError> {
        Self::from_section(&file.section(SECTION), file.path())
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
            os_password: s.string("os_password").map(Secret),
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

/// The Ironic API microversion sent when `ironic_api_version` is unset.
/// 1.31 (Queens) has everything discoverd uses and lets older Ironics work.
pub const DEFAULT_IRONIC_API_VERSION: &str = "1.31";

/// Default and ceiling of `max_body_size`: IPA payloads with logs run to a
/// few MiB; nothing legitimate comes near 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 8 * 1024 * 1024;
const MAX_MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

fn count(s: &Section<'_>, key: &str, default: u32) -> Result<u32, ConfigError> {
    let v = s.integer(key, i64::from(default))?;
    u32::try_from(v).map_err(|_| s.bad_value(key, &v.to_string(), "expected a non-negative integer"))
}

fn positive(s: &Section<'_>, key: &str, default: f64) -> Result<Duration, ConfigError> {
    let v = s.seconds(key, default)?;
    if v <= 0.0 {
        return Err(s.bad_value(key, &v.to_string(), "must be greater than zero"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn timeout(s: &Section<'_>) -> Result<Option<Duration>, ConfigError> {
    // 1.0 reads an integer and treats ≤ 0 as "disabled"; fractions are
    // accepted here too, negative values must keep working.
    let Some(raw) = s.raw("timeout").filter(|v| !v.is_empty()) else {
        return Ok(Some(Duration::from_secs(3600)));
    };
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v <= 0.0 => Ok(None),
        Ok(v) if v.is_finite() => Ok(Some(Duration::from_secs_f64(v))),
        _ => Err(s.bad_value(
            "timeout",
            raw,
            "expected a number of seconds (≤ 0 disables the timeout)",
        )),
    }
}

fn interfaces(s: &Section<'_>) -> Result<Vec<InterfaceName>, ConfigError> {
    let names = s.list("dnsmasq_interface", &["br-ctlplane"]);
    if names.is_empty() {
        return Err(s.bad_value("dnsmasq_interface", "", "at least one interface is needed"));
    }
    names
        .iter()
        .map(|n| InterfaceName::new(n).map_err(|e| s.bad_value("dnsmasq_interface", n, e.to_string())))
        .collect()
}

fn database(s: &Section<'_>) -> Result<Database, ConfigError> {
    let db = s.required("database")?;
    if let Some(url) = Database::postgres_url(&db) {
        return url
            .parse::<tokio_postgres::Config>()
            .map(|_| Database::Postgres(url.to_owned()))
            .map_err(|e| {
                s.bad_value(
                    "database",
                    &crate::store::postgres::schema::redacted(url),
                    format!("not a valid PostgreSQL URL: {e}"),
                )
            });
    }
    if db == ":memory:" {
        // The cache must survive restarts and is shared by every task.
        return Err(s.bad_value(
            "database",
            &db,
            "an in-memory database is not supported, give a file path",
        ));
    }
    Ok(Database::Sqlite(PathBuf::from(db)))
}

// --- PostgreSQL store (docs/postgres.md) ---

/// Where the node cache lives: `database = /path/file.sqlite` (the
/// embedded default, one daemon) or `database = postgresql://…` (any
/// number of daemons sharing it).
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgresql://` or `postgres://` URL (libpq's syntax).
    Postgres(String),
}

impl Database {
    fn postgres_url(value: &str) -> Option<&str> {
        let lower = value.to_ascii_lowercase();
        (lower.starts_with("postgresql://") || lower.starts_with("postgres://")).then_some(value)
    }
}

impl std::fmt::Debug for Database {
    /// The URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Database::Postgres(u) => f
                .debug_tuple("Postgres")
                .field(&crate::store::postgres::schema::redacted(u))
                .finish(),
        }
    }
}

fn auth_strategy(s: &Section<'_>) -> Result<AuthStrategy, ConfigError> {
    let legacy = s.boolean("authenticate", true)?;
    match s.string("auth_strategy") {
        Some(v) => {
            let strategy: AuthStrategy = v
                .parse()
                .map_err(|e: String| s.bad_value("auth_strategy", &v, e))?;
            if !legacy && strategy != AuthStrategy::NoAuth {
                return Err(s.bad_value(
                    "authenticate",
                    "false",
                    format!("contradicts auth_strategy = {v}; remove one of them"),
                ));
            }
            Ok(strategy)
        }
        None if legacy => Ok(AuthStrategy::Keystone),
        None => Ok(AuthStrategy::NoAuth),
    }
}

fn max_body_size(s: &Section<'_>) -> Result<usize, ConfigError> {
    let v = s.integer("max_body_size", DEFAULT_MAX_BODY_SIZE as i64)?;
    match usize::try_from(v) {
        Ok(n) if (1024..=MAX_MAX_BODY_SIZE).contains(&n) => Ok(n),
        _ => Err(s.bad_value(
            "max_body_size",
            &v.to_string(),
            format!("expected a size in bytes from 1024 to {MAX_MAX_BODY_SIZE}"),
        )),
    }
}

// --- connection bounds (hardening) ---
fn max_connections(s: &Section<'_>) -> Result<usize, ConfigError> {
    let v = s.integer("max_connections", 1024)?;
    match usize::try_from(v) {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(s.bad_value("max_connections", &v.to_string(), "expected 1 to 1000000")),
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let f = IniFile::parse(Path::new("/etc/ironic-discoverd/discoverd.conf"), text)?;
        Config::from_ini(&f)
    }

    /// The example configuration of the discoverd 1.0 README, unchanged.
    const DISCOVERD_1_0_CONF: &str = "\
[discoverd]
debug = false
os_auth_url = http://127.0.0.1:5000/v2.0
os_username = admin
os_password = password
os_tenant_name = admin
identity_uri = http://127.0.0.1:35357
admin_tenant_name = admin
dnsmasq_interface = br-ctlplane
database = /var/lib/ironic-discoverd/discoverd.sqlite
processing_hooks = ramdisk_error,scheduler,validate_interfaces
manage_firewall = true
ironic_retry_attempts = 5
ironic_retry_period = 5
firewall_update_period = 15
ports_for_inactive_interfaces = false
timeout = 3600
node_status_keep_time = 604800
clean_up_period = 60
overwrite_existing = false
enable_setting_ipmi_credentials = false
listen_address = 0.0.0.0
listen_port = 5050
authenticate = true
";

    #[test]
    fn a_discoverd_1_0_file_loads_unchanged() -> Result<(), ConfigError> {
        let c = parse(DISCOVERD_1_0_CONF)?;
        assert_eq!(c.os_username.as_deref(), Some("admin"));
        assert_eq!(c.os_password.as_ref().map(Secret::expose), Some("password"));
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from("/var/lib/ironic-discoverd/discoverd.sqlite"))
        );
        assert_eq!(
            c.processing_hooks,
            vec!["ramdisk_error", "scheduler", "validate_interfaces"]
        );
        assert_eq!(c.auth_strategy, AuthStrategy::Keystone);
        assert_eq!(c.timeout, Some(Duration::from_secs(3600)));
        assert_eq!(c.dnsmasq_interface.len(), 1);
        Ok(())
    }

    #[test]
    fn defaults_follow_discoverd_1_0() -> Result<(), ConfigError> {
        let c = parse("[discoverd]\ndatabase = /tmp/x.sqlite\n")?;
        assert_eq!(c.os_auth_url, "http://127.0.0.1:5000/v2.0");
        assert_eq!(c.identity_uri, "http://127.0.0.1:35357");
        assert_eq!(c.ironic_retry_attempts, 5);
        assert_eq!(c.ironic_retry_period, Duration::from_secs(5));
        assert!(c.manage_firewall);
        assert_eq!(c.dnsmasq_interface[0].as_str(), "br-ctlplane");
        assert_eq!(c.firewall_update_period, Duration::from_secs(15));
        assert!(!c.ports_for_inactive_interfaces);
        assert_eq!(c.timeout, Some(Duration::from_secs(3600)));
        assert_eq!(c.node_status_keep_time, Duration::from_secs(604_800));
        assert_eq!(c.clean_up_period, Duration::from_secs(60));
        assert!(!c.overwrite_existing);
        assert!(!c.enable_setting_ipmi_credentials);
        assert_eq!(c.listen_address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.listen_port, 5050);
        assert_eq!(c.processing_hooks, vec!["scheduler", "validate_interfaces"]);
        assert!(!c.debug);
        assert_eq!(c.auth_strategy, AuthStrategy::Keystone);
        assert_eq!(c.ironic_conflict_retries, 12);
        assert_eq!(c.ironic_conflict_retry_period, Duration::from_secs(5));
        assert_eq!(c.firewall_mode, FilterMode::Deny);
        Ok(())
    }

    #[test]
    fn bad_timeout_names_file_option_and_value() {
        let e = parse("[discoverd]\ndatabase = /tmp/x\ntimeout = abc\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "/etc/ironic-discoverd/discoverd.conf: [discoverd] timeout = \"abc\": expected a number of seconds (≤ 0 disables the timeout)"
            )
        );
    }

    #[test]
    fn timeout_of_zero_or_less_disables() -> Result<(), ConfigError> {
        assert_eq!(parse("[discoverd]\ndatabase = /x\ntimeout = 0\n")?.timeout, None);
        assert_eq!(parse("[discoverd]\ndatabase = /x\ntimeout = -5\n")?.timeout, None);
        assert_eq!(
            parse("[discoverd]\ndatabase = /x\ntimeout = 1.5\n")?.timeout,
            Some(Duration::from_millis(1500))
        );
        Ok(())
    }

    #[test]
    fn database_is_required_and_must_be_a_file() {
        let e = parse("[discoverd]\ntimeout = 5\n").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("/etc/ironic-discoverd/discoverd.conf: [discoverd] database is required but not set")
        );
        assert!(parse("[discoverd]\ndatabase = :memory:\n").is_err());
        assert!(parse("[discoverd]\ndatabase =   \n").is_err());
    }

    #[test]
    fn unknown_options_fail_with_their_name() {
        let e = parse("[discoverd]\ndatabase = /x\ntimout = 5\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("/etc/ironic-discoverd/discoverd.conf: [discoverd] has unknown option \"timout\"")
        );
    }

    #[test]
    fn authenticate_maps_to_auth_strategy() -> Result<(), ConfigError> {
        let c = parse("[discoverd]\ndatabase = /x\nauthenticate = false\n")?;
        assert_eq!(c.auth_strategy, AuthStrategy::NoAuth);
        let c = parse("[discoverd]\ndatabase = /x\nauth_strategy = noauth\n")?;
        assert_eq!(c.auth_strategy, AuthStrategy::NoAuth);
        assert!(
            parse("[discoverd]\ndatabase = /x\nauthenticate = false\nauth_strategy = keystone\n").is_err()
        );
        assert!(parse("[discoverd]\ndatabase = /x\nauth_strategy = http_basic\n").is_err());
        let c = parse(
            "[discoverd]\ndatabase = /x\nauth_strategy = http_basic\nhttp_basic_auth_user_file = /etc/htpasswd\n",
        )?;
        assert_eq!(c.auth_strategy, AuthStrategy::HttpBasic);
        assert!(parse("[discoverd]\ndatabase = /x\nauth_strategy = kerberos\n").is_err());
        Ok(())
    }

    #[test]
    fn interface_lists_and_invalid_names() -> Result<(), ConfigError> {
        let c = parse("[discoverd]\ndatabase = /x\ndnsmasq_interface = br-ctlplane, eth1\n")?;
        assert_eq!(c.dnsmasq_interface.len(), 2);
        let e = parse("[discoverd]\ndatabase = /x\ndnsmasq_interface = a/b\n")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("dnsmasq_interface") && e.contains("a/b")));
        Ok(())
    }

    #[test]
    fn value_checks() {
        for bad in [
            "listen_port = 70000",
            "listen_address = localhost",
            "firewall_update_period = 0",
            "clean_up_period = -1",
            "manage_firewall = maybe",
            "firewall_mode = block",
            "max_body_size = 10",
            "ironic_retry_attempts = -1",
        ] {
            let r = parse(&format!("[discoverd]\ndatabase = /x\n{bad}\n"));
            let key = bad.split(' ').next().unwrap_or_default();
            assert!(
                matches!(&r, Err(ConfigError::BadValue { option, .. }) if option == key),
                "{bad}: {r:?}"
            );
        }
    }

    /// `example.conf` must list every option with the default the code uses.
    #[test]
    fn example_conf_lists_every_option_with_its_default() -> Result<(), ConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example.conf");
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let section: String = text
            .split("\n[")
            .find(|part| part.starts_with("discoverd]"))
            .map(|part| format!("[{part}"))
            .unwrap_or_default();
        let mut listed = Vec::new();
        let mut uncommented = String::new();
        for line in section.lines() {
            let opt = line
                .strip_prefix('#')
                .filter(|l| !l.starts_with(['#', ' ']) && l.contains(" ="));
            if let Some(opt) = opt {
                listed.push(opt.split(' ').next().unwrap_or_default().to_owned());
                uncommented.push_str(opt);
            } else {
                if let Some((k, _)) = line.split_once(" =").filter(|_| !line.starts_with('#')) {
                    listed.push(k.to_owned());
                }
                uncommented.push_str(line);
            }
            uncommented.push('\n');
        }
        listed.sort();
        assert_eq!(
            listed,
            Config::known_options(),
            "options in example.conf vs. code"
        );
        let with_defaults = parse(&uncommented)?;
        let minimal = parse("[discoverd]\ndatabase = /var/lib/ironic-discoverd/discoverd.sqlite\n")?;
        assert_eq!(with_defaults, minimal, "defaults in example.conf vs. code");
        Ok(())
    }

    #[test]
    fn a_postgresql_url_selects_the_shared_store_and_hides_its_password() -> Result<(), ConfigError> {
        let c = parse("[discoverd]\ndatabase = postgresql://d:hunter2@db:5432/discoverd\n")?;
        assert_eq!(
            c.database,
            Database::Postgres("postgresql://d:hunter2@db:5432/discoverd".into())
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = parse("[discoverd]\ndatabase = postgresql://d:hunter2@db:notaport/x\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("database") && e.contains("PostgreSQL") && !e.contains("hunter2"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn secrets_do_not_leak_through_debug() -> Result<(), ConfigError> {
        let c = parse("[discoverd]\ndatabase = /x\nos_password = hunter2\n")?;
        assert!(!format!("{c:?}").contains("hunter2"));
        Ok(())
    }
}
