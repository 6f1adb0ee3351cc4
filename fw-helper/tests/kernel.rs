//! The helper against the real kernel: each test starts the real binary
//! in a fresh network namespace and reads the result back with `nft -j`
//! (or `iptables-save`), compared as data.
//!
//! Privileged: run as root. With DISCOVERD_REQUIRE_PRIVILEGED=1 a test
//! that cannot get root or a namespace fails instead of skipping.

mod support;

use common::FilterMode;
use common::protocol::{self, ErrorCode, ReplyBody, RequestBody};
use support::*;
use tokio::io::AsyncWriteExt;

macro_rules! privileged {
    ($name:expr) => {
        if !privileged_available($name)? {
            return Ok(());
        }
    };
}

/// The DHCPv6 rules of one interface: the Ethernet source; the RFC 6939
/// option first in a Relay-Forward (0x004f00080001: option 79, length 8,
/// type 1); a Relay Message first whose client message starts with a
/// Client Identifier holding a DUID-LL (0x0001000a00030001) or a DUID-LLT
/// (0x0001000e00010001).
fn dhcpv6_rules(i: &str, set: &str, verdict: &str) -> Vec<Vec<String>> {
    let rule = |parts: &[&str]| -> Vec<String> {
        [format!("iifname={i}"), "udp dport=547".into()]
            .into_iter()
            .chain(parts.iter().map(|p| (*p).to_owned()))
            .chain(["counter".to_owned(), verdict.to_owned()])
            .collect()
    };
    vec![
        rule(&[&format!("ether saddr@{set}")]),
        rule(&[
            "@th,64,8=12",
            &format!("@th,336,48={}", 0x004f_0008_0001u64),
            &format!("@th,384,48@{set}"),
        ]),
        rule(&[
            "@th,64,8=12",
            "@th,336,16=9",
            &format!("@th,400,64={}", 0x0001_000a_0003_0001u64),
            &format!("@th,464,48@{set}"),
        ]),
        rule(&[
            "@th,64,8=12",
            "@th,336,16=9",
            &format!("@th,400,64={}", 0x0001_000e_0001_0001u64),
            &format!("@th,496,48@{set}"),
        ]),
    ]
}

#[tokio::test]
async fn deny_mode_sync_reads_back_exactly_at_0_1_and_2049_macs() -> anyhow::Result<()> {
    privileged!("deny_mode_sync");
    let ns = Netns::new("deny")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    for n in [0u32, 1, 2049] {
        let want = macs(0..n);
        expect_applied(
            &call(&mut c, sync(&["veth0"], FilterMode::Deny, want.clone())).await?,
            n as usize,
        );
        assert_eq!(ns.nft_set_macs()?, Some(strings(&want)), "n = {n}");
    }
    // The Ethernet source, and the BOOTP chaddr (htype 1, hlen 6) for
    // relayed requests.
    assert_eq!(
        rules(&ns)?,
        vec![
            vec![
                "iifname=veth0".to_owned(),
                "udp dport=67".into(),
                "ether saddr@denied".into(),
                "counter".into(),
                "drop".into()
            ],
            vec![
                "iifname=veth0".to_owned(),
                "udp dport=67".into(),
                "@th,72,16=262".into(),
                "@th,288,48@denied".into(),
                "counter".into(),
                "drop".into()
            ]
        ]
        .into_iter()
        .chain(dhcpv6_rules("veth0", "denied", "drop"))
        .collect::<Vec<_>>()
    );
    // A re-sync with a different set replaces it exactly.
    let other = macs(5000..5010);
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, other.clone())).await?,
        10,
    );
    assert_eq!(ns.nft_set_macs()?, Some(strings(&other)));
    Ok(())
}

#[tokio::test]
async fn hundred_thousand_macs_read_back_exactly() -> anyhow::Result<()> {
    privileged!("hundred_thousand_macs");
    let ns = Netns::new("big")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    let want = macs(0..100_000);
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, want.clone())).await?,
        100_000,
    );
    // Status reads the same back from the kernel, at once: the kernel may
    // still be growing the set's hash table, which a naive dump gets wrong
    // (elements repeated and missed).
    match call(&mut c, RequestBody::Status).await? {
        ReplyBody::Status(s) => {
            let got = s.applied.map(|a| a.macs).unwrap_or_default();
            assert_eq!(got.len(), want.len());
            assert!(got == want, "the helper's read-back differs from what it applied");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ns.nft_set_macs()?, Some(strings(&want)));
    Ok(())
}

#[tokio::test]
async fn allow_mode_on_two_interfaces() -> anyhow::Result<()> {
    privileged!("allow_mode");
    let ns = Netns::new("allow")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    let want = macs(0..3);
    expect_applied(
        &call(&mut c, sync(&["veth0", "br0"], FilterMode::Allow, want.clone())).await?,
        3,
    );
    assert_eq!(ns.nft_set_macs()?, Some(strings(&want)));
    let r = rules(&ns)?;
    let expect = |i: &str| {
        vec![
            vec![
                format!("iifname={i}"),
                "udp dport=67".into(),
                "ether saddr@allowed".into(),
                "counter".into(),
                "accept".into(),
            ],
            vec![
                format!("iifname={i}"),
                "udp dport=67".into(),
                "@th,72,16=262".into(),
                "@th,288,48@allowed".into(),
                "counter".into(),
                "accept".into(),
            ],
            vec![
                format!("iifname={i}"),
                "udp dport=67".into(),
                "counter".into(),
                "drop".into(),
            ],
        ]
        .into_iter()
        .chain(dhcpv6_rules(i, "allowed", "accept"))
        .chain([vec![
            format!("iifname={i}"),
            "udp dport=547".into(),
            "counter".into(),
            "drop".into(),
        ]])
        .collect::<Vec<_>>()
    };
    let mut want_rules = expect("br0");
    want_rules.extend(expect("veth0"));
    assert_eq!(r, want_rules);
    Ok(())
}

#[tokio::test]
async fn incremental_add_and_remove_follow_the_mirror() -> anyhow::Result<()> {
    privileged!("incremental");
    let ns = Netns::new("incr")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    let before = call(&mut c, RequestBody::Add { macs: macs(0..1) }).await?;
    assert!(
        matches!(before, ReplyBody::Error(ref e) if e.code == ErrorCode::NotSynced),
        "{before:?}"
    );
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..10))).await?,
        10,
    );
    expect_applied(&call(&mut c, RequestBody::Add { macs: macs(8..15) }).await?, 15);
    // Removing absent MACs is not an error (the kernel would reject the batch).
    expect_applied(
        &call(
            &mut c,
            RequestBody::Remove {
                macs: macs(0..3).into_iter().chain(macs(900..905)).collect(),
            },
        )
        .await?,
        12,
    );
    assert_eq!(ns.nft_set_macs()?, Some(strings(&macs(3..15))));
    Ok(())
}

/// The size the set was created with (`nft -j`'s `size`), if any.
fn set_size(ns: &Netns) -> anyhow::Result<Option<u64>> {
    let table = ns.nft_table()?.unwrap_or_default();
    Ok(table["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("set"))
        .find_map(|s| s["size"].as_u64()))
}

#[tokio::test]
async fn a_set_outgrows_the_size_it_was_created_with() -> anyhow::Result<()> {
    privileged!("set_grows");
    let ns = Netns::new("grow")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..10))).await?,
        10,
    );
    // Created with room to grow (the kernel refuses elements beyond it).
    assert_eq!(set_size(&ns)?, Some(4096));
    expect_applied(
        &call(&mut c, RequestBody::Add { macs: macs(10..4000) }).await?,
        4000,
    );
    assert_eq!(set_size(&ns)?, Some(4096));
    // Past the size: the set is recreated, bigger, in the same call.
    expect_applied(
        &call(
            &mut c,
            RequestBody::Add {
                macs: macs(4000..5000),
            },
        )
        .await?,
        5000,
    );
    assert_eq!(set_size(&ns)?, Some(16384));
    assert_eq!(ns.nft_set_macs()?, Some(strings(&macs(0..5000))));
    // A full sync beyond it too.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..20_000))).await?,
        20_000,
    );
    assert_eq!(ns.nft_set_macs()?, Some(strings(&macs(0..20_000))));
    Ok(())
}

#[tokio::test]
async fn teardown_removes_only_our_table() -> anyhow::Result<()> {
    privileged!("teardown");
    let ns = Netns::new("tear")?;
    ns.exec(&["nft", "add", "table", "inet", "foreign"])?;
    ns.exec(&[
        "nft",
        "add",
        "chain",
        "inet",
        "foreign",
        "c",
        "{ type filter hook input priority 0; }",
    ])?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..2))).await?,
        2,
    );
    assert!(matches!(
        call(&mut c, RequestBody::Teardown).await?,
        ReplyBody::TornDown
    ));
    assert_eq!(ns.nft_table()?, None);
    let rest = ns.exec(&["nft", "list", "ruleset"])?;
    assert!(
        rest.contains("table inet foreign") && rest.contains("chain c"),
        "{rest}"
    );
    Ok(())
}

#[tokio::test]
async fn filter_survives_the_helper_and_a_new_helper_reports_it() -> anyhow::Result<()> {
    privileged!("fail_safe");
    let ns = Netns::new("safe")?;
    let want = macs(0..50);
    {
        let mut h = Helper::start(&ns, "")?;
        let mut c = h.client().await?;
        expect_applied(
            &call(&mut c, sync(&["eth1"], FilterMode::Allow, want.clone())).await?,
            50,
        );
        drop(c);
        h.proc.kill();
    }
    assert_eq!(
        ns.nft_set_macs()?,
        Some(strings(&want)),
        "filter must stay after the helper died"
    );
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    match call(&mut c, RequestBody::Status).await? {
        ReplyBody::Status(s) => {
            let applied = s
                .applied
                .ok_or_else(|| anyhow::anyhow!("status lost the applied filter"))?;
            assert_eq!(applied.mode, FilterMode::Allow);
            assert_eq!(applied.interfaces, vec![iface("eth1")]);
            assert_eq!(strings(&applied.macs), strings(&want));
        }
        other => panic!("{other:?}"),
    }
    // The mirror came from the kernel: an incremental remove works at once.
    expect_applied(&call(&mut c, RequestBody::Remove { macs: macs(0..1) }).await?, 49);
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_typed_errors_and_change_nothing() -> anyhow::Result<()> {
    privileged!("bad_requests");
    let ns = Netns::new("bad")?;
    let h = Helper::start(&ns, "")?;
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..4))).await?,
        4,
    );
    let before = ns.nft_table()?;
    let refused = call(&mut c, sync(&["wlan9"], FilterMode::Deny, macs(0..1))).await?;
    assert!(
        matches!(refused, ReplyBody::Error(ref e) if e.code == ErrorCode::InterfaceNotAllowed),
        "{refused:?}"
    );
    let multicast = call(
        &mut c,
        RequestBody::Add {
            macs: vec![common::MacAddr::new([1, 0, 0x5e, 0, 0, 1])],
        },
    )
    .await?;
    assert!(
        matches!(multicast, ReplyBody::Error(ref e) if e.code == ErrorCode::InvalidMac),
        "{multicast:?}"
    );
    // Raw frames: garbage JSON keeps the connection, an oversized header closes it.
    let mut raw = tokio::net::UnixStream::connect(&h.socket).await?;
    protocol::io::write_frame(
        &mut raw,
        &serde_json::json!({"id": 7, "op": "hello", "version": 1}),
    )
    .await?;
    let _: Option<protocol::Reply> = protocol::io::read_frame(&mut raw).await?;
    let garbage = b"{\"id\": 8, \"op\": \"sync\", \"macs\": [\"zz\"]}";
    raw.write_all(&(garbage.len() as u32).to_be_bytes()).await?;
    raw.write_all(garbage).await?;
    let reply: Option<protocol::Reply> = protocol::io::read_frame(&mut raw).await?;
    assert!(
        matches!(&reply, Some(protocol::Reply { id: 8, body: ReplyBody::Error(e) }) if e.code == ErrorCode::Malformed),
        "{reply:?}"
    );
    raw.write_all(&((protocol::MAX_FRAME_LEN + 1) as u32).to_be_bytes())
        .await?;
    let reply: Option<protocol::Reply> = protocol::io::read_frame(&mut raw).await?;
    assert!(
        matches!(&reply, Some(protocol::Reply { body: ReplyBody::Error(e), .. }) if e.code == ErrorCode::FrameTooLarge),
        "{reply:?}"
    );
    assert!(
        protocol::io::read_frame::<protocol::Reply, _>(&mut raw)
            .await?
            .is_none(),
        "connection should close"
    );
    // Before hello: refused.
    let mut fresh = tokio::net::UnixStream::connect(&h.socket).await?;
    protocol::io::write_frame(
        &mut fresh,
        &protocol::Request {
            id: 1,
            body: RequestBody::Teardown,
        },
    )
    .await?;
    let reply: Option<protocol::Reply> = protocol::io::read_frame(&mut fresh).await?;
    assert!(
        matches!(&reply, Some(protocol::Reply { body: ReplyBody::Error(e), .. }) if e.code == ErrorCode::HelloRequired)
    );
    assert_eq!(
        ns.nft_table()?,
        before,
        "a refused request must not change the kernel"
    );
    Ok(())
}

#[tokio::test]
async fn drops_to_nobody_with_only_net_admin_and_refuses_other_uids() -> anyhow::Result<()> {
    privileged!("privileges");
    let ns = Netns::new("priv")?;
    // 0666 so that the other uid reaches the peer check, not a permission error.
    let h = Helper::start(&ns, "socket_mode = 0666")?;
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..2))).await?,
        2,
    );
    let pid = h.pid();
    assert_eq!(
        proc_status_field(pid, "Uid")?
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["65534"; 4]
    );
    for (field, want) in [
        ("CapPrm", "0000000000001000"),
        ("CapEff", "0000000000001000"),
        ("CapBnd", "0000000000001000"),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
    ] {
        assert_eq!(proc_status_field(pid, field)?, want, "{field}");
    }
    let before = ns.nft_table()?;
    let out = setpriv_ctl(4321, &h.socket)?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the refusal in the log",
        std::time::Duration::from_secs(5),
        || {
            Ok(h.log_text()
                .contains("refused connection: peer uid 4321")
                .then_some(()))
        },
    )?;
    assert_eq!(ns.nft_table()?, before);
    Ok(())
}

#[tokio::test]
async fn iptables_backend_reads_back_with_iptables_save() -> anyhow::Result<()> {
    privileged!("iptables_backend");
    let ns = Netns::new("ipt")?;
    let h = Helper::start(&ns, "backend = iptables")?;
    let mut c = h.client().await?;
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Deny, macs(0..3))).await?,
        3,
    );
    let saved = iptables_save(&ns)?;
    assert!(
        saved.contains("-A INPUT -p udp -m udp --dport 67 -j IRONIC_DISCOVERD"),
        "{saved}"
    );
    for m in macs(0..3) {
        let line = format!(
            "-A IRONIC_DISCOVERD_MACS -m mac --mac-source {} -j DROP",
            m.to_string().to_uppercase()
        );
        assert!(saved.contains(&line), "missing {line} in\n{saved}");
    }
    // Allow mode, second apply: the INPUT jump is not duplicated.
    expect_applied(
        &call(&mut c, sync(&["veth0"], FilterMode::Allow, macs(0..1))).await?,
        1,
    );
    let saved = iptables_save(&ns)?;
    assert_eq!(saved.matches("-j IRONIC_DISCOVERD\n").count(), 1, "{saved}");
    assert!(saved.contains("-A IRONIC_DISCOVERD_MACS -j DROP"), "{saved}");
    match call(&mut c, RequestBody::Status).await? {
        ReplyBody::Status(s) => {
            let a = s.applied.ok_or_else(|| anyhow::anyhow!("no state"))?;
            assert_eq!(
                (a.mode, strings(&a.macs)),
                (FilterMode::Allow, strings(&macs(0..1)))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(&mut c, RequestBody::Teardown).await?,
        ReplyBody::TornDown
    ));
    let saved = iptables_save(&ns)?;
    assert!(!saved.contains("IRONIC_DISCOVERD"), "{saved}");
    Ok(())
}
