//! The values of `[discoverd]` options that are more than a number or a
//! string: their types, their limits and how each is read and checked.

use std::path::PathBuf;
use std::time::Duration;

use common::InterfaceName;
use common::ini::{ConfigError, Section};

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

pub(super) fn api_max_limit(s: &Section<'_>) -> Result<usize, ConfigError> {
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

pub(super) fn introspection_delay(s: &Section<'_>) -> Result<Duration, ConfigError> {
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

/// The Ironic API microversion sent when `ironic_api_version` is unset.
/// 1.31 (Queens) has everything discoverd uses and lets older Ironics work.
pub const DEFAULT_IRONIC_API_VERSION: &str = "1.31";

/// Default and ceiling of `max_body_size`: IPA payloads with logs run to a
/// few MiB; nothing legitimate comes near 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 8 * 1024 * 1024;
const MAX_MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

pub(super) fn count(s: &Section<'_>, key: &str, default: u32) -> Result<u32, ConfigError> {
    let v = s.integer(key, i64::from(default))?;
    u32::try_from(v).map_err(|_| s.bad_value(key, &v.to_string(), "expected a non-negative integer"))
}

pub(super) fn positive(s: &Section<'_>, key: &str, default: f64) -> Result<Duration, ConfigError> {
    let v = s.seconds(key, default)?;
    if v <= 0.0 {
        return Err(s.bad_value(key, &v.to_string(), "must be greater than zero"));
    }
    Ok(Duration::from_secs_f64(v))
}

pub(super) fn timeout(s: &Section<'_>) -> Result<Option<Duration>, ConfigError> {
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

pub(super) fn interfaces(s: &Section<'_>) -> Result<Vec<InterfaceName>, ConfigError> {
    let names = s.list("dnsmasq_interface", &["br-ctlplane"]);
    if names.is_empty() {
        return Err(s.bad_value("dnsmasq_interface", "", "at least one interface is needed"));
    }
    names
        .iter()
        .map(|n| InterfaceName::new(n).map_err(|e| s.bad_value("dnsmasq_interface", n, e.to_string())))
        .collect()
}

pub(super) fn database(s: &Section<'_>) -> Result<Database, ConfigError> {
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
    if let Some((scheme, _)) = db.split_once("://") {
        // Another database's URL (mysql://, sqlite:///…) read as a file
        // path would fail later, printing its password: refused here.
        return Err(s.bad_value(
            "database",
            &crate::store::postgres::schema::redacted(&db),
            format!("unsupported scheme {scheme:?}: give a postgresql:// URL or a SQLite file path"),
        ));
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

pub(super) fn auth_strategy(s: &Section<'_>) -> Result<AuthStrategy, ConfigError> {
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

pub(super) fn max_body_size(s: &Section<'_>) -> Result<usize, ConfigError> {
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
pub(super) fn max_connections(s: &Section<'_>) -> Result<usize, ConfigError> {
    let v = s.integer("max_connections", 1024)?;
    match usize::try_from(v) {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(s.bad_value("max_connections", &v.to_string(), "expected 1 to 1000000")),
    }
}

/// `ironic_max_requests`: 1 to 1024, default 16 (Ironic's API is CPU-bound
/// Python; more at once only makes every answer slower).
pub(super) fn ironic_max_requests(s: &Section<'_>) -> Result<usize, ConfigError> {
    let default = crate::ironic::DEFAULT_MAX_REQUESTS as i64;
    let v = s.integer("ironic_max_requests", default)?;
    match usize::try_from(v) {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(s.bad_value("ironic_max_requests", &v.to_string(), "expected 1 to 1024")),
    }
}
