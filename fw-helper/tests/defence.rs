//! The filter defends itself, against the real kernel: what an admin's
//! `nft flush ruleset`, `nft delete table` or hand edit does to the
//! helper's table is undone at once, read back with `nft`; a restarted
//! helper starts from its state file, or closed, never open.
//!
//! Privileged: run as root. With DISCOVERD_REQUIRE_PRIVILEGED=1 a test
//! that cannot get root or a namespace fails instead of skipping.

mod support;

use std::time::{Duration, Instant};

use common::FilterMode;
use common::protocol::{ErrorCode, ReplyBody, RequestBody};
use support::*;

macro_rules! privileged {
    ($name:expr) => {
        if !privileged_available($name)? {
            return Ok(());
        }
    };
}

/// Long enough for a loaded CI machine; the speed is in the benchmark
/// (BENCHMARKS.md), the daemon's periodic resync is far longer.
const BACK_WITHIN: Duration = Duration::from_secs(3);

/// The set's elements and the rules.
type Snapshot = (Vec<String>, Vec<Vec<String>>);

/// The table as `nft` reads it.
fn snapshot(ns: &Netns) -> anyhow::Result<Option<Snapshot>> {
    if ns.nft_table()?.is_none() {
        return Ok(None);
    }
    let set = ns.nft_set_macs()?.unwrap_or_default();
    Ok(Some((set, rules(ns)?)))
}

fn restored_lines(h: &Helper) -> usize {
    h.log_text()
        .matches("the filter was changed by someone else; restored")
        .count()
}

#[tokio::test]
async fn flush_ruleset_delete_table_and_hand_edits_are_undone() -> anyhow::Result<()> {
    privileged!("defence_tampering");
    let ns = Netns::new("defend")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    let want = macs(0..1000);
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, want.clone())).await?,
        1000,
    );
    let good = snapshot(&ns)?;
    assert_eq!(
        good.as_ref().map(|g| g.0.clone()),
        Some(strings(&want)),
        "the sync itself"
    );
    let stranger = mac(0xfff0).to_string();
    let member = mac(7).to_string();
    let tampering: Vec<Vec<String>> = vec![
        vec!["flush".into(), "ruleset".into()],
        vec![
            "delete".into(),
            "table".into(),
            "inet".into(),
            "ironic_discoverd".into(),
        ],
        vec![
            "add element inet ironic_discoverd denied".into(),
            format!("{{ {stranger} }}"),
        ],
        vec![
            "delete element inet ironic_discoverd denied".into(),
            format!("{{ {member} }}"),
        ],
        vec!["flush set inet ironic_discoverd denied".into()],
        vec!["flush chain inet ironic_discoverd dhcp_filter".into()],
    ];
    for (i, cmd) in tampering.iter().enumerate() {
        let text = cmd.join(" ");
        let argv: Vec<&str> = std::iter::once("nft").chain(text.split(' ')).collect();
        let started = Instant::now();
        ns.exec(&argv)?;
        wait_for(
            &format!("the filter back after `nft {text}`"),
            BACK_WITHIN,
            || Ok((snapshot(&ns)? == good).then_some(())),
        )?;
        eprintln!(
            "`nft {text}`: back in {:?} (as seen through nft)",
            started.elapsed()
        );
        wait_for("the restore logged", BACK_WITHIN, || {
            Ok((restored_lines(&h) > i).then_some(()))
        })?;
    }
    // Someone else's table is none of our business: no restore for it.
    let before = restored_lines(&h);
    ns.exec(&["nft", "add", "table", "inet", "foreign"])?;
    ns.exec(&["nft", "delete", "table", "inet", "foreign"])?;
    // Nor is our own next change.
    expect_applied(
        &call(
            &mut c,
            RequestBody::Add {
                macs: macs(2000..2001),
            },
        )
        .await?,
        1001,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(restored_lines(&h), before, "{}", h.log_text());
    Ok(())
}

#[tokio::test]
async fn restarted_helper_puts_back_its_state_file_before_any_sync() -> anyhow::Result<()> {
    privileged!("defence_state_file");
    let ns = Netns::new("stfile")?;
    let dir = tempfile::tempdir()?;
    let conf = format!("state_file = {}", dir.path().join("state").display());
    let want = macs(0..20);
    {
        let mut h = Helper::start(&ns, &conf)?;
        let mut c = h.client().await?;
        expect_applied(
            &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..25))).await?,
            25,
        );
        expect_applied(
            &call(&mut c, RequestBody::Remove { macs: macs(20..25) }).await?,
            20,
        );
        h.proc.kill();
    }
    ns.exec(&["nft", "delete", "table", "inet", "ironic_discoverd"])?;
    assert_eq!(ns.nft_table()?, None);
    let h = Helper::start(&ns, &conf)?;
    // Before anybody connects: the last state is back, incremental
    // changes included.
    wait_for("the state file's filter", BACK_WITHIN, || {
        Ok((ns.nft_set_macs()? == Some(strings(&want))).then_some(()))
    })?;
    assert_eq!(rules(&ns)?[0].last().map(String::as_str), Some("drop"));
    // It counts as synced: an incremental change works at once.
    let mut c = h.client().await?;
    expect_applied(&call(&mut c, RequestBody::Remove { macs: macs(0..1) }).await?, 19);
    // A teardown is remembered too: the next start is closed, not this state.
    assert!(matches!(
        call(&mut c, RequestBody::Teardown).await?,
        ReplyBody::TornDown
    ));
    drop(c);
    drop(h);
    let _h = Helper::start(&ns, &conf)?;
    wait_for("the closed filter", BACK_WITHIN, || {
        Ok(ns.nft_table()?.is_some().then_some(()))
    })?;
    assert_eq!(ns.nft_set_macs()?, Some(vec![]));
    Ok(())
}

#[tokio::test]
async fn a_helper_with_no_state_starts_closed_on_every_interface() -> anyhow::Result<()> {
    privileged!("defence_closed_start");
    let ns = Netns::new("closed")?;
    let h = Helper::start(&ns, "")?;
    wait_for("the closed filter", BACK_WITHIN, || {
        Ok(ns.nft_table()?.is_some().then_some(()))
    })?;
    assert_eq!(ns.nft_set_macs()?, Some(vec![]));
    let r = rules(&ns)?;
    // Allow mode with nobody allowed: each interface's last rule drops all.
    for i in ["br0", "eth1", "veth0"] {
        let drop_all = vec![
            format!("iifname={i}"),
            "udp dport=67".into(),
            "counter".into(),
            "drop".into(),
        ];
        assert!(r.contains(&drop_all), "{i} not closed: {r:?}");
    }
    // The closed filter is not a synced state: incremental changes wait.
    let mut c = h.client().await?;
    let reply = call(&mut c, RequestBody::Add { macs: macs(0..1) }).await?;
    assert!(
        matches!(reply, ReplyBody::Error(ref e) if e.code == ErrorCode::NotSynced),
        "{reply:?}"
    );
    // And it defends itself like any other state.
    ns.exec(&["nft", "flush", "ruleset"])?;
    wait_for("the closed filter back", BACK_WITHIN, || {
        Ok((rules(&ns).is_ok_and(|now| now == r)).then_some(()))
    })?;
    Ok(())
}

/// Our lines of `iptables-save`: our two chains, their rules, the INPUT
/// jump (the counters of the chain headers left out).
fn iptables_ours(ns: &Netns) -> anyhow::Result<Vec<String>> {
    Ok(fw_helper::backend::iptables::our_lines(&iptables_save(ns)?))
}

/// Feeds `input` to `iptables-nft-restore --noflush` in `ns`: several
/// changes in one atomic transaction, so the helper's check cannot land
/// between them.
fn iptables_restore(ns: &Netns, input: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = ns
        .command("iptables-nft-restore")
        .arg("--noflush")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(input.as_bytes())?;
    anyhow::ensure!(child.wait()?.success(), "iptables-nft-restore failed on\n{input}");
    Ok(())
}

/// The iptables backend has no change notifications; its periodic check
/// (`iptables_check_interval`, 1 s by default) puts the chains back.
#[tokio::test]
async fn iptables_flushed_removed_hand_edited_and_unhooked_chains_are_restored() -> anyhow::Result<()> {
    privileged!("defence_iptables");
    // Generous: the check runs every second; a loaded CI machine is slow.
    let back_within = Duration::from_secs(15);
    let ns = Netns::new("iptdef")?;
    let h = Helper::start(&ns, "backend = iptables")?;
    let mut c = h.client().await?;
    let want = macs(0..1000);
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, want.clone())).await?,
        1000,
    );
    let good = iptables_ours(&ns)?;
    // Two chain headers, the jump, the interface rule, a rule per MAC and
    // allow mode's final drop.
    assert_eq!(good.len(), 2 + 1 + 1 + 1000 + 1, "the sync itself");
    let jump = "-p udp -m udp --dport 67 -j IRONIC_DISCOVERD";
    let member = mac(7).to_string().to_uppercase();
    let tampering: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "iptables -F IRONIC_DISCOVERD_MACS",
            vec!["iptables-nft -F IRONIC_DISCOVERD_MACS".into()],
            "of our rules missing",
        ),
        (
            "the jump deleted, both chains flushed and deleted (-X)",
            vec![
                format!("-D INPUT {jump}"),
                "-F IRONIC_DISCOVERD".into(),
                "-F IRONIC_DISCOVERD_MACS".into(),
                "-X IRONIC_DISCOVERD".into(),
                "-X IRONIC_DISCOVERD_MACS".into(),
            ],
            "chain IRONIC_DISCOVERD missing, chain IRONIC_DISCOVERD_MACS missing, the INPUT jump missing",
        ),
        (
            "a hand-added rule",
            vec!["iptables-nft -I IRONIC_DISCOVERD_MACS 1 -j ACCEPT".into()],
            "1 rules not ours (first: `-A IRONIC_DISCOVERD_MACS -j ACCEPT`)",
        ),
        (
            "a rule edited by hand",
            vec![format!(
                "iptables-nft -R IRONIC_DISCOVERD_MACS 8 -m mac --mac-source {member} -j DROP"
            )],
            "1 of our rules missing",
        ),
        (
            "the INPUT jump deleted",
            vec![format!("iptables-nft -D INPUT {jump}")],
            "the INPUT jump missing",
        ),
    ];
    for (i, (what, cmds, found)) in tampering.iter().enumerate() {
        let started = Instant::now();
        if cmds[0].starts_with("iptables-nft ") {
            let argv: Vec<&str> = cmds[0].split(' ').collect();
            ns.exec(&argv)?;
        } else {
            iptables_restore(&ns, &format!("*filter\n{}\nCOMMIT\n", cmds.join("\n")))?;
        }
        wait_for(&format!("the chains back after {what}"), back_within, || {
            Ok((iptables_ours(&ns)? == good).then_some(()))
        })?;
        eprintln!(
            "{what}: back in {:?} (as seen through iptables-save)",
            started.elapsed()
        );
        wait_for("the restore logged", back_within, || {
            Ok((restored_lines(&h) > i).then_some(()))
        })?;
        // One tampering, one restore: our own sync is not taken for one.
        assert_eq!(restored_lines(&h), i + 1, "{what}:\n{}", h.log_text());
        let log = h.log_text();
        let last = log
            .lines()
            .rfind(|l| l.contains("the filter was changed by someone else; restored"))
            .unwrap_or_default();
        assert!(last.contains(found), "{what}: expected {found:?} in\n{last}");
    }
    // Our own next change is not tampering.
    let before = restored_lines(&h);
    expect_applied(
        &call(
            &mut c,
            RequestBody::Add {
                macs: macs(2000..2001),
            },
        )
        .await?,
        1001,
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(restored_lines(&h), before, "{}", h.log_text());
    Ok(())
}

/// The helper's own whole-state transactions mute its watch (the kernel
/// would write it a notification per element); a change anybody else
/// commits in that window must still be noticed, through the nf_tables
/// generation.
#[test]
fn a_change_committed_while_the_watch_is_muted_is_noticed() -> anyhow::Result<()> {
    use fw_helper::backend::netlink::Socket;
    use fw_helper::backend::watch::{Quiet, Watch};
    use fw_helper::backend::{Applied, nft};

    if !privileged_available("quiet_window")? {
        return Ok(());
    }
    // A thread of its own: unshare moves only the calling thread (and the
    // `nft` it starts) into the new namespace.
    std::thread::spawn(|| -> anyhow::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        let watch = Watch::open()?;
        watch.serve_quiet()?;
        let begin = || Quiet::begin().ok_or_else(|| anyhow::anyhow!("the watch could not be muted"));
        let nft = |args: &[&str]| -> anyhow::Result<()> {
            let s = std::process::Command::new("nft").args(args).status()?;
            anyhow::ensure!(s.success(), "nft {args:?}: {s}");
            Ok(())
        };
        let own = || -> anyhow::Result<()> {
            let state = Applied {
                interfaces: vec![iface("veth0")],
                mode: FilterMode::Deny,
                macs: macs(0..3).into_iter().collect(),
            };
            let plan = nft::replace_batch(&state, nft::Matching::default(), 4096)?;
            Socket::open()?.transact(plan.bytes)?;
            Ok(())
        };

        assert!(begin()?.end(false), "nothing happened, yet a change was reported");
        let q = begin()?;
        own()?;
        assert!(
            q.end(true),
            "the helper's own commit was taken for someone else's"
        );
        let q = begin()?;
        nft(&["add", "table", "inet", "someone_else"])?;
        assert!(
            !q.end(false),
            "a foreign commit in the muted window went unnoticed"
        );
        let q = begin()?;
        own()?;
        nft(&["flush", "ruleset"])?;
        assert!(
            !q.end(true),
            "a foreign commit after the helper's own went unnoticed"
        );
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}
