//! The store conformance suite: written once against [`NodeStore`], run
//! against every implementation (SQLite in `discoverd/tests/store.rs`;
//! PostgreSQL beside it). Each case gets a fresh, empty store from the
//! factory.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, ensure};
use common::MacAddr;
use discoverd::domain::{NodeId, State, Timestamp};
use discoverd::store::{
    DataKind, ListQuery, LookupKey, MAX_DATA_BYTES, NewIntrospection, NodeStore, Options, StoreError,
};
use serde_json::json;

type Store = Arc<dyn NodeStore>;

/// Runs every case; the first failure names the case.
pub async fn run<F, Fut>(make: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Store>>,
{
    macro_rules! case {
        ($name:ident) => {
            $name(make().await?).await.context(stringify!($name))?;
        };
    }
    case!(start_find_finish_cycle);
    case!(duplicates_are_refused_and_write_nothing);
    case!(ambiguous_lookup_names_the_attributes);
    case!(start_is_a_compare_and_swap);
    case!(transitions_are_compare_and_swap);
    case!(endings_are_compare_and_swap);
    case!(concurrent_writers_exactly_one_wins);
    case!(list_newest_first_with_marker_limit_and_states);
    case!(timeouts_purge_and_counts);
    case!(options_round_trip);
    case!(data_round_trip_limit_and_purge);
    case!(reopen_is_a_compare_and_swap_on_ended_nodes);
    case!(enroll_records_an_enrolling_node);
    Ok(())
}

fn id(n: u8) -> NodeId {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
        .parse()
        .unwrap_or_else(|_| NodeId::new(uuid::Uuid::nil()))
}

fn mac(n: u8) -> MacAddr {
    format!("52:54:00:00:00:{n:02x}")
        .parse()
        .unwrap_or(MacAddr::BROADCAST)
}

fn new(node: NodeId, bmc: Option<&str>) -> NewIntrospection {
    NewIntrospection {
        node,
        bmc_address: bmc.map(str::to_owned),
        options: Options::new(),
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_micros(secs * 1_000_000 + 250)
}

fn by_mac(m: MacAddr) -> LookupKey {
    LookupKey {
        bmc_address: None,
        macs: vec![m],
    }
}

fn by_bmc(b: &str) -> LookupKey {
    LookupKey {
        bmc_address: Some(b.into()),
        macs: vec![],
    }
}

async fn start_find_finish_cycle(s: Store) -> anyhow::Result<()> {
    let st = s.start(&new(id(1), Some("10.0.0.1")), None, t(100)).await?;
    ensure!(st.state == State::Starting && st.started_at == t(100) && !st.finished());
    s.add_macs(id(1), &[mac(1), mac(2)]).await?;
    ensure!(s.get(id(1)).await? == st, "get returns what start recorded");
    ensure!(s.find(&by_bmc("10.0.0.1")).await?.node == id(1));
    ensure!(s.find(&by_mac(mac(2))).await?.node == id(1));
    let mut macs = s.macs(id(1)).await?;
    macs.sort();
    ensure!(macs == vec![mac(1), mac(2)]);
    ensure!(s.active_macs().await?.len() == 2);
    let w = s.transition(id(1), State::Starting, State::Waiting).await?;
    ensure!(w.state == State::Waiting && w.started_at == t(100));
    s.transition(id(1), State::Waiting, State::Processing).await?;
    let ended = s.finish(id(1), State::Processing, None, t(200)).await?;
    ensure!(ended.status.state == State::Finished && ended.status.finished_at == Some(t(200)));
    ensure!(ended.status.error.is_none());
    let mut held = ended.macs.clone();
    held.sort();
    ensure!(
        held == vec![mac(1), mac(2)],
        "finish returns the MACs held: {held:?}"
    );
    ensure!(s.active_macs().await?.is_empty());
    ensure!(s.get(id(1)).await?.finished_at == Some(t(200)));
    match s.find(&by_bmc("10.0.0.1")).await {
        Err(StoreError::NoMatch(m)) => ensure!(m == "{'bmc_address': '10.0.0.1'}", "{m}"),
        other => anyhow::bail!("lookup after finish: {other:?}"),
    }
    ensure!(matches!(s.get(id(9)).await, Err(StoreError::NotFound(n)) if n == id(9)));
    // An error ending keeps its message.
    s.start(&new(id(2), None), None, t(300)).await?;
    let e = s.finish(id(2), State::Starting, Some("boom"), t(301)).await?;
    ensure!(e.status.state == State::Error && e.status.error.as_deref() == Some("boom"));
    Ok(())
}

async fn duplicates_are_refused_and_write_nothing(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), Some("10.0.0.1")), None, t(1)).await?;
    s.add_macs(id(1), &[mac(1)]).await?;
    match s.start(&new(id(2), Some("10.0.0.1")), None, t(2)).await {
        Err(StoreError::Duplicate { name, values }) => {
            ensure!(name == "bmc_address" && values == vec!["10.0.0.1".to_owned()]);
        }
        other => anyhow::bail!("duplicate BMC: {other:?}"),
    }
    ensure!(
        matches!(s.get(id(2)).await, Err(StoreError::NotFound(_))),
        "nothing recorded"
    );
    s.start(&new(id(2), None), None, t(3)).await?;
    match s.add_macs(id(2), &[mac(2), mac(1)]).await {
        Err(e @ StoreError::Duplicate { .. }) => ensure!(
            e.to_string()
                == "Some or all of mac's [\"52:54:00:00:00:02\", \"52:54:00:00:00:01\"] are already on introspection",
            "{e}"
        ),
        other => anyhow::bail!("duplicate MAC: {other:?}"),
    }
    ensure!(
        s.macs(id(2)).await?.is_empty(),
        "the free MAC was not kept either"
    );
    s.add_macs(id(2), &[mac(2)]).await?;
    // A node adding a MAC it already holds is fine.
    s.add_macs(id(2), &[mac(2)]).await?;
    // Once node 1 ended, its attributes are free.
    s.finish(id(1), State::Starting, Some("x"), t(4)).await?;
    s.start(&new(id(3), Some("10.0.0.1")), None, t(5)).await?;
    s.add_macs(id(3), &[mac(1)]).await?;
    Ok(())
}

async fn ambiguous_lookup_names_the_attributes(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), Some("10.0.0.1")), None, t(1)).await?;
    s.start(&new(id(2), None), None, t(1)).await?;
    s.add_macs(id(2), &[mac(2)]).await?;
    let key = LookupKey {
        bmc_address: Some("10.0.0.1".into()),
        macs: vec![mac(2)],
    };
    match s.find(&key).await {
        Err(e @ StoreError::Ambiguous(_)) => ensure!(
            e.to_string()
                == "Multiple matching nodes found for attributes {'bmc_address': '10.0.0.1', 'mac': ['52:54:00:00:00:02']}",
            "{e}"
        ),
        other => anyhow::bail!("{other:?}"),
    }
    Ok(())
}

async fn start_is_a_compare_and_swap(s: Store) -> anyhow::Result<()> {
    let mut opts = Options::new();
    opts.insert("setup_ipmi_credentials".into(), json!({"setup": true}));
    let first = NewIntrospection {
        options: opts,
        ..new(id(1), Some("10.0.0.1"))
    };
    s.start(&first, None, t(1)).await?;
    s.add_macs(id(1), &[mac(1)]).await?;
    s.put_data(id(1), DataKind::Raw, &json!({"a": 1})).await?;
    // A caller that read "no record" loses to the existing one.
    ensure!(matches!(
        s.start(&new(id(1), None), None, t(2)).await,
        Err(StoreError::StateChanged {
            expected: None,
            actual: Some(State::Starting),
            ..
        })
    ));
    s.transition(id(1), State::Starting, State::Waiting).await?;
    ensure!(matches!(
        s.start(&new(id(1), None), Some(State::Starting), t(2)).await,
        Err(StoreError::StateChanged {
            actual: Some(State::Waiting),
            ..
        })
    ));
    // A restart from the state read replaces the run: new time, no
    // attributes, options or data of the old one.
    let again = s.start(&new(id(1), None), Some(State::Waiting), t(3)).await?;
    ensure!(again.state == State::Starting && again.started_at == t(3));
    ensure!(s.macs(id(1)).await?.is_empty());
    ensure!(s.options(id(1)).await?.is_empty());
    ensure!(s.get_data(id(1), DataKind::Raw).await?.is_none());
    ensure!(matches!(
        s.find(&by_bmc("10.0.0.1")).await,
        Err(StoreError::NoMatch(_))
    ));
    Ok(())
}

async fn transitions_are_compare_and_swap(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), None), None, t(1)).await?;
    ensure!(matches!(
        s.transition(id(1), State::Waiting, State::Processing).await,
        Err(StoreError::StateChanged {
            expected: Some(State::Waiting),
            actual: Some(State::Starting),
            ..
        })
    ));
    ensure!(
        s.get(id(1)).await?.state == State::Starting,
        "a lost swap changes nothing"
    );
    // Endings go through finish, never through transition.
    ensure!(
        s.transition(id(1), State::Starting, State::Finished)
            .await
            .is_err()
    );
    ensure!(matches!(
        s.transition(id(9), State::Starting, State::Waiting).await,
        Err(StoreError::StateChanged { actual: None, .. }) | Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn endings_are_compare_and_swap(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), None), None, t(1)).await?;
    s.transition(id(1), State::Starting, State::Waiting).await?;
    ensure!(s.finish(id(1), State::Starting, None, t(2)).await.is_err());
    s.finish(id(1), State::Waiting, Some("Introspection timeout"), t(2))
        .await?;
    // A second ending never overwrites the first.
    ensure!(s.finish(id(1), State::Error, None, t(3)).await.is_err());
    let st = s.get(id(1)).await?;
    ensure!(st.error.as_deref() == Some("Introspection timeout") && st.finished_at == Some(t(2)));
    Ok(())
}

async fn concurrent_writers_exactly_one_wins(s: Store) -> anyhow::Result<()> {
    for round in 0..40u8 {
        let node = id(round);
        s.start(&new(node, None), None, t(1)).await?;
        s.transition(node, State::Starting, State::Waiting).await?;
        let (a, b) = (s.clone(), s.clone());
        let one = tokio::spawn(async move { a.transition(node, State::Waiting, State::Processing).await });
        let two = tokio::spawn(async move { b.finish(node, State::Waiting, Some("timeout"), t(2)).await });
        let (one, two) = (one.await?, two.await?);
        ensure!(
            one.is_ok() != two.is_ok(),
            "round {round}: both or neither won: {one:?} / {two:?}"
        );
        let st = s.get(node).await?;
        if one.is_ok() {
            ensure!(st.state == State::Processing);
        } else {
            ensure!(st.state == State::Error);
        }
    }
    // Two reports racing for the same node.
    let node = id(200);
    s.start(&new(node, None), None, t(1)).await?;
    s.transition(node, State::Starting, State::Waiting).await?;
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.transition(node, State::Waiting, State::Processing).await })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        if r.await?.is_ok() {
            wins += 1;
        }
    }
    ensure!(wins == 1, "{wins} of 8 racers won");
    Ok(())
}

async fn list_newest_first_with_marker_limit_and_states(s: Store) -> anyhow::Result<()> {
    for n in 1..=5u8 {
        s.start(&new(id(n), None), None, t(i64::from(n) * 10)).await?;
    }
    s.transition(id(2), State::Starting, State::Waiting).await?;
    s.finish(id(4), State::Starting, None, t(60)).await?;
    let all = |q: ListQuery| {
        let s = s.clone();
        async move {
            Ok::<_, StoreError>(
                s.list(&q)
                    .await?
                    .into_iter()
                    .map(|st| st.node)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let q = |marker, limit, states: Vec<State>| ListQuery {
        marker,
        limit,
        states,
    };
    ensure!(all(q(None, 10, vec![])).await? == vec![id(5), id(4), id(3), id(2), id(1)]);
    ensure!(all(q(None, 2, vec![])).await? == vec![id(5), id(4)]);
    ensure!(all(q(Some(id(4)), 2, vec![])).await? == vec![id(3), id(2)]);
    ensure!(all(q(Some(id(1)), 2, vec![])).await?.is_empty());
    ensure!(all(q(None, 10, vec![State::Waiting, State::Finished])).await? == vec![id(4), id(2)]);
    ensure!(matches!(
        s.list(&q(Some(id(99)), 2, vec![])).await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

async fn timeouts_purge_and_counts(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), None), None, t(10)).await?;
    s.start(&new(id(2), None), None, t(20)).await?;
    s.start(&new(id(3), None), None, t(5)).await?;
    s.finish(id(3), State::Starting, None, t(15)).await?;
    s.transition(id(2), State::Starting, State::Waiting).await?;
    ensure!(s.count_active().await? == 2);
    let old: Vec<NodeId> = s
        .started_before(t(15))
        .await?
        .into_iter()
        .map(|st| st.node)
        .collect();
    ensure!(old == vec![id(1)], "{old:?}");
    let starting: Vec<NodeId> = s
        .in_state(State::Starting)
        .await?
        .into_iter()
        .map(|st| st.node)
        .collect();
    ensure!(starting == vec![id(1)]);
    // Only statuses finished before the limit go.
    ensure!(s.purge(t(14)).await? == 0);
    ensure!(s.purge(t(16)).await? == 1);
    ensure!(matches!(s.get(id(3)).await, Err(StoreError::NotFound(_))));
    ensure!(s.get(id(1)).await.is_ok() && s.get(id(2)).await.is_ok());
    s.ping().await?;
    s.check_writable().await?;
    Ok(())
}

async fn options_round_trip(s: Store) -> anyhow::Result<()> {
    let mut opts = Options::new();
    opts.insert(
        "setup_ipmi_credentials".into(),
        json!({"setup": true, "username": "u", "password": null}),
    );
    opts.insert("manage_boot".into(), json!(false));
    s.start(
        &NewIntrospection {
            options: opts.clone(),
            ..new(id(1), None)
        },
        None,
        t(1),
    )
    .await?;
    ensure!(s.options(id(1)).await? == opts);
    s.finish(id(1), State::Starting, None, t(2)).await?;
    ensure!(s.options(id(1)).await?.is_empty(), "options go with the ending");
    Ok(())
}

async fn data_round_trip_limit_and_purge(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), None), None, t(1)).await?;
    let raw = json!({"inventory": {"cpu": {"count": 4}}, "ünïcode": "✓"});
    s.put_data(id(1), DataKind::Raw, &raw).await?;
    s.put_data(id(1), DataKind::Processed, &json!({"p": 1})).await?;
    s.put_data(id(1), DataKind::Processed, &json!({"p": 2})).await?;
    ensure!(s.get_data(id(1), DataKind::Raw).await? == Some(raw));
    ensure!(s.get_data(id(1), DataKind::Processed).await? == Some(json!({"p": 2})));
    let big = json!("x".repeat(MAX_DATA_BYTES));
    ensure!(matches!(
        s.put_data(id(1), DataKind::Raw, &big).await,
        Err(StoreError::DataTooLarge { .. })
    ));
    ensure!(matches!(
        s.put_data(id(9), DataKind::Raw, &json!({})).await,
        Err(StoreError::NotFound(_))
    ));
    // Data outlives the ending, and goes with the purge.
    s.finish(id(1), State::Starting, None, t(2)).await?;
    ensure!(s.get_data(id(1), DataKind::Processed).await?.is_some());
    s.purge(t(3)).await?;
    ensure!(s.get_data(id(1), DataKind::Processed).await?.is_none());
    Ok(())
}

async fn reopen_is_a_compare_and_swap_on_ended_nodes(s: Store) -> anyhow::Result<()> {
    s.start(&new(id(1), Some("10.0.0.1")), None, t(1)).await?;
    // Only an ended node reopens.
    ensure!(matches!(
        s.reopen(id(1), State::Starting, State::Reapplying, t(2)).await,
        Err(StoreError::StateChanged { .. })
    ));
    ensure!(matches!(
        s.reopen(id(9), State::Finished, State::Reapplying, t(2)).await,
        Err(StoreError::StateChanged { actual: None, .. } | StoreError::NotFound(_))
    ));
    s.put_data(id(1), DataKind::Raw, &json!({"r": 1})).await?;
    s.finish(id(1), State::Starting, Some("boom"), t(2)).await?;
    ensure!(matches!(
        s.reopen(id(1), State::Finished, State::Reapplying, t(3)).await,
        Err(StoreError::StateChanged {
            actual: Some(State::Error),
            ..
        })
    ));
    ensure!(matches!(
        s.reopen(id(1), State::Error, State::Finished, t(3)).await,
        Err(StoreError::StateChanged { .. })
    ));
    let st = s.reopen(id(1), State::Error, State::Reapplying, t(3)).await?;
    ensure!(st.state == State::Reapplying && st.finished_at.is_none() && st.error.is_none());
    ensure!(st.started_at == t(3), "started anew");
    ensure!(s.get(id(1)).await? == st, "the read agrees");
    // No lookup attributes came back; the data stayed; it ends again.
    let key = LookupKey {
        bmc_address: Some("10.0.0.1".into()),
        macs: Vec::new(),
    };
    ensure!(s.find(&key).await.is_err());
    ensure!(s.get_data(id(1), DataKind::Raw).await? == Some(json!({"r": 1})));
    let ended = s.finish(id(1), State::Reapplying, None, t(4)).await?;
    ensure!(ended.status.state == State::Finished && ended.status.finished_at == Some(t(4)));
    Ok(())
}

/// Auto-discovery's record: state `enrolling`, found by its BMC address
/// and MACs, moved on to `processing`; a compare-and-swap like a start,
/// over an ended run of the same node too.
async fn enroll_records_an_enrolling_node(s: Store) -> anyhow::Result<()> {
    let st = s
        .record(&new(id(1), Some("10.0.0.7")), None, t(10), State::Enrolling)
        .await?;
    ensure!(st.state == State::Enrolling && st.started_at == t(10) && !st.finished());
    ensure!(s.get(id(1)).await? == st);
    s.add_macs(id(1), &[mac(7)]).await?;
    ensure!(s.find(&by_bmc("10.0.0.7")).await?.node == id(1));
    ensure!(s.find(&by_mac(mac(7))).await?.state == State::Enrolling);
    ensure!(matches!(
        s.record(&new(id(1), None), None, t(11), State::Enrolling).await,
        Err(StoreError::StateChanged {
            actual: Some(State::Enrolling),
            ..
        })
    ));
    // Another node cannot take the BMC address meanwhile.
    ensure!(matches!(
        s.record(&new(id(2), Some("10.0.0.7")), None, t(11), State::Enrolling)
            .await,
        Err(StoreError::Duplicate { .. })
    ));
    s.transition(id(1), State::Enrolling, State::Processing).await?;
    s.finish(id(1), State::Processing, Some("boom"), t(12)).await?;
    let again = s
        .record(
            &new(id(1), Some("10.0.0.7")),
            Some(State::Error),
            t(13),
            State::Enrolling,
        )
        .await?;
    ensure!(again.state == State::Enrolling && again.error.is_none() && again.finished_at.is_none());
    Ok(())
}
