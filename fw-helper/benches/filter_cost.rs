//! What the filter backends cost (run as root):
//! `cargo bench -p ironic-discoverd-fw-helper --bench filter_cost`.
//!
//! 1. The dnsmasq `dhcp-hostsdir` backend next to the nftables set, in
//!    process (the backends alone, no socket), at 10 000 and 100 000 MACs:
//!    the first full sync (every file created / the table replaced), a full
//!    sync in which one MAC changed (the hostsdir compares every file and
//!    writes two; nft flushes and refills the set), and a single added MAC.
//! 2. The per-packet cost of the `chaddr` match: UDP datagrams shaped like
//!    BOOTP requests sent as fast as one socket can through a veth pair
//!    into a namespace whose input hook holds our table with 100 000 MACs
//!    in the deny set, none of them matching (every rule runs), with and
//!    without the chaddr rule, and with no table at all. The sender's rate
//!    includes the receive path (veth delivers in the sender's softirq).
//!
//! `FILTER_COST_SECONDS` (default 2) sets the length of each packet run.
//! Prints Markdown tables; medians of several runs.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{FilterMode, InterfaceName, MacAddr};
use fw_helper::backend::hostsdir::Hostsdir;
use fw_helper::backend::nft::{Matching, Nftables};
use fw_helper::backend::{Applied, Backend, Change};
use ironic_discoverd_e2e::Netns;

fn mac(i: u32, salt: u8) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr::new([0x02, salt, b[0], b[1], b[2], b[3]])
}

fn applied(iface: &str, n: u32, salt: u8) -> Applied {
    Applied {
        interfaces: vec![InterfaceName::new(iface).unwrap_or_else(|e| panic!("{e}"))],
        mode: FilterMode::Deny,
        macs: (0..n).map(|i| mac(i, salt)).collect::<BTreeSet<_>>(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Runs `f` on a thread that has entered `ns`'s network namespace.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
        f()
    })
    .join()
    .unwrap_or_else(|_| panic!("netns thread panicked"))
}

fn backends(ns: &Netns) {
    println!(
        "| n MACs | hostsdir: first full sync | nft: table replace | hostsdir: full sync, 1 MAC changed | nft: set refill, 1 MAC changed | hostsdir: add 1 | nft: add 1 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, runs) in [(10_000u32, 5usize), (100_000, 3)] {
        let mut cols: [Vec<Duration>; 6] = Default::default();
        for run in 0..runs {
            let first = applied("veth0", n, 1);
            let mut one_changed = first.clone();
            one_changed.macs.remove(&mac(0, 1));
            one_changed.macs.insert(mac(n + 1, 1));
            let extra = mac(n + 2 + run as u32, 1);
            let mut plus_one = one_changed.clone();
            plus_one.macs.insert(extra);
            let delta = Change::Delta {
                added: std::slice::from_ref(&extra),
                removed: &[],
            };

            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let mut h = Hostsdir::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            let ok = |r: Result<u64, _>| {
                r.unwrap_or_else(|e: fw_helper::backend::BackendError| panic!("{e}"));
            };
            cols[0].push(timed(|| ok(h.apply(&first, Change::Full { previous: None }))));
            cols[2].push(timed(|| {
                ok(h.apply(
                    &one_changed,
                    Change::Full {
                        previous: Some(&first),
                    },
                ))
            }));
            cols[4].push(timed(|| ok(h.apply(&plus_one, delta))));
            drop(h);

            let (a, b, c) = in_netns(ns, move || {
                let mut nft = Nftables::default();
                let ok = |r: Result<u64, fw_helper::backend::BackendError>| {
                    r.unwrap_or_else(|e| panic!("{e}"));
                };
                let a = timed(|| ok(nft.apply(&first, Change::Full { previous: None })));
                let b = timed(|| {
                    ok(nft.apply(
                        &one_changed,
                        Change::Full {
                            previous: Some(&first),
                        },
                    ))
                });
                let c = timed(|| {
                    ok(nft.apply(
                        &plus_one,
                        Change::Delta {
                            added: &[extra],
                            removed: &[],
                        },
                    ))
                });
                let _ = nft.teardown();
                (a, b, c)
            });
            cols[1].push(a);
            cols[3].push(b);
            cols[5].push(c);
        }
        let m: Vec<String> = cols.into_iter().map(|c| ms(median(c))).collect();
        println!("| {n} | {} |", m.join(" | "));
    }
}

/// A BOOTP request (300 bytes) with htype 1, hlen 6 and `chaddr`.
fn bootp(chaddr: MacAddr) -> Vec<u8> {
    let mut p = vec![0u8; 300];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[28..34].copy_from_slice(&chaddr.octets());
    p
}

/// Datagrams per second one socket gets through the veth for `secs`.
fn packets_per_second(client: &Netns, secs: f64) -> f64 {
    let payload = bootp(mac(999_999, 7));
    in_netns(client, move || {
        let s = UdpSocket::bind("10.99.0.2:68").unwrap_or_else(|e| panic!("bind: {e}"));
        s.connect("10.99.0.1:67")
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let limit = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < limit {
            for _ in 0..256 {
                // A full receive queue on the other side is not our
                // concern: the hook already ran for the packet.
                if s.send(&payload).is_ok() {
                    sent += 1;
                }
            }
        }
        sent as f64 / start.elapsed().as_secs_f64()
    })
}

fn chaddr_cost(server: &Netns, client: &Netns) {
    let secs: f64 = std::env::var("FILTER_COST_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    // A receiver, so that the datagrams are delivered, not answered with
    // ICMP port unreachable.
    let path = format!("/run/netns/{}", server.name());
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
        let s = UdpSocket::bind("0.0.0.0:67").unwrap_or_else(|e| panic!("bind 67: {e}"));
        let mut buf = [0u8; 2048];
        while s.recv(&mut buf).is_ok() {}
    });
    let state = applied("veth0", 100_000, 3);
    let configs: [(&str, Option<Matching>); 4] = [
        ("no table", None),
        (
            "ether saddr only",
            Some(Matching {
                chaddr: false,
                dhcpv6: false,
            }),
        ),
        (
            "ether saddr + chaddr",
            Some(Matching {
                chaddr: true,
                dhcpv6: false,
            }),
        ),
        (
            "ether saddr + chaddr + DHCPv6 rules (default)",
            Some(Matching::default()),
        ),
    ];
    println!(
        "\nDatagrams/s to udp/67 through a veth, 100 000 MACs in the deny set, none matching ({secs} s per run, median of 3):\n"
    );
    println!("| filter on the input hook | datagrams/s | ns per datagram | vs no table |");
    println!("|---|---|---|---|");
    let mut base = None;
    for (name, matching) in configs {
        let st = state.clone();
        in_netns(server, move || {
            let mut nft = Nftables::new(matching.unwrap_or_default());
            match matching {
                Some(_) => {
                    nft.apply(&st, Change::Full { previous: None })
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                None => {
                    let _ = nft.teardown();
                }
            }
        });
        let mut rates: Vec<f64> = (0..3).map(|_| packets_per_second(client, secs)).collect();
        rates.sort_by(f64::total_cmp);
        let pps = rates[1];
        let ns = 1e9 / pps;
        let base_ns = *base.get_or_insert(ns);
        println!("| {name} | {pps:.0} | {ns:.0} | {:+.0} ns |", ns - base_ns);
    }
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the filter cost benchmark needs root (it works in private network namespaces)");
        std::process::exit(1);
    }
    let server = Netns::new("cost-s").unwrap_or_else(|e| panic!("{e}"));
    let client = Netns::new("cost-c").unwrap_or_else(|e| panic!("{e}"));
    let run = |ns: &Netns, argv: &[&str]| {
        ns.exec(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    };
    run(
        &server,
        &[
            "ip",
            "link",
            "add",
            "veth0",
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            client.name(),
        ],
    );
    run(&server, &["ip", "addr", "add", "10.99.0.1/24", "dev", "veth0"]);
    run(&server, &["ip", "link", "set", "veth0", "up"]);
    run(&client, &["ip", "addr", "add", "10.99.0.2/24", "dev", "veth1"]);
    run(&client, &["ip", "link", "set", "veth1", "up"]);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "Filter backends and the chaddr match, kernel {}, {} CPUs\n",
        kernel.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    backends(&server);
    chaddr_cost(&server, &client);
}
