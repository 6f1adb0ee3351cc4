//! What the iptables backend compares in its periodic check: our lines of
//! `iptables-save` output, and one log line saying how they differ from
//! the ones printed right after our last apply.

use super::{MACS, TOP, jump_line};

/// Pure: the lines of `iptables-save` output that are ours, in order: the
/// declarations and rules of our two chains and our INPUT jump. Anything
/// else (other chains, other references to ours) is not our business.
pub fn our_lines(saved: &str) -> Vec<String> {
    let jump = jump_line();
    let own = [TOP, MACS].map(|c| (format!(":{c} "), format!("-A {c} ")));
    saved
        .lines()
        .filter(|l| {
            *l == jump
                || own
                    .iter()
                    .any(|(decl, rule)| l.starts_with(decl) || l.starts_with(rule))
        })
        .map(|l| match l.strip_prefix(':') {
            // A user chain's counters are not state: keep the name only.
            Some(decl) => format!(":{}", decl.split_whitespace().next().unwrap_or_default()),
            None => l.to_owned(),
        })
        .collect()
}

/// Pure: one line saying how `now` differs from `applied` (both from
/// [`our_lines`]), for the restore log.
pub fn describe_drift(applied: &[String], now: &[String]) -> String {
    let mut found = Vec::new();
    for chain in [TOP, MACS] {
        let decl = format!(":{chain}");
        if applied.contains(&decl) && !now.contains(&decl) {
            found.push(format!("chain {chain} missing"));
        }
    }
    let jump = jump_line();
    let count = |v: &[String]| v.iter().filter(|l| **l == jump).count();
    match (count(applied), count(now)) {
        (a, n) if n < a => found.push("the INPUT jump missing".to_owned()),
        (a, n) if n > a => found.push(format!("{} extra INPUT jumps", n - a)),
        _ => {}
    }
    let rule = |l: &&String| l.starts_with("-A ") && **l != jump;
    let missing: Vec<&String> = applied.iter().filter(rule).filter(|l| !now.contains(l)).collect();
    let foreign: Vec<&String> = now.iter().filter(rule).filter(|l| !applied.contains(l)).collect();
    if let Some(first) = missing.first() {
        found.push(format!(
            "{} of our rules missing (first: `{first}`)",
            missing.len()
        ));
    }
    if let Some(first) = foreign.first() {
        found.push(format!("{} rules not ours (first: `{first}`)", foreign.len()));
    }
    if found.is_empty() {
        found.push("our rules reordered or duplicated".to_owned());
    }
    found.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = "*filter\n:INPUT ACCEPT [12:345]\n:IRONIC_DISCOVERD - [0:0]\n:IRONIC_DISCOVERD_MACS - [0:0]\n:OTHER - [0:0]\n\
-A INPUT -p tcp -j ACCEPT\n\
-A INPUT -p udp -m udp --dport 67 -j IRONIC_DISCOVERD\n\
-A IRONIC_DISCOVERD -i br0 -m comment --comment \"ironic-discoverd:deny\" -j IRONIC_DISCOVERD_MACS\n\
-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:01 -j DROP\n\
-A OTHER -j IRONIC_DISCOVERD\nCOMMIT\n";

    #[test]
    fn our_lines_are_our_chains_and_jump_only() {
        assert_eq!(
            our_lines(SAVED),
            vec![
                ":IRONIC_DISCOVERD",
                ":IRONIC_DISCOVERD_MACS",
                "-A INPUT -p udp -m udp --dport 67 -j IRONIC_DISCOVERD",
                "-A IRONIC_DISCOVERD -i br0 -m comment --comment \"ironic-discoverd:deny\" -j IRONIC_DISCOVERD_MACS",
                "-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:01 -j DROP",
            ]
        );
        // Counters and foreign chains do not count.
        let busier = SAVED
            .replace("[12:345]", "[99:9999]")
            .replace("-A OTHER -j IRONIC_DISCOVERD\n", "");
        assert_eq!(our_lines(&busier), our_lines(SAVED));
    }

    #[test]
    fn drift_is_described_in_one_line() {
        let applied = our_lines(SAVED);
        let flushed = our_lines(&SAVED.replace(
            "-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:01 -j DROP\n",
            "",
        ));
        assert_eq!(
            describe_drift(&applied, &flushed),
            "1 of our rules missing (first: `-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:01 -j DROP`)"
        );
        let no_jump =
            our_lines(&SAVED.replace("-A INPUT -p udp -m udp --dport 67 -j IRONIC_DISCOVERD\n", ""));
        assert_eq!(describe_drift(&applied, &no_jump), "the INPUT jump missing");
        let mut added = applied.clone();
        added.push("-A IRONIC_DISCOVERD_MACS -j ACCEPT".into());
        assert_eq!(
            describe_drift(&applied, &added),
            "1 rules not ours (first: `-A IRONIC_DISCOVERD_MACS -j ACCEPT`)"
        );
        let gone = describe_drift(&applied, &[]);
        assert!(gone.starts_with("chain IRONIC_DISCOVERD missing, chain IRONIC_DISCOVERD_MACS missing, the INPUT jump missing, 2 of our rules missing"), "{gone}");
        let mut reordered = applied.clone();
        reordered.swap(3, 4);
        assert_eq!(
            describe_drift(&applied, &reordered),
            "our rules reordered or duplicated"
        );
    }
}
