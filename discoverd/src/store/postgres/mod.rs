//! The shared [`NodeStore`]: PostgreSQL, for several daemons on one
//! database (docs/postgres.md).
//!
//! Nothing is mirrored in memory: another daemon may have written any row
//! a moment ago, so every read asks the database (one pooled connection,
//! a cached prepared statement). Every state change is a
//! compare-and-swap in one transaction: `UPDATE … WHERE state = $from`,
//! or `SELECT … FOR UPDATE` then the writes, so that of two daemons
//! racing for a node one wins and the other reads the state it lost to.
//! A write is committed (durable: PostgreSQL's `synchronous_commit`)
//! before the call returns, so before any answer is sent.

mod leases;
mod listen;
mod rows;
mod rules;
pub mod schema;

use std::collections::HashSet;
use std::time::Duration;

use common::MacAddr;
use deadpool_postgres::{Object, Pool};
use serde_json::Value;
use tokio_postgres::error::SqlState;

use super::{
    DataKind, Ended, ListQuery, LookupKey, MAX_DATA_BYTES, NewIntrospection, NodeStore, Options, Orphan,
    Status, Step, StoreError,
};
use crate::domain::{NodeId, State, Timestamp};
pub use leases::DEFAULT_LEASE;
use leases::Leases;
use rows::{COLUMNS, SELECT, backend, changed};

/// The PostgreSQL store; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// The URL without its password, for messages.
    location: String,
    /// Moves when any daemon changed the active MACs (LISTEN/NOTIFY).
    changes: tokio::sync::watch::Receiver<u64>,
    /// This daemon as the holder of in-flight nodes.
    leases: Leases,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("owner", &self.leases.owner)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgresql://user:password@host:port/db`, or
    /// `?host=/run/postgresql` for a Unix socket) and migrates the schema.
    /// A wrong URL, password or an unreachable server fails here, naming
    /// the (password-less) URL.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_lease(url, DEFAULT_LEASE).await
    }

    /// [`PostgresStore::open`], holding in-flight nodes for `lease`
    /// between renewals (`[discoverd] lease_time`).
    pub async fn open_with_lease(url: &str, lease: Duration) -> Result<Self, StoreError> {
        let location = schema::redacted(url);
        let fail = |e: schema::OpenError| StoreError::Backend {
            action: "open the [discoverd] database",
            location: location.clone(),
            source: Box::new(e),
        };
        let pool = schema::pool(url).map_err(fail)?;
        let version = schema::migrate(&pool).await.map_err(fail)?;
        tracing::info!(database = %location, version, "node store: PostgreSQL");
        let changes = listen::spawn(url.to_owned(), location.clone());
        let leases = Leases::new(lease);
        tracing::info!(owner = %leases.owner, lease_secs = leases.secs(), "lease holder id");
        Ok(PostgresStore {
            pool,
            location,
            changes,
            leases,
        })
    }

    async fn client(&self, action: &'static str) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Backend {
            action,
            location: self.location.clone(),
            source: Box::new(e),
        })
    }

    /// One query on a pooled connection with a cached statement.
    async fn query(
        &self,
        action: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let c = self.client(action).await?;
        let err = backend(action, &self.location);
        let q = c.prepare_cached(sql).await.map_err(&err)?;
        c.query(&q, params).await.map_err(err)
    }

    fn statuses(&self, rows: &[tokio_postgres::Row]) -> Result<Vec<Status>, StoreError> {
        rows::statuses(rows, &self.location)
    }
}

/// Tells every listening daemon, at commit, that the active MACs changed.
async fn notify(tx: &deadpool_postgres::Transaction<'_>, location: &str) -> Result<(), StoreError> {
    tx.execute(&format!("NOTIFY {}", listen::CHANNEL), &[])
        .await
        .map(drop)
        .map_err(backend("notify other daemons", location))
}

fn micros(t: Timestamp) -> i64 {
    t.as_micros()
}

#[async_trait::async_trait]
impl NodeStore for PostgresStore {
    async fn record(
        &self,
        new: &NewIntrospection,
        expected: Option<State>,
        at: Timestamp,
        state: State,
    ) -> Result<Status, StoreError> {
        let loc = &self.location;
        let err = backend("record a start", loc);
        let mut c = self.client("record a start").await?;
        let tx = c.transaction().await.map_err(&err)?;
        let id = new.node.as_uuid();
        match expected {
            None => {
                // No row to lock: the primary key is the swap.
                let n = tx
                    .execute(
                        "INSERT INTO nodes (uuid, started_at, state, owner, lease_until)
                         VALUES ($1, $2, $5, $3, now() + make_interval(secs => $4::float8))
                         ON CONFLICT (uuid) DO NOTHING",
                        &[
                            id,
                            &micros(at),
                            &self.leases.owner,
                            &self.leases.secs(),
                            &state.as_str(),
                        ],
                    )
                    .await
                    .map_err(&err)?;
                if n == 0 {
                    let actual = rows::locked(&tx, new.node, loc).await?;
                    return Err(changed(new.node, None, actual.as_ref()));
                }
            }
            Some(want) => {
                let actual = rows::locked(&tx, new.node, loc).await?;
                if actual.as_ref().map(|s| s.state) != Some(want) {
                    return Err(changed(new.node, expected, actual.as_ref()));
                }
                // The old run's attributes, options and data go with it.
                tx.execute("DELETE FROM nodes WHERE uuid = $1", &[id])
                    .await
                    .map_err(&err)?;
                tx.execute(
                    "INSERT INTO nodes (uuid, started_at, state, owner, lease_until)
                     VALUES ($1, $2, $5, $3, now() + make_interval(secs => $4::float8))",
                    &[
                        id,
                        &micros(at),
                        &self.leases.owner,
                        &self.leases.secs(),
                        &state.as_str(),
                    ],
                )
                .await
                .map_err(&err)?;
            }
        }
        if let Some(bmc) = new.bmc_address.as_deref().filter(|b| !b.is_empty()) {
            rows::add_attributes(&tx, new.node, "bmc_address", &[bmc.to_owned()], loc).await?;
        }
        for (name, value) in &new.options {
            tx.execute(
                "INSERT INTO options (uuid, name, value) VALUES ($1, $2, $3)",
                &[id, name, &value.to_string()],
            )
            .await
            .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(Status {
            node: new.node,
            state,
            started_at: at,
            finished_at: None,
            error: None,
        })
    }

    async fn add_macs(&self, node: NodeId, macs: &[MacAddr]) -> Result<(), StoreError> {
        let loc = &self.location;
        let err = backend("add MACs", loc);
        let mut c = self.client("add MACs").await?;
        let tx = c.transaction().await.map_err(&err)?;
        match rows::locked(&tx, node, loc).await? {
            Some(s) if !s.state.is_final() => {}
            Some(s) => {
                return Err(StoreError::AlreadyFinished {
                    node,
                    at: s.finished_at.unwrap_or_default(),
                });
            }
            None => return Err(StoreError::NotFound(node)),
        }
        let values: Vec<String> = macs.iter().map(MacAddr::to_string).collect();
        rows::add_attributes(&tx, node, "mac", &values, loc).await?;
        notify(&tx, loc).await?;
        tx.commit().await.map_err(err)
    }

    async fn transition(&self, node: NodeId, from: State, to: State) -> Result<Status, StoreError> {
        let found = if from.is_final() || to.is_final() {
            Vec::new()
        } else {
            self.query(
                "change a state",
                &format!(
                    "UPDATE nodes SET state = $3, {} WHERE uuid = $1 AND state = $2 AND finished_at IS NULL
                     RETURNING {COLUMNS}",
                    leases::set_holder(4, 5)
                ),
                &[
                    node.as_uuid(),
                    &from.as_str(),
                    &to.as_str(),
                    &self.leases.holder(to),
                    &self.leases.secs(),
                ],
            )
            .await?
        };
        match self.statuses(&found)?.pop() {
            Some(s) => Ok(s),
            None => {
                let actual = self.get(node).await.ok();
                Err(changed(node, Some(from), actual.as_ref()))
            }
        }
    }

    async fn finish(
        &self,
        node: NodeId,
        from: State,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<Ended, StoreError> {
        let loc = &self.location;
        let err = backend("record an ending", loc);
        let mut c = self.client("record an ending").await?;
        let tx = c.transaction().await.map_err(&err)?;
        let actual = rows::locked(&tx, node, loc).await?;
        if actual.as_ref().map(|s| s.state) != Some(from) || from.is_final() {
            return Err(changed(node, Some(from), actual.as_ref()));
        }
        let macs = rows::macs(&tx, node, loc).await?;
        let state = if error.is_some() {
            State::Error
        } else {
            State::Finished
        };
        let id = node.as_uuid();
        tx.execute(
            &format!(
                "UPDATE nodes SET finished_at = $2, error = $3, state = $4, {} WHERE uuid = $1",
                leases::RELEASE
            ),
            &[id, &micros(at), &error, &state.as_str()],
        )
        .await
        .map_err(&err)?;
        tx.execute("DELETE FROM attributes WHERE uuid = $1", &[id])
            .await
            .map_err(&err)?;
        tx.execute("DELETE FROM options WHERE uuid = $1", &[id])
            .await
            .map_err(&err)?;
        // Even without MACs: one introspection fewer may close the filter.
        notify(&tx, loc).await?;
        tx.commit().await.map_err(err)?;
        let mut status = actual.ok_or(StoreError::NotFound(node))?;
        status.state = state;
        status.finished_at = Some(at);
        status.error = error.map(str::to_owned).filter(|e| !e.is_empty());
        Ok(Ended { status, macs })
    }

    async fn reopen(
        &self,
        node: NodeId,
        from: State,
        to: State,
        at: Timestamp,
    ) -> Result<Status, StoreError> {
        let found = if !from.is_final() || to.is_final() {
            Vec::new()
        } else {
            // One statement: the compare (ended, in `from`) and the swap.
            self.query(
                "reopen an introspection",
                &format!(
                    "UPDATE nodes SET state = $3, started_at = $4, finished_at = NULL, error = NULL, {}
                     WHERE uuid = $1 AND state = $2 AND finished_at IS NOT NULL
                     RETURNING {COLUMNS}",
                    leases::set_holder(5, 6)
                ),
                &[
                    node.as_uuid(),
                    &from.as_str(),
                    &to.as_str(),
                    &micros(at),
                    &self.leases.holder(to),
                    &self.leases.secs(),
                ],
            )
            .await?
        };
        match self.statuses(&found)?.pop() {
            Some(s) => Ok(s),
            None => {
                let actual = self.get(node).await.ok();
                Err(changed(node, Some(from), actual.as_ref()))
            }
        }
    }

    async fn get(&self, node: NodeId) -> Result<Status, StoreError> {
        let rows = self
            .query(
                "read a status",
                &format!("{SELECT} WHERE uuid = $1"),
                &[node.as_uuid()],
            )
            .await?;
        self.statuses(&rows)?.pop().ok_or(StoreError::NotFound(node))
    }

    async fn find(&self, key: &LookupKey) -> Result<Status, StoreError> {
        let bmc = key.bmc_address.as_deref().filter(|b| !b.is_empty());
        let macs: Vec<String> = key.macs.iter().map(MacAddr::to_string).collect();
        let rows = self
            .query(
                "look a node up",
                "SELECT DISTINCT uuid FROM attributes
                 WHERE (name = 'bmc_address' AND value = $1) OR (name = 'mac' AND value = ANY($2))
                 LIMIT 2",
                &[&bmc, &macs],
            )
            .await?;
        let node = match rows.as_slice() {
            [] => return Err(StoreError::NoMatch(key.to_string())),
            [one] => NodeId::new(
                one.try_get(0)
                    .map_err(backend("look a node up", &self.location))?,
            ),
            _ => return Err(StoreError::Ambiguous(key.to_string())),
        };
        let status = self.get(node).await.map_err(|e| match e {
            StoreError::NotFound(_) => StoreError::NoMatch(key.to_string()),
            e => e,
        })?;
        if let Some(at) = status.finished_at {
            return Err(StoreError::AlreadyFinished { node, at });
        }
        Ok(status)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Status>, StoreError> {
        let states: Vec<&str> = query.states.iter().map(|s| s.as_str()).collect();
        let all = states.is_empty();
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let after = match query.marker {
            None => None,
            Some(m) => match self.get(m).await {
                Ok(s) if all || query.states.contains(&s.state) => Some(s),
                Ok(_) | Err(StoreError::NotFound(_)) => return Err(StoreError::NotFound(m)),
                Err(e) => return Err(e),
            },
        };
        // Newest first; the UUID breaks ties so that a marker is exact.
        let (t, u) = after.map_or((None, None), |s| {
            (Some(micros(s.started_at)), Some(*s.node.as_uuid()))
        });
        let rows = self
            .query(
                "list statuses",
                &format!(
                    "{SELECT} WHERE ($1 OR state = ANY($2))
                       AND ($3::BIGINT IS NULL OR (started_at, uuid) < ($3, $4::UUID))
                     ORDER BY started_at DESC, uuid DESC LIMIT $5"
                ),
                &[&all, &states, &t, &u, &limit],
            )
            .await?;
        self.statuses(&rows)
    }

    async fn in_state(&self, state: State) -> Result<Vec<Status>, StoreError> {
        let rows = self
            .query(
                "list statuses",
                &format!("{SELECT} WHERE state = $1 AND finished_at IS NULL"),
                &[&state.as_str()],
            )
            .await?;
        self.statuses(&rows)
    }

    async fn started_before(&self, t: Timestamp) -> Result<Vec<Status>, StoreError> {
        let rows = self
            .query(
                "list statuses",
                &format!("{SELECT} WHERE finished_at IS NULL AND started_at < $1"),
                &[&micros(t)],
            )
            .await?;
        self.statuses(&rows)
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        let c = self.client("purge old statuses").await?;
        // Attributes, options and data go with the row (ON DELETE CASCADE).
        c.execute(
            "DELETE FROM nodes WHERE finished_at < $1",
            &[&micros(finished_before)],
        )
        .await
        .map_err(backend("purge old statuses", &self.location))
    }

    async fn active_macs(&self) -> Result<HashSet<MacAddr>, StoreError> {
        let rows = self
            .query(
                "list active MACs",
                "SELECT value FROM attributes WHERE name = 'mac'",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok()?.parse().ok())
            .collect())
    }

    async fn macs(&self, node: NodeId) -> Result<Vec<MacAddr>, StoreError> {
        let c = self.client("read MACs").await?;
        rows::macs(&c, node, &self.location).await
    }

    async fn options(&self, node: NodeId) -> Result<Options, StoreError> {
        let rows = self
            .query(
                "read options",
                "SELECT name, value FROM options WHERE uuid = $1",
                &[node.as_uuid()],
            )
            .await?;
        let mut out = Options::new();
        for r in rows {
            let (Ok(k), Ok(v)) = (r.try_get::<_, String>(0), r.try_get::<_, String>(1)) else {
                continue;
            };
            if let Ok(v) = serde_json::from_str(&v) {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    async fn put_data(&self, node: NodeId, kind: DataKind, data: &Value) -> Result<(), StoreError> {
        let text = data.to_string();
        if text.len() > MAX_DATA_BYTES {
            return Err(StoreError::DataTooLarge {
                node,
                size: text.len(),
            });
        }
        let c = self.client("store introspection data").await?;
        let r = c
            .execute(
                "INSERT INTO data (uuid, kind, value) VALUES ($1, $2, $3)
                 ON CONFLICT (uuid, kind) DO UPDATE SET value = excluded.value",
                &[node.as_uuid(), &kind.as_str(), &text],
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Err(StoreError::NotFound(node)),
            Err(e) => Err(backend("store introspection data", &self.location)(e)),
        }
    }

    async fn get_data(&self, node: NodeId, kind: DataKind) -> Result<Option<Value>, StoreError> {
        let rows = self
            .query(
                "read introspection data",
                "SELECT value FROM data WHERE uuid = $1 AND kind = $2",
                &[node.as_uuid(), &kind.as_str()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let text: String = row
            .try_get(0)
            .map_err(backend("read introspection data", &self.location))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Backend {
                action: "decode introspection data",
                location: self.location.clone(),
                source: Box::new(e),
            })
    }

    async fn count_active(&self) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "count active nodes",
                "SELECT count(*) FROM nodes WHERE finished_at IS NULL",
                &[],
            )
            .await?;
        let n: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(backend("count active nodes", &self.location))?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        // A connection, and a server that takes writes (not a standby,
        // not set read-only).
        let rows = self
            .query(
                "check the database",
                "SELECT current_setting('transaction_read_only')",
                &[],
            )
            .await?;
        let ro: String = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(backend("check the database", &self.location))?
            .unwrap_or_default();
        if ro == "on" {
            return Err(StoreError::Unwritable {
                location: self.location.clone(),
                reason: "the server is read-only (a standby, or default_transaction_read_only)".into(),
            });
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query("answer a query", "SELECT 1", &[]).await.map(drop)
    }

    fn shared(&self) -> bool {
        true
    }

    fn mac_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.clone())
    }

    async fn claim_periodic(&self, name: &str, period: Duration) -> Result<bool, StoreError> {
        // The database's clock, not the daemons': one claim per period
        // whatever their skew. A tenth of the period is slack for ticks
        // that come a little early; a holder that died simply stops
        // claiming and the next daemon's tick after the period takes it.
        let secs = period.as_secs_f64() * 0.9;
        let rows = self
            .query(
                "claim a periodic task",
                "INSERT INTO periodic_runs (name, last_run) VALUES ($1, now())
                 ON CONFLICT (name) DO UPDATE SET last_run = now()
                 WHERE periodic_runs.last_run <= now() - $2 * interval '1 second'
                 RETURNING name",
                &[&name, &secs],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    fn lease_time(&self) -> Option<Duration> {
        Some(self.leases.time)
    }

    fn owner(&self) -> &str {
        &self.leases.owner
    }

    async fn renew_leases(&self) -> Result<u64, StoreError> {
        let c = self.client("renew leases").await?;
        leases::renew(&c, &self.leases, &self.location).await
    }

    async fn record_step(&self, node: NodeId, step: &Step) -> Result<(), StoreError> {
        let c = self.client("record a step").await?;
        if leases::record_step(&c, &self.leases, node, step, &self.location).await? {
            return Ok(());
        }
        // Moved on (timed out, aborted) or taken over by another daemon.
        let actual = self.get(node).await.ok();
        Err(changed(node, Some(State::Processing), actual.as_ref()))
    }

    async fn claim_expired(&self, limit: usize) -> Result<Vec<Orphan>, StoreError> {
        let mut c = self.client("claim expired leases").await?;
        leases::claim(&mut c, &self.leases, limit, &self.location).await
    }
}
