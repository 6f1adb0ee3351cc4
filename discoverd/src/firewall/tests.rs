use super::*;
use common::MacAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// A fake helper: records requests, answers Applied, and can be told
/// to refuse or to drop connections.
struct FakeHelper {
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<RequestBody>>>,
    refuse_next: Arc<AtomicUsize>,
    /// Connections to close right after answering a sync (a helper
    /// restart, seen from the daemon).
    close_after_sync: Arc<AtomicUsize>,
}

impl FakeHelper {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("fw.sock")
    }

    fn start(dir: tempfile::TempDir) -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::UnixListener::bind(dir.path().join("fw.sock"))?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let refuse_next = Arc::new(AtomicUsize::new(0));
        let close_after_sync = Arc::new(AtomicUsize::new(0));
        let (r, n, c) = (requests.clone(), refuse_next.clone(), close_after_sync.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (r, n, c) = (r.clone(), n.clone(), c.clone());
                tokio::spawn(async move {
                    let mut count = 0usize;
                    while let Ok(Some(req)) = protocol::io::read_frame::<Request, _>(&mut stream).await {
                        r.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(req.body.clone());
                        let was_sync = matches!(req.body, RequestBody::Sync(_));
                        let body = match req.body {
                            RequestBody::Hello { version } => ReplyBody::Hello {
                                version,
                                backend: "fake".into(),
                            },
                            _ if n.load(Ordering::SeqCst) > 0 => {
                                n.fetch_sub(1, Ordering::SeqCst);
                                ReplyBody::Error(protocol::ProtocolError::new(
                                    ErrorCode::NotSynced,
                                    "fresh helper",
                                ))
                            }
                            _ => {
                                count += 1;
                                ReplyBody::Applied(protocol::AppliedSummary {
                                    mac_count: count,
                                    generation: count as u64,
                                    apply_micros: 1,
                                })
                            }
                        };
                        if protocol::io::write_frame(&mut stream, &Reply { id: req.id, body })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        if was_sync && c.load(Ordering::SeqCst) > 0 {
                            c.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                    }
                });
            }
        });
        Ok((
            FakeHelper {
                dir,
                requests,
                refuse_next,
                close_after_sync,
            },
            task,
        ))
    }

    fn ops(&self) -> Vec<RequestBody> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn firewall(socket: PathBuf, mode: FilterMode, enabled: bool) -> Firewall {
    Firewall::new(FirewallSettings {
        enabled,
        socket,
        mode,
        discovery: false,
        interfaces: vec![InterfaceName::new("br0").unwrap_or_else(|e| panic!("{e}"))],
        request_timeout: Duration::from_secs(2),
    })
}

fn mac(s: &str) -> MacAddr {
    MacAddr::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn full_then_incremental_changes_per_mode() -> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall(h.socket(), FilterMode::Deny, true);
    let ironic = s(&["52:54:00:00:00:01", "52:54:00:00:00:02"]);
    // Another introspection runs throughout: deny mode stays open.
    fw.sync(&ironic, &HashSet::new(), 1).await?;
    fw.introspection_started(&s(&["52:54:00:00:00:02"]), async { Some(2) })
        .await?;
    fw.introspection_finished(&s(&["52:54:00:00:00:02", "52:54:00:00:00:09"]), async { Some(1) })
        .await?;
    let ops = h.ops();
    assert!(matches!(ops[0], RequestBody::Hello { .. }));
    assert!(matches!(&ops[1], RequestBody::Sync(st) if st.macs.len() == 2 && st.mode == FilterMode::Deny));
    assert_eq!(
        ops[2],
        RequestBody::Remove {
            macs: vec![mac("52:54:00:00:00:02")]
        }
    );
    // ...:09 is not an Ironic port, so it does not go into the deny set.
    assert_eq!(
        ops[3],
        RequestBody::Add {
            macs: vec![mac("52:54:00:00:00:02")]
        }
    );
    assert!(fw.status().synced_once && !fw.status().stale);

    let allow = firewall(h.socket(), FilterMode::Allow, true);
    allow.sync(&ironic, &HashSet::new(), 0).await?;
    allow
        .introspection_started(&s(&["52:54:00:00:00:01"]), async { Some(1) })
        .await?;
    let ops = h.ops();
    assert!(matches!(&ops[5], RequestBody::Sync(st) if st.macs.is_empty()));
    assert_eq!(
        ops[6],
        RequestBody::Add {
            macs: vec![mac("52:54:00:00:00:01")]
        }
    );
    Ok(())
}

#[tokio::test]
async fn a_helper_that_lost_its_state_gets_a_full_sync() -> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall(h.socket(), FilterMode::Deny, true);
    fw.sync(&s(&["52:54:00:00:00:01"]), &HashSet::new(), 1).await?;
    h.refuse_next.store(1, Ordering::SeqCst);
    fw.introspection_started(&s(&["52:54:00:00:00:01"]), async { Some(2) })
        .await?;
    let ops = h.ops();
    assert!(
        matches!(ops.last(), Some(RequestBody::Sync(st)) if st.macs.is_empty()),
        "{ops:?}"
    );
    Ok(())
}

#[tokio::test]
async fn helper_down_then_back_is_resynced_by_the_reconnector() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let fw = firewall(dir.path().join("fw.sock"), FilterMode::Deny, true);
    let err = fw.sync(&s(&["52:54:00:00:00:01"]), &HashSet::new(), 0).await;
    assert!(matches!(err, Err(FirewallError::Unreachable { .. })), "{err:?}");
    assert!(fw.status().stale);
    // The daemon keeps going: an incremental change is remembered.
    let _ = fw
        .introspection_started(&s(&["52:54:00:00:00:01"]), async { Some(1) })
        .await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = fw.spawn_reconnector(async move {
        let _ = stop_rx.await;
    });
    let (h, _t) = FakeHelper::start(dir)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fw.status().stale && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!fw.status().stale, "reconnector did not resync");
    // The resent state already excludes the MAC under introspection.
    assert!(
        h.ops()
            .iter()
            .any(|o| matches!(o, RequestBody::Sync(st) if st.macs.is_empty()))
    );
    let _ = stop_tx.send(());
    task.await?;
    Ok(())
}

#[tokio::test]
async fn a_helper_restart_is_seen_on_the_connection_and_resynced() -> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall(h.socket(), FilterMode::Deny, true);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = fw.spawn_reconnector(async move {
        let _ = stop_rx.await;
    });
    h.close_after_sync.store(1, Ordering::SeqCst);
    fw.sync(&s(&["52:54:00:00:00:01"]), &HashSet::new(), 0).await?;
    // No call from the daemon's side: the closed connection alone
    // brings a second hello and a full sync.
    let syncs = || {
        h.ops()
            .iter()
            .filter(|o| matches!(o, RequestBody::Sync(_)))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while syncs() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(syncs(), 2, "{:?}", h.ops());
    assert!(!fw.status().stale);
    let _ = stop_tx.send(());
    task.await?;
    Ok(())
}

#[tokio::test]
async fn disabled_firewall_sends_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall(h.socket(), FilterMode::Deny, false);
    fw.sync(&s(&["52:54:00:00:00:01"]), &HashSet::new(), 0).await?;
    fw.introspection_started(&s(&["52:54:00:00:00:01"]), async { Some(1) })
        .await?;
    assert!(h.ops().is_empty());
    Ok(())
}

fn firewall_with_discovery(socket: PathBuf) -> Firewall {
    Firewall::new(FirewallSettings {
        enabled: true,
        socket,
        mode: FilterMode::Deny,
        discovery: true,
        interfaces: vec![InterfaceName::new("br0").unwrap_or_else(|e| panic!("{e}"))],
        request_timeout: Duration::from_secs(2),
    })
}

fn syncs(h: &FakeHelper) -> Vec<FilterState> {
    h.ops()
        .into_iter()
        .filter_map(|o| match o {
            RequestBody::Sync(st) => Some(st),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn deny_mode_opens_at_the_first_introspection_and_closes_after_the_last()
-> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall(h.socket(), FilterMode::Deny, true);
    let ironic = s(&["52:54:00:00:00:01", "52:54:00:00:00:02"]);
    // Nothing runs: closed (allow mode, empty set: no DHCP passes).
    fw.sync(&ironic, &HashSet::new(), 0).await?;
    assert_eq!(fw.plan(), Some(Plan::Closed));
    let closed = |st: &FilterState| st.mode == FilterMode::Allow && st.macs.is_empty();
    assert!(closed(&syncs(&h)[0]), "{:?}", h.ops());
    // A node without ports starts: its start carries no MAC, yet the
    // filter opens for unknown MACs with one full sync.
    fw.introspection_started(&[], async { Some(1) }).await?;
    assert_eq!(fw.plan(), Some(Plan::Deny));
    let open = &syncs(&h)[1];
    assert_eq!(open.mode, FilterMode::Deny);
    assert_eq!(
        open.macs,
        vec![mac("52:54:00:00:00:01"), mac("52:54:00:00:00:02")]
    );
    // A second start changes only its own MACs, incrementally.
    fw.introspection_started(&s(&["52:54:00:00:00:02"]), async { Some(2) })
        .await?;
    assert_eq!(
        h.ops().last(),
        Some(&RequestBody::Remove {
            macs: vec![mac("52:54:00:00:00:02")]
        })
    );
    // The portless one ends: still one running, nothing to send.
    let before = h.ops().len();
    fw.introspection_finished(&[], async { Some(1) }).await?;
    assert_eq!(h.ops().len(), before, "{:?}", h.ops());
    assert_eq!(syncs(&h).len(), 2);
    // The last ends: closed again with a full sync.
    fw.introspection_finished(&s(&["52:54:00:00:00:02"]), async { Some(0) })
        .await?;
    assert_eq!(fw.plan(), Some(Plan::Closed));
    let all = syncs(&h);
    assert_eq!(all.len(), 3, "{:?}", h.ops());
    assert!(closed(&all[2]), "{:?}", all[2]);
    // A periodic sync agreeing with the plan changes nothing of it.
    fw.sync(&ironic, &HashSet::new(), 0).await?;
    assert!(closed(&syncs(&h)[3]));
    Ok(())
}

#[tokio::test]
async fn a_start_whose_count_cannot_be_read_still_opens() -> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall(h.socket(), FilterMode::Deny, true);
    fw.sync(&s(&["52:54:00:00:00:01"]), &HashSet::new(), 0).await?;
    fw.introspection_started(&[], async { None }).await?;
    assert_eq!(fw.plan(), Some(Plan::Deny));
    // An ending whose count cannot be read keeps the filter open (the
    // next periodic sync closes it).
    fw.introspection_finished(&[], async { None }).await?;
    assert_eq!(fw.plan(), Some(Plan::Deny));
    assert_eq!(syncs(&h).len(), 2);
    Ok(())
}

#[tokio::test]
async fn discovery_keeps_deny_mode_open_with_nothing_running() -> Result<(), Box<dyn std::error::Error>> {
    let (h, _t) = FakeHelper::start(tempfile::tempdir()?)?;
    let fw = firewall_with_discovery(h.socket());
    fw.sync(&s(&["52:54:00:00:00:01"]), &HashSet::new(), 0).await?;
    assert_eq!(fw.plan(), Some(Plan::Deny));
    fw.introspection_started(&[], async { Some(1) }).await?;
    fw.introspection_finished(&[], async { Some(0) }).await?;
    let all = syncs(&h);
    assert_eq!(all.len(), 1, "{:?}", h.ops());
    assert_eq!(all[0].mode, FilterMode::Deny);
    assert_eq!(all[0].macs, vec![mac("52:54:00:00:00:01")]);
    Ok(())
}
