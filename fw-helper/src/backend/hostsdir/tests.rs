use std::collections::BTreeSet;

use super::*;

fn mac(i: u8) -> MacAddr {
    MacAddr::new([2, 0, 0, 0, 0, i])
}

fn applied(mode: FilterMode, macs: &[u8]) -> Applied {
    Applied {
        interfaces: vec![InterfaceName::new("br0").unwrap_or_else(|e| panic!("{e}"))],
        mode,
        macs: macs.iter().map(|i| mac(*i)).collect::<BTreeSet<_>>(),
    }
}

fn read_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn both_contents_of_a_file_have_one_length_and_parse_back() {
    for host in ["02:00:00:00:00:01", WILDCARD] {
        let serve = content(host, Verdict::Serve);
        let ignore = content(host, Verdict::Ignore);
        assert_eq!(serve.len(), ignore.len());
        assert_eq!(ignore, format!("{host},ignore\n"));
        assert_eq!(parse(host, &serve), Ok(Some(Verdict::Serve)));
        assert_eq!(parse(host, &ignore), Ok(Some(Verdict::Ignore)));
    }
    assert_eq!(parse("02:00:00:00:00:01", ""), Ok(None));
    for foreign in [
        "02:00:00:00:00:01\n",
        "02:00:00:00:00:02,ignore\n",
        "02:00:00:00:00:01,192.0.2.5\n",
        "02:00:00:00:00:01,ignore",
    ] {
        assert!(parse("02:00:00:00:00:01", foreign).is_err(), "{foreign:?}");
    }
}

#[test]
fn plan_writes_denials_first_and_only_what_changes() {
    let mut files = Files::new();
    // From nothing, deny mode: the wildcard serves, listed MACs are ignored.
    let p = plan(&files, &applied(FilterMode::Deny, &[2, 1]), None);
    assert_eq!(
        p,
        vec![
            (Host::Mac(mac(1)), Verdict::Ignore),
            (Host::Mac(mac(2)), Verdict::Ignore),
            (Host::Wildcard, Verdict::Serve),
        ]
    );
    files.extend(p.into_iter().map(|(h, v)| (h, Some(v))));
    // The same state again writes nothing.
    assert!(plan(&files, &applied(FilterMode::Deny, &[1, 2]), None).is_empty());
    // A MAC leaving the deny set is not deleted but served.
    assert_eq!(
        plan(&files, &applied(FilterMode::Deny, &[1]), None),
        vec![(Host::Mac(mac(2)), Verdict::Serve)]
    );
    // Deny -> allow listing 2: the wildcard and 1 are ignored before 2 is served.
    assert_eq!(
        plan(&files, &applied(FilterMode::Allow, &[2]), None),
        vec![
            (Host::Wildcard, Verdict::Ignore),
            (Host::Mac(mac(2)), Verdict::Serve),
        ]
    );
    // Incremental: only the named MACs are looked at.
    assert_eq!(
        plan(&files, &applied(FilterMode::Deny, &[1, 2, 3]), Some(&[mac(3)])),
        vec![(Host::Mac(mac(3)), Verdict::Ignore)]
    );
    // An empty (torn) file is rewritten.
    files.insert(Host::Mac(mac(1)), None);
    assert_eq!(
        plan(&files, &applied(FilterMode::Deny, &[1, 2]), None),
        vec![(Host::Mac(mac(1)), Verdict::Ignore)]
    );
}

#[test]
fn apply_read_and_teardown_never_delete_or_shrink_a_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut b = Hostsdir::open(dir.path())?;
    assert_eq!(b.read()?, None);
    let deny = applied(FilterMode::Deny, &[1, 2]);
    // The shipped unit's umask: dnsmasq must still be able to read.
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let applied_now = b.apply(&deny, Change::Full { previous: None });
    nix::sys::stat::umask(umask);
    applied_now?;
    for name in ["02:00:00:00:00:01", WILDCARD_FILE] {
        let mode = std::fs::metadata(dir.path().join(name))?.permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o644,
            "{name}"
        );
    }
    assert_eq!(
        read_file(dir.path(), "02:00:00:00:00:01"),
        "02:00:00:00:00:01,ignore\n"
    );
    assert_eq!(
        read_file(dir.path(), WILDCARD_FILE),
        format!("{WILDCARD}       \n")
    );
    assert_eq!(b.read()?, Some(deny.to_state()));
    // Allow mode listing 3 only: 1 and 2 stay on disk, ignored; 3 is served.
    let allow = applied(FilterMode::Allow, &[3]);
    b.apply(&allow, Change::Full { previous: None })?;
    assert_eq!(
        read_file(dir.path(), "02:00:00:00:00:02"),
        "02:00:00:00:00:02,ignore\n"
    );
    assert_eq!(
        read_file(dir.path(), "02:00:00:00:00:03"),
        "02:00:00:00:00:03       \n"
    );
    assert_eq!(
        read_file(dir.path(), WILDCARD_FILE),
        format!("{WILDCARD},ignore\n")
    );
    assert_eq!(b.read()?, Some(allow.to_state()));
    // Incremental remove of 3: ignored again, in the same file.
    let none = applied(FilterMode::Allow, &[]);
    b.apply(
        &none,
        Change::Delta {
            added: &[],
            removed: &[mac(3)],
        },
    )?;
    assert_eq!(
        read_file(dir.path(), "02:00:00:00:00:03"),
        "02:00:00:00:00:03,ignore\n"
    );
    // Teardown: every file serves, none is gone, no filter is recorded.
    b.teardown()?;
    for i in 1..=3 {
        let name = mac(i).to_string();
        assert_eq!(read_file(dir.path(), &name), content(&name, Verdict::Serve));
    }
    assert_eq!(b.read()?, None);
    // A reopened directory (a restarted helper) reads back what it holds.
    b.apply(&deny, Change::Full { previous: None })?;
    drop(b);
    let b = Hostsdir::open(dir.path())?;
    assert_eq!(b.read()?, Some(deny.to_state()));
    Ok(())
}

#[test]
fn bad_directories_are_refused_with_the_reason() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let msg = |p: &Path| match Hostsdir::open(p) {
        Ok(_) => panic!("{} was accepted", p.display()),
        Err(e) => e.to_string(),
    };
    assert!(msg(&dir.path().join("missing")).contains("does not exist"));
    std::fs::write(dir.path().join("file"), "")?;
    assert!(msg(&dir.path().join("file")).contains("is not a directory"));

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared)?;
    std::fs::write(shared.join("other-hosts"), "02:00:00:00:00:09,192.0.2.9\n")?;
    let m = msg(&shared);
    assert!(m.contains("did not write") && m.contains("other-hosts"), "{m}");

    let hand_edited = dir.path().join("edited");
    std::fs::create_dir(&hand_edited)?;
    std::fs::write(hand_edited.join("02:00:00:00:00:01"), "02:00:00:00:00:01,set:x\n")?;
    assert!(msg(&hand_edited).contains("02:00:00:00:00:01 (unexpected content"));

    // A symlink named like a MAC is not followed, it is refused.
    let linked = dir.path().join("linked");
    std::fs::create_dir(&linked)?;
    std::os::unix::fs::symlink("/etc/passwd", linked.join("02:00:00:00:00:01"))?;
    assert!(msg(&linked).contains("did not write"));

    // One helper per directory.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine)?;
    let first = Hostsdir::open(&mine)?;
    assert!(msg(&mine).contains("in use by another helper"));
    drop(first);
    Hostsdir::open(&mine)?;

    if !nix::unistd::Uid::effective().is_root() {
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro)?;
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555))?;
        assert!(msg(&ro).contains("is not writable"));
    }
    Ok(())
}
