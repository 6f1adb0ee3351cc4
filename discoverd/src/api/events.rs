//! `GET /v1/events`: the state changes of every node (or of the nodes in
//! `?node=a,b`, UUIDs or names), as Server-Sent Events, fed by the event
//! bus. No peer offers this: a client follows hundreds of nodes without
//! polling. Behind the same authentication as a status GET.
//!
//! Events: `status` (with `?node=`, each named node's current status
//! first, so a client that subscribes after a start misses nothing),
//! `state` (one change: node, from, to, at, error), `lagged` (the client
//! fell behind and lost changes; re-read the statuses). A comment is sent
//! every `events_keep_alive` seconds while idle; the stream ends when the
//! daemon shuts down.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::introspection::{resolve, status_json};
use super::rejected;
use crate::app::App;
use crate::domain::{NodeId, StateChange};

/// Most nodes one stream may filter on.
pub const MAX_FILTER_NODES: usize = 1000;

fn change_event(c: &StateChange) -> Event {
    Event::default().event("state").data(
        json!({
            "node": c.node,
            "from": c.from,
            "to": c.to,
            "at": c.at,
            "error": c.error,
            "finished": c.to.is_final(),
        })
        .to_string(),
    )
}

/// `GET /v1/events[?node=a,b]`.
pub async fn events(
    State(app): State<App>,
    q: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(rejected)?;
    let mut filter: Option<HashSet<NodeId>> = None;
    if let Some(list) = q.get("node") {
        let names: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Err(ApiError::bad_request(
                "Bad request: node must name at least one node",
            ));
        }
        if names.len() > MAX_FILTER_NODES {
            return Err(ApiError::bad_request(format!(
                "Bad request: at most {MAX_FILTER_NODES} nodes per event stream"
            )));
        }
        let mut ids = HashSet::new();
        for n in names {
            ids.insert(resolve(&app, n).await?);
        }
        filter = Some(ids);
    }
    // Subscribe before reading the statuses: no change falls in between.
    let rx = app.bus.subscribe();
    let mut first = Vec::new();
    if let Some(ids) = &filter {
        let host = super::versions::request_host(&headers);
        for id in ids {
            match app.store.get(*id).await {
                Ok(s) => first.push(Ok(Event::default()
                    .event("status")
                    .data(status_json(&s, host).to_string()))),
                Err(crate::store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let changes = follow(rx, filter).take_until(app.tasks.stopping());
    let body = stream::iter(first).chain(changes);
    Ok(Sse::new(body)
        .keep_alive(
            KeepAlive::new()
                .interval(app.config.events_keep_alive)
                .text("keep-alive"),
        )
        .into_response())
}

/// The bus as events, filtered.
fn follow(
    rx: tokio::sync::broadcast::Receiver<StateChange>,
    filter: Option<HashSet<NodeId>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            match rx.recv().await {
                Ok(c) => {
                    if filter.as_ref().is_none_or(|f| f.contains(&c.node)) {
                        return Some((Ok(change_event(&c)), (rx, filter)));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let ev = Event::default()
                        .event("lagged")
                        .data(json!({"missed": n}).to_string());
                    return Some((Ok(ev), (rx, filter)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
