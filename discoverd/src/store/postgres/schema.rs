//! The PostgreSQL database: connecting (a pool, no TLS: the server is on
//! the loopback or a Unix socket next to the daemons, or behind a
//! TLS-terminating proxy the operator runs), and the numbered migrations.
//!
//! Migrations are a list of SQL texts and a `discoverd_schema` table with
//! one row per applied version, applied in one transaction under an
//! advisory lock, so that three daemons starting at once migrate once.
//! A database at a version this build does not know is refused: an older
//! binary must not write rows a newer schema gave another meaning.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// Schema migrations, applied in order. Never edit one that shipped: add another.
const MIGRATIONS: &[&str] = &[
    // 1: statuses (times in microseconds since the epoch, as the domain
    // keeps them), lookup attributes, options, stored data (JSON text,
    // byte-exact as the ramdisk sent it), and the last run of each
    // periodic task, claimed once per period across the cluster.
    "CREATE TABLE nodes (uuid UUID PRIMARY KEY, started_at BIGINT NOT NULL, finished_at BIGINT,
                         error TEXT, state TEXT NOT NULL);
     CREATE INDEX nodes_started_at ON nodes (started_at DESC, uuid DESC);
     CREATE INDEX nodes_active ON nodes (state) WHERE finished_at IS NULL;
     CREATE TABLE attributes (name TEXT NOT NULL, value TEXT NOT NULL,
                              uuid UUID NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
                              PRIMARY KEY (name, value));
     CREATE INDEX attributes_uuid ON attributes (uuid);
     CREATE TABLE options (uuid UUID NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
                           name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (uuid, name));
     CREATE TABLE data (uuid UUID NOT NULL REFERENCES nodes (uuid) ON DELETE CASCADE,
                        kind TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (uuid, kind));
     CREATE TABLE periodic_runs (name TEXT PRIMARY KEY, last_run TIMESTAMPTZ NOT NULL);",
    // 2: leases on in-flight work (issue 16): the daemon holding a node
    // until `lease_until` (the database's clock), and the node's recorded
    // next step. Nodes in flight when migrated have no holder: the
    // timeout ends them, as before.
    "ALTER TABLE nodes ADD COLUMN owner TEXT, ADD COLUMN lease_until TIMESTAMPTZ,
                       ADD COLUMN step TEXT, ADD COLUMN step_data TEXT;
     CREATE INDEX nodes_leases ON nodes (lease_until) WHERE owner IS NOT NULL;",
    // 3: introspection rules (ironic-inspector's /v1/rules), as on SQLite:
    // the JSON the API shows, in creation order (`seq` never reuses a
    // deleted rule's number). `rules_version` has one row, moved by every
    // rule write in the same transaction: each daemon compares it with the
    // version of the rules it holds parsed before a report, and the row
    // lock makes rule writers take turns (the count limit holds).
    "CREATE TABLE rules (seq BIGSERIAL PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
     CREATE TABLE rules_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                                 version BIGINT NOT NULL);
     INSERT INTO rules_version (one, version) VALUES (TRUE, 0);",
];

/// How many migrations this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key migrations run under ("discoverd" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x6469_7363_6f76_6572;

/// Connections each daemon keeps at most.
pub const POOL_SIZE: usize = 16;

/// How long a request waits for a connection, or for a new one to be made,
/// before it is answered 503 (PostgreSQL down or the pool exhausted).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot connect: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("migration failed: {0}")]
    Sql(#[from] tokio_postgres::Error),
    #[error(
        "the database's schema is at version {found}, newer than this build's {SCHEMA_VERSION}: \
         upgrade this daemon (a newer daemon migrated it)"
    )]
    TooNew { found: i32 },
}

/// Parses the URL and builds the pool (no connection is made yet).
pub fn pool(url: &str) -> Result<Pool, OpenError> {
    let mut pg: tokio_postgres::Config = url.parse().map_err(OpenError::Url)?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("ironic-discoverd");
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()?)
}

/// Applies the migrations not yet recorded; refuses a newer database.
pub async fn migrate(pool: &Pool) -> Result<i32, OpenError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS discoverd_schema (version INTEGER PRIMARY KEY,
                                                      applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM discoverd_schema", &[])
        .await?;
    let done: i32 = row.try_get(0)?;
    if done > SCHEMA_VERSION {
        return Err(OpenError::TooNew { found: done });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO discoverd_schema (version) VALUES ($1)", &[&version])
            .await?;
        tracing::info!(version, "node store schema migrated");
    }
    tx.commit().await?;
    Ok(SCHEMA_VERSION)
}

/// The URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (Some(auth), host),
        None => (None, rest),
    };
    match auth {
        Some(a) => {
            let user = a.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => format!("{scheme}://{host}"),
    }
    .split("password=")
    .next()
    .unwrap_or_default()
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redacted("postgresql://disc:s3cret@db.example:5432/discoverd"),
            "postgresql://disc@db.example:5432/discoverd"
        );
        assert_eq!(redacted("postgresql://db/x"), "postgresql://db/x");
        assert!(!redacted("postgresql://u@h/d?password=s3cret").contains("s3cret"));
    }

    #[test]
    fn a_bad_url_is_refused_before_connecting() {
        assert!(matches!(
            pool("postgresql://h:notaport/d"),
            Err(OpenError::Url(_))
        ));
    }
}
