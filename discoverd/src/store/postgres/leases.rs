//! Leases on in-flight work in the `nodes` rows (see [`crate::store::lease`]):
//! the holder (`owner`, one id per daemon process), until when
//! (`lease_until`, on the database's clock, so daemons' clock skew does
//! not matter), and the recorded next step (`step`, `step_data`).

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::rows::{self, backend};
use crate::domain::{NodeId, State};
use crate::store::StoreError;
use crate::store::lease::{Orphan, Step, leased};

/// Lease time when none is configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// This daemon as a lease holder.
#[derive(Debug, Clone)]
pub struct Leases {
    /// Unique per process: host, PID and a random part (a restarted
    /// daemon is a new holder; its old leases expire and are claimed).
    pub owner: String,
    pub time: Duration,
}

impl Leases {
    pub fn new(time: Duration) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let random = uuid::Uuid::new_v4().simple().to_string();
        Leases {
            owner: format!("{host}:{}:{}", std::process::id(), &random[..8]),
            time,
        }
    }

    /// Who holds a node that moves to `state`: this daemon when work on
    /// it is in flight, nobody otherwise.
    pub fn holder(&self, state: State) -> Option<&str> {
        leased(state).then_some(self.owner.as_str())
    }

    pub fn secs(&self) -> f64 {
        self.time.as_secs_f64()
    }
}

/// The `SET` part that gives a row to holder `$h` (NULL: nobody) for
/// `$s` seconds, forgetting any recorded step.
pub fn set_holder(h: usize, s: usize) -> String {
    format!(
        "owner = ${h}::text, lease_until = CASE WHEN ${h}::text IS NULL THEN NULL \
         ELSE now() + make_interval(secs => ${s}::float8) END, step = NULL, step_data = NULL"
    )
}

/// The `SET` part of an ending: nobody holds the row.
pub const RELEASE: &str = "owner = NULL, lease_until = NULL, step = NULL, step_data = NULL";

pub async fn renew(c: &impl GenericClient, l: &Leases, location: &str) -> Result<u64, StoreError> {
    c.execute(
        "UPDATE nodes SET lease_until = now() + make_interval(secs => $2::float8)
         WHERE owner = $1 AND finished_at IS NULL",
        &[&l.owner, &l.secs()],
    )
    .await
    .map_err(backend("renew leases", location))
}

/// Records `step` on a node this daemon holds in `processing` (and
/// renews the lease); a node moved on or taken over is `StateChanged`.
pub async fn record_step(
    c: &impl GenericClient,
    l: &Leases,
    node: NodeId,
    step: &Step,
    location: &str,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE nodes SET step = $3, step_data = $4,
                              lease_until = now() + make_interval(secs => $5::float8)
             WHERE uuid = $1 AND owner = $2 AND state = 'processing' AND finished_at IS NULL",
            &[
                node.as_uuid(),
                &l.owner,
                &step.name(),
                &step.data().to_string(),
                &l.secs(),
            ],
        )
        .await
        .map_err(backend("record a step", location))?;
    Ok(n == 1)
}

/// Takes over at most `limit` rows whose lease expired, in one
/// transaction: the rows are locked with `SKIP LOCKED` (two daemons
/// claiming at once get disjoint sets; a row another just claimed is
/// re-checked on its new version and no longer expired), then given to
/// this daemon.
pub async fn claim(
    c: &mut deadpool_postgres::Object,
    l: &Leases,
    limit: usize,
    location: &str,
) -> Result<Vec<Orphan>, StoreError> {
    let err = backend("claim expired leases", location);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let tx = c.transaction().await.map_err(&err)?;
    let found = tx
        .query(
            "SELECT uuid, started_at, finished_at, error, state, step, step_data, owner FROM nodes
             WHERE owner IS NOT NULL AND finished_at IS NULL AND lease_until < now()
             ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await
        .map_err(&err)?;
    let mut orphans = Vec::with_capacity(found.len());
    let mut ids = Vec::with_capacity(found.len());
    for r in &found {
        let status = rows::status(r, location)?;
        let name: Option<String> = r.try_get(5).map_err(&err)?;
        let data: Option<String> = r.try_get(6).map_err(&err)?;
        let step = match (name, data) {
            (Some(n), Some(d)) => {
                let value = serde_json::from_str(&d).map_err(|e| StoreError::Backend {
                    action: "decode a recorded step",
                    location: location.to_owned(),
                    source: Box::new(e),
                })?;
                Step::from_parts(&n, value)
            }
            _ => None,
        };
        ids.push(*status.node.as_uuid());
        orphans.push(Orphan {
            status,
            step,
            previous_owner: r.try_get(7).map_err(&err)?,
        });
    }
    if !ids.is_empty() {
        tx.execute(
            "UPDATE nodes SET owner = $1, lease_until = now() + make_interval(secs => $2::float8)
             WHERE uuid = ANY($3)",
            &[&l.owner, &l.secs(), &ids],
        )
        .await
        .map_err(&err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(orphans)
}
