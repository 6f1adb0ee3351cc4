//! Firewall sync benchmark (run as root): `cargo bench -p ironic-discoverd-fw-helper --bench sync`.
//!
//! Inside a private network namespace of its own, for 1 k / 10 k / 100 k
//! MACs, side by side in one run:
//! - the bare rustables batch (this crate's nftables backend, in-process),
//! - the same state through the helper (client → socket → helper → kernel),
//! - `nft -f` loading the same ruleset,
//! - `iptables-nft-restore` (one rule per MAC),
//! - discoverd 1.0's `update_filters`: one `iptables` process per command
//!   and per MAC (spec §7), at 1 k and 10 k only (10 k takes ~20 s);
//!
//! single-MAC add and remove through the helper with 10 k present, and the
//! helper's memory (idle, and its peak after the 100 k syncs).
//! Prints a Markdown table; medians of several runs.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::protocol::{ReplyBody, RequestBody};
use common::{FilterMode, FilterState, InterfaceName, MacAddr};
use fw_helper::backend::nft::Nftables;
use fw_helper::backend::{Applied, Backend, Change};
use ironic_discoverd_e2e::proc_status_field;

/// `VmRSS` or `VmHWM` of `pid` as /proc prints it (`3412 kB`), `?` if gone.
fn memory(pid: u32, field: &str) -> String {
    proc_status_field(pid, field).unwrap_or_else(|_| "?".into())
}

const RUNS: usize = 7;

fn mac(i: u32, salt: u8) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr::new([0x02, salt, b[0], b[1], b[2], b[3]])
}

fn iface() -> InterfaceName {
    InterfaceName::new("br-bench").unwrap_or_else(|e| panic!("{e}"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn applied(n: u32, salt: u8) -> Applied {
    Applied {
        interfaces: vec![iface()],
        mode: FilterMode::Deny,
        macs: (0..n).map(|i| mac(i, salt)).collect::<BTreeSet<_>>(),
    }
}

fn nft_text(n: u32, salt: u8) -> String {
    let mut s = String::from("add table inet ironic_discoverd\ndelete table inet ironic_discoverd\n");
    s.push_str("table inet ironic_discoverd {\n set denied {\n  type ether_addr\n");
    if n > 0 {
        s.push_str("  elements = { ");
        let macs: Vec<String> = (0..n).map(|i| mac(i, salt).to_string()).collect();
        s.push_str(&macs.join(", "));
        s.push_str(" }\n");
    }
    s.push_str(" }\n chain dhcp_filter {\n  type filter hook input priority filter; policy accept;\n");
    s.push_str("  iifname \"br-bench\" udp dport 67 ether saddr @denied counter drop\n }\n}\n");
    s
}

fn feed(program: &str, args: &[&str], input: &str) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {program}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("{program}: {e}"));
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} failed");
    start.elapsed()
}

fn iptables_text(n: u32, salt: u8) -> String {
    let state = applied(n, salt);
    fw_helper::backend::iptables::restore_input(&state, true)
}

/// Runs `iptables ARGS`; `ignore` steps may fail, as in 1.0.
fn iptables(args: &[&str], ignore: bool) {
    let ok = Command::new("iptables")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok || ignore, "iptables {args:?} failed");
}

/// discoverd 1.0's `_clean_up(chain)`: every step may fail.
fn clean_up_chain(chain: &str, iface: &str) {
    iptables(
        &[
            "-D", "INPUT", "-i", iface, "-p", "udp", "--dport", "67", "-j", chain,
        ],
        true,
    );
    iptables(&["-F", chain], true);
    iptables(&["-X", chain], true);
}

/// discoverd 1.0's `update_filters` for `n` blacklisted MACs (spec §7):
/// a temporary chain built one `iptables -A` per MAC, then swapped in.
fn discoverd_way(n: u32, salt: u8) -> Duration {
    let iface = "br-bench";
    let macs: Vec<String> = (0..n).map(|i| mac(i, salt).to_string()).collect();
    let start = Instant::now();
    clean_up_chain("discovery_temp", iface);
    iptables(&["-N", "discovery_temp"], false);
    for m in &macs {
        iptables(
            &[
                "-A",
                "discovery_temp",
                "-m",
                "mac",
                "--mac-source",
                m,
                "-j",
                "DROP",
            ],
            false,
        );
    }
    iptables(&["-A", "discovery_temp", "-j", "ACCEPT"], false);
    iptables(
        &[
            "-I",
            "INPUT",
            "-i",
            iface,
            "-p",
            "udp",
            "--dport",
            "67",
            "-j",
            "discovery_temp",
        ],
        false,
    );
    clean_up_chain("discovery", iface);
    iptables(&["-E", "discovery_temp", "discovery"], false);
    let took = start.elapsed();
    clean_up_chain("discovery", iface);
    took
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the firewall benchmark needs root (it works in a private network namespace)");
        std::process::exit(1);
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("unshare: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("fw.sock");
    // The helper gets a network namespace of its own: it defends its table
    // (issue 17), so the bare batches and `nft -f` below, run in this one,
    // would otherwise be undone by it while they are measured.
    let mut helper = Command::new("unshare")
        .arg("--net")
        .arg(env!("CARGO_BIN_EXE_ironic-discoverd-fw-helper"))
        .args([
            "--allowed-uid",
            "0",
            "--user",
            "nobody",
            "--interfaces",
            "br-bench",
            "--socket",
        ])
        .arg(&socket)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap_or_else(|e| panic!("helper: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let helper_idle = memory(helper.id(), "VmRSS");
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "Firewall sync, median of {RUNS} runs, kernel {kernel}, {} CPUs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| n MACs | bare rustables batch (replace table) | bare batch (flush + refill set) | through the helper (client → socket → kernel) | helper ÷ bare refill | `nft -f` (replace table) | `iptables-nft-restore` |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut backend = Nftables::default();
    let (mut client, _) = rt
        .block_on(fw_helper::ctl::Client::connect(&socket))
        .unwrap_or_else(|e| panic!("connect: {e}"));
    for n in [1_000u32, 10_000, 100_000] {
        let mut replace = Vec::new();
        let mut refill = Vec::new();
        let mut through = Vec::new();
        let mut nft = Vec::new();
        let mut ipt = Vec::new();
        for run in 0..RUNS {
            let salt = (run % 2) as u8 + 1;
            // bare: whole-table replace, then a set refill of the other salt
            let a = applied(n, salt);
            let t = Instant::now();
            backend
                .apply(&a, Change::Full { previous: None })
                .unwrap_or_else(|e| panic!("{e}"));
            replace.push(t.elapsed());
            let b = applied(n, salt + 2);
            let t = Instant::now();
            backend
                .apply(&b, Change::Full { previous: Some(&a) })
                .unwrap_or_else(|e| panic!("{e}"));
            refill.push(t.elapsed());
            // through the helper: a full sync with a different set
            let state = FilterState {
                interfaces: vec![iface()],
                mode: FilterMode::Deny,
                macs: (0..n).map(|i| mac(i, salt + 4)).collect(),
            };
            let t = Instant::now();
            let reply = rt
                .block_on(client.call(RequestBody::Sync(state)))
                .unwrap_or_else(|e| panic!("{e}"));
            through.push(t.elapsed());
            assert!(
                matches!(reply.body, ReplyBody::Applied(ref s) if s.mac_count == n as usize),
                "{reply:?}"
            );
            // nft -f of the same ruleset
            nft.push(feed("nft", &["-f", "-"], &nft_text(n, salt)));
            // iptables-nft-restore, one rule per MAC
            ipt.push(feed(
                "iptables-nft-restore",
                &["--noflush"],
                &iptables_text(n, salt),
            ));
        }
        let (rb, fb, th) = (median(replace), median(refill), median(through));
        println!(
            "| {n} | {} | {} | {} | {:.2}× | {} | {} |",
            ms(rb),
            ms(fb),
            ms(th),
            th.as_secs_f64() / fb.as_secs_f64(),
            ms(median(nft)),
            ms(median(ipt))
        );
    }
    // Single-MAC changes with 10 k present.
    let base = FilterState {
        interfaces: vec![iface()],
        mode: FilterMode::Deny,
        macs: (0..10_000).map(|i| mac(i, 9)).collect(),
    };
    rt.block_on(client.call(RequestBody::Sync(base)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut add = Vec::new();
    let mut del = Vec::new();
    for i in 0..RUNS as u32 {
        let m = mac(100_000 + i, 9);
        let t = Instant::now();
        rt.block_on(client.call(RequestBody::Add { macs: vec![m] }))
            .unwrap_or_else(|e| panic!("{e}"));
        add.push(t.elapsed());
        let t = Instant::now();
        rt.block_on(client.call(RequestBody::Remove { macs: vec![m] }))
            .unwrap_or_else(|e| panic!("{e}"));
        del.push(t.elapsed());
    }
    println!(
        "\nSingle MAC through the helper, 10 000 present: add {}, remove {}",
        ms(median(add)),
        ms(median(del))
    );
    println!(
        "\nHelper memory: RSS idle {helper_idle}, peak (VmHWM) after the 100 000-MAC syncs {}",
        memory(helper.id(), "VmHWM")
    );

    // discoverd 1.0's way against the helper's full sync of the same size.
    println!("\n| n MACs | discoverd 1.0 (`iptables` per MAC) | through the helper | ratio |");
    println!("|---|---|---|---|");
    for (n, runs) in [(1_000u32, 3usize), (10_000, 1)] {
        let old: Vec<Duration> = (0..runs).map(|r| discoverd_way(n, r as u8 + 1)).collect();
        let new: Vec<Duration> = (0..RUNS)
            .map(|r| {
                let state = FilterState {
                    interfaces: vec![iface()],
                    mode: FilterMode::Deny,
                    macs: (0..n).map(|i| mac(i, (r % 2) as u8 + 5)).collect(),
                };
                let t = Instant::now();
                rt.block_on(client.call(RequestBody::Sync(state)))
                    .unwrap_or_else(|e| panic!("{e}"));
                t.elapsed()
            })
            .collect();
        let (old, new) = (median(old), median(new));
        println!(
            "| {n} | {} | {} | {:.0}× |",
            ms(old),
            ms(new),
            old.as_secs_f64() / new.as_secs_f64()
        );
    }
    let _ = helper.kill();
    let _ = helper.wait();
}
