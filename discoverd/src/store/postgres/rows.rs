//! Row decoding and the statements shared by several operations of the
//! PostgreSQL store.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::domain::{NodeId, State, Timestamp};
use crate::store::{Status, StoreError};

pub const COLUMNS: &str = "uuid, started_at, finished_at, error, state";
pub const SELECT: &str = "SELECT uuid, started_at, finished_at, error, state FROM nodes";

/// Wraps a driver error: the action and where, never the password.
pub fn backend<'a>(
    action: &'static str,
    location: &'a str,
) -> impl Fn(tokio_postgres::Error) -> StoreError + 'a {
    move |e| StoreError::Backend {
        action,
        location: location.to_owned(),
        source: Box::new(e),
    }
}

/// One `nodes` row; a state this build does not know is a storage error.
pub fn status(r: &Row, location: &str) -> Result<Status, StoreError> {
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
        action: "decode a status",
        location: location.to_owned(),
        source: e,
    };
    let get = |e: tokio_postgres::Error| bad(Box::new(e));
    let uuid: uuid::Uuid = r.try_get(0).map_err(get)?;
    let state: String = r.try_get(4).map_err(get)?;
    Ok(Status {
        node: NodeId::new(uuid),
        started_at: Timestamp::from_micros(r.try_get(1).map_err(get)?),
        finished_at: r
            .try_get::<_, Option<i64>>(2)
            .map_err(get)?
            .map(Timestamp::from_micros),
        error: r
            .try_get::<_, Option<String>>(3)
            .map_err(get)?
            .filter(|e| !e.is_empty()),
        state: state.parse().map_err(|e| bad(Box::new(e)))?,
    })
}

pub fn statuses(rows: &[Row], location: &str) -> Result<Vec<Status>, StoreError> {
    rows.iter().map(|r| status(r, location)).collect()
}

/// The node's status, its row locked until the transaction ends (the
/// compare-and-swap: a concurrent writer waits, then reads the new state).
pub async fn locked(
    c: &impl GenericClient,
    node: NodeId,
    location: &str,
) -> Result<Option<Status>, StoreError> {
    let q = c
        .prepare_cached(&format!("{SELECT} WHERE uuid = $1 FOR UPDATE"))
        .await
        .map_err(backend("lock a status", location))?;
    let row = c
        .query_opt(&q, &[node.as_uuid()])
        .await
        .map_err(backend("lock a status", location))?;
    row.map(|r| status(&r, location)).transpose()
}

/// Adds lookup attributes in the caller's transaction; a value another
/// node holds (committed, or committed by a concurrent writer this one
/// waited for) is [`StoreError::Duplicate`] and the caller rolls back.
pub async fn add_attributes(
    c: &impl GenericClient,
    node: NodeId,
    name: &str,
    values: &[String],
    location: &str,
) -> Result<(), StoreError> {
    let err = backend("add attributes", location);
    let q = c
        .prepare_cached(
            "INSERT INTO attributes (name, value, uuid) VALUES ($1, $2, $3)
             ON CONFLICT (name, value) DO UPDATE SET uuid = attributes.uuid RETURNING uuid",
        )
        .await
        .map_err(&err)?;
    for v in values {
        let row = c.query_one(&q, &[&name, v, node.as_uuid()]).await.map_err(&err)?;
        let holder: uuid::Uuid = row.try_get(0).map_err(&err)?;
        if holder != *node.as_uuid() {
            return Err(StoreError::Duplicate {
                name: name.to_owned(),
                values: values.to_vec(),
            });
        }
    }
    Ok(())
}

/// The MACs a node holds, sorted.
pub async fn macs(
    c: &impl GenericClient,
    node: NodeId,
    location: &str,
) -> Result<Vec<common::MacAddr>, StoreError> {
    let err = backend("read MACs", location);
    let q = c
        .prepare_cached("SELECT value FROM attributes WHERE name = 'mac' AND uuid = $1 ORDER BY value")
        .await
        .map_err(&err)?;
    let rows = c.query(&q, &[node.as_uuid()]).await.map_err(&err)?;
    // A value this build cannot parse (written by hand) is skipped.
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<_, String>(0).ok()?.parse().ok())
        .collect())
}

/// The state read for a compare-and-swap that lost.
pub fn changed(node: NodeId, expected: Option<State>, actual: Option<&Status>) -> StoreError {
    StoreError::StateChanged {
        node,
        expected,
        actual: actual.map(|s| s.state),
    }
}
