//! How fast the filter puts itself back (run as root):
//! `cargo bench -p ironic-discoverd-fw-helper --bench defence`.
//!
//! In a private network namespace, with the helper holding 1 k / 10 k /
//! 100 k MACs: the time from an external `nft flush ruleset` (and `nft
//! delete table`) to the helper's restoring transaction committed, and the
//! full set read back afterwards. The tampering is seen through nf_tables'
//! change notifications; the restore's commit through the nf_tables
//! generation, with nobody listening to notifications (as in production:
//! the kernel writes one per element for each listener, see watch::Quiet).
//! A third column keeps a listener during the restore (`nft monitor`
//! running). Medians of several runs, printed as a Markdown table.
//!
//! Then the iptables backend (1 k / 10 k MACs, the default 1 s periodic
//! check): the time from an external `iptables -F IRONIC_DISCOVERD_MACS`
//! committed to the helper's restore committed (the next nf_tables
//! transaction: the check itself only reads). It is mostly the wait for
//! the next check (the flushes are staggered over the interval), so median
//! and worst are printed.
//! `DISCOVERD_BENCH_DEFENCE=iptables` runs only that part.

use std::process::Command;
use std::time::{Duration, Instant};

use common::protocol::{ReplyBody, RequestBody};
use common::{FilterMode, FilterState, InterfaceName, MacAddr};
use fw_helper::backend::Backend;
use fw_helper::backend::netlink::Socket;
use fw_helper::backend::nft::Nftables;
use fw_helper::backend::watch::{Notice, Watch};

const RUNS: usize = 7;

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr::new([0x02, 0x77, b[0], b[1], b[2], b[3]])
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The median, or a note when every run lost its notifications.
fn med(v: &[Duration]) -> String {
    if v.is_empty() {
        return "notifications lost".into();
    }
    ms(median(v.to_vec()))
}

/// Reads notifications as they come: returns when the tampering
/// transaction (the first one) was committed and when the next one that
/// re-created our table (the helper's restore) was. `None` when
/// notifications were lost (ENOBUFS).
fn wait_restored(watch: &Watch) -> Option<(Instant, Instant)> {
    let mut gone = None;
    let mut recreated = false;
    loop {
        let batch = watch.recv_notices().ok()?;
        for (notice, _) in batch {
            match notice {
                Notice::EndOfTransaction if gone.is_none() => gone = Some(Instant::now()),
                Notice::Ours("NEWTABLE") if gone.is_some() => recreated = true,
                Notice::EndOfTransaction if recreated => return gone.map(|g| (g, Instant::now())),
                _ => {}
            }
        }
    }
}

/// The time from the tampering transaction's commit to the helper's
/// restoring one, with nobody listening to change notifications meanwhile
/// (as in production, where the helper's own watch is muted for its
/// restore): the tampering is seen through the notifications, then this
/// stops listening and polls the nf_tables generation, which moves once per
/// committed transaction (`before` + 1: the tampering, + 2: the restore).
fn wait_restored_unheard(watch: Watch, before: u32) -> Option<Duration> {
    let gone = loop {
        let batch = watch.recv_notices().ok()?;
        if batch.iter().any(|(n, _)| *n == Notice::EndOfTransaction) {
            break Instant::now();
        }
    };
    drop(watch);
    let sock = Socket::open().ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sock.generation().ok()?.wrapping_sub(before) >= 2 {
            return Some(gone.elapsed());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Starts a helper with `backend` on a socket in `dir` and connects.
fn start_helper(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    backend: &str,
) -> (std::process::Child, fw_helper::ctl::Client) {
    let socket = dir.join(format!("{backend}.sock"));
    let helper = Command::new(env!("CARGO_BIN_EXE_ironic-discoverd-fw-helper"))
        .args([
            "--allowed-uid",
            "0",
            "--user",
            "nobody",
            "--interfaces",
            "br-bench",
            "--backend",
            backend,
            "--socket",
        ])
        .arg(&socket)
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap_or_else(|e| panic!("helper: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (client, _) = loop {
        match rt.block_on(fw_helper::ctl::Client::connect(&socket)) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    (helper, client)
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the defence benchmark needs root (it works in a private network namespace)");
        std::process::exit(1);
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("unshare: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    if std::env::var("DISCOVERD_BENCH_DEFENCE").as_deref() != Ok("iptables") {
        nftables_rows(&rt, dir.path());
    }
    iptables_rows(&rt, dir.path());
}

fn nftables_rows(rt: &tokio::runtime::Runtime, dir: &std::path::Path) {
    let (mut helper, mut client) = start_helper(rt, dir, "nftables");
    let iface = InterfaceName::new("br-bench").unwrap_or_else(|e| panic!("{e}"));
    println!("Filter restore after tampering, median of {RUNS} runs\n");
    println!(
        "| n MACs | sync through the helper | `nft flush ruleset` → restored (committed) | `nft delete table` → restored | `nft flush ruleset` → restored, with a listener (`nft monitor`) | restored → full set read back |"
    );
    println!("|---|---|---|---|---|---|");
    let reader = Nftables::default();
    for n in [1_000u32, 10_000, 100_000] {
        let state = FilterState {
            interfaces: vec![iface.clone()],
            mode: FilterMode::Deny,
            macs: (0..n).map(mac).collect(),
        };
        let mut sync = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let reply = rt
                .block_on(client.call(RequestBody::Sync(state.clone())))
                .unwrap_or_else(|e| panic!("{e}"));
            sync.push(t.elapsed());
            assert!(matches!(reply.body, ReplyBody::Applied(_)), "{reply:?}");
        }
        let mut per_cmd: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new(), Vec::new()];
        let mut readback = Vec::new();
        let gen_sock = Socket::open().unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..RUNS {
            for (i, cmd) in [
                &["flush", "ruleset"][..],
                &["delete", "table", "inet", "ironic_discoverd"][..],
                &["flush", "ruleset"][..],
            ]
            .iter()
            .enumerate()
            {
                let listening = i == 2;
                let watch = Watch::open().unwrap_or_else(|e| panic!("{e}"));
                let before = gen_sock.generation().unwrap_or_else(|e| panic!("{e}"));
                let mut nft = Command::new("nft")
                    .args(*cmd)
                    .spawn()
                    .unwrap_or_else(|e| panic!("nft: {e}"));
                // From nft's commit the table is gone until the helper's
                // transaction commits.
                let took = if listening {
                    wait_restored(&watch).map(|(gone, back)| back - gone)
                } else {
                    wait_restored_unheard(watch, before)
                };
                let ok = nft.wait().is_ok_and(|s| s.success());
                assert!(ok, "nft {cmd:?} failed");
                let Some(took) = took else {
                    eprintln!("notifications lost at n = {n}; run skipped");
                    continue;
                };
                per_cmd[i].push(took);
                let t = Instant::now();
                loop {
                    let got = reader.read().ok().flatten().map_or(0, |s| s.macs.len());
                    if got == n as usize {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                readback.push(t.elapsed());
            }
        }
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            ms(median(sync)),
            med(&per_cmd[0]),
            med(&per_cmd[1]),
            med(&per_cmd[2]),
            med(&readback)
        );
    }
    let _ = helper.kill();
    let _ = helper.wait();
}

/// Waits for the next committed nf_tables transaction (any table).
fn next_commit(watch: &Watch) -> Option<Instant> {
    loop {
        let batch = watch.recv_notices().ok()?;
        if batch.iter().any(|(n, _)| *n == Notice::EndOfTransaction) {
            return Some(Instant::now());
        }
    }
}

fn iptables_rows(rt: &tokio::runtime::Runtime, dir: &std::path::Path) {
    let (mut helper, mut client) = start_helper(rt, dir, "iptables");
    let iface = InterfaceName::new("br-bench").unwrap_or_else(|e| panic!("{e}"));
    println!(
        "\niptables backend: restore after `iptables -F IRONIC_DISCOVERD_MACS`, periodic check every 1 s, {RUNS} runs\n"
    );
    println!("| n MACs | `iptables -F` → restored (committed), median | worst |");
    println!("|---|---|---|");
    for n in [1_000u32, 10_000] {
        let state = FilterState {
            interfaces: vec![iface.clone()],
            mode: FilterMode::Deny,
            macs: (0..n).map(mac).collect(),
        };
        let reply = rt
            .block_on(client.call(RequestBody::Sync(state)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(reply.body, ReplyBody::Applied(_)), "{reply:?}");
        let mut took = Vec::new();
        for run in 0..RUNS {
            // Each run starts right after the last restore, so just after
            // a check: stagger the flush over the interval, as a stranger
            // would land at any phase of it.
            std::thread::sleep(Duration::from_millis(1000 * run as u64 / RUNS as u64));
            let watch = Watch::open().unwrap_or_else(|e| panic!("{e}"));
            let ok = Command::new("iptables-nft")
                .args(["-F", "IRONIC_DISCOVERD_MACS"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "iptables -F failed");
            let (Some(gone), Some(back)) = (next_commit(&watch), next_commit(&watch)) else {
                eprintln!("notifications lost at n = {n}; run skipped");
                continue;
            };
            took.push(back - gone);
        }
        let worst = took.iter().max().copied();
        println!("| {n} | {} | {} |", med(&took), worst.map_or("-".into(), ms));
    }
    let _ = helper.kill();
    let _ = helper.wait();
}
