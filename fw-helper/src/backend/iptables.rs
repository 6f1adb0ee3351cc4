//! The `iptables` backend: the same filter through one
//! `iptables-nft-restore --noflush` run per change, fed on stdin from an
//! argv (never a shell). Children inherit CAP_NET_ADMIN through the
//! ambient set (see `privileges`).
//!
//! ```text
//! INPUT -p udp --dport 67 -j IRONIC_DISCOVERD
//! IRONIC_DISCOVERD      -i IF -m comment --comment "ironic-discoverd:MODE" -j IRONIC_DISCOVERD_MACS
//! IRONIC_DISCOVERD_MACS deny:  -m mac --mac-source M -j DROP   (one rule per MAC)
//!                       allow: -m mac --mac-source M -j RETURN (one rule per MAC), then -j DROP
//! ```
//! Each MAC is its own rule, so a DHCP packet walks up to n rules; the
//! nftables backend does one hash lookup. Use this one where nftables
//! netlink is not an option.
//!
//! Defence: after each apply the backend reads its lines back (the two
//! chains and the INPUT jump, as `iptables-save` prints them); the
//! periodic check ([`super::check`]) compares the kernel's lines with them
//! and restores on any difference.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{FilterMode, FilterState, InterfaceName, MacAddr};

use super::{Applied, Backend, BackendError, Change};

mod drift;
pub use drift::{describe_drift, our_lines};

pub const TOP: &str = "IRONIC_DISCOVERD";
pub const MACS: &str = "IRONIC_DISCOVERD_MACS";
const MARK: &str = "ironic-discoverd:";

#[derive(Debug)]
pub struct Iptables {
    restore: String,
    save: String,
    /// Our lines as the kernel printed them right after our last apply;
    /// `None` before the first apply and after a teardown.
    baseline: Option<Vec<String>>,
}

impl Iptables {
    /// `restore` is e.g. `iptables-nft-restore`; the matching `-save` is
    /// used to read the state back.
    pub fn new(restore: String) -> Self {
        let save = restore.replace("-restore", "-save");
        Iptables {
            restore,
            save,
            baseline: None,
        }
    }

    fn saved(&self) -> Result<String, BackendError> {
        let out = Command::new(&self.save)
            .args(["-t", "filter"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BackendError::Command {
                program: self.save.clone(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(BackendError::Command {
                program: self.save.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn restore(&self, input: &str) -> Result<(), BackendError> {
        let err = |message: String| BackendError::Command {
            program: self.restore.clone(),
            message,
        };
        let mut child = Command::new(&self.restore)
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| err(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            return Err(err(format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// Pure: the `iptables-restore --noflush` input that makes our chains hold
/// `state`. Declaring a chain flushes it, so the chains are rebuilt whole
/// inside one COMMIT. `jump_present` says whether INPUT already jumps to us.
pub fn restore_input(state: &Applied, jump_present: bool) -> String {
    let mut s = String::with_capacity(64 * state.macs.len() + 256);
    s.push_str("*filter\n");
    s.push_str(&format!(":{TOP} - [0:0]\n:{MACS} - [0:0]\n"));
    for iface in &state.interfaces {
        s.push_str(&format!(
            "-A {TOP} -i {iface} -m comment --comment \"{MARK}{}\" -j {MACS}\n",
            state.mode
        ));
    }
    let verdict = match state.mode {
        FilterMode::Deny => "DROP",
        FilterMode::Allow => "RETURN",
    };
    for mac in &state.macs {
        s.push_str(&format!("-A {MACS} -m mac --mac-source {mac} -j {verdict}\n"));
    }
    if state.mode == FilterMode::Allow {
        s.push_str(&format!("-A {MACS} -j DROP\n"));
    }
    if !jump_present {
        s.push_str(&format!("-I INPUT 1 -p udp -m udp --dport 67 -j {TOP}\n"));
    }
    s.push_str("COMMIT\n");
    s
}

/// The INPUT rule sending DHCP to our chain, as `iptables-save` prints it.
pub(crate) fn jump_line() -> String {
    format!("-A INPUT -p udp -m udp --dport 67 -j {TOP}")
}

fn jumps(saved: &str) -> usize {
    let jump = jump_line();
    saved.lines().filter(|l| *l == jump).count()
}

fn jump_present(saved: &str) -> bool {
    jumps(saved) > 0
}

fn chain_present(saved: &str, chain: &str) -> bool {
    saved.lines().any(|l| l.starts_with(&format!(":{chain} ")))
}

/// Pure: reads our chains back from `iptables-save` output.
pub fn parse_saved(saved: &str) -> Option<FilterState> {
    if !chain_present(saved, TOP) {
        return None;
    }
    let mut interfaces = BTreeSet::new();
    let mut mode = None;
    let mut macs = BTreeSet::new();
    let value_after = |words: &[&str], flag: &str| -> Option<String> {
        let at = words.iter().position(|w| *w == flag)?;
        words.get(at + 1).map(|w| (*w).to_owned())
    };
    for line in saved.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with(&format!("-A {TOP} ")) {
            if let Some(name) = value_after(&words, "-i").and_then(|i| InterfaceName::new(&i).ok()) {
                interfaces.insert(name);
            }
            if let Some(m) = words.iter().find_map(|w| w.trim_matches('"').strip_prefix(MARK)) {
                mode = m.parse::<FilterMode>().ok();
            }
        } else if line.starts_with(&format!("-A {MACS} "))
            && let Some(mac) = value_after(&words, "--mac-source").and_then(|m| MacAddr::parse(&m).ok())
        {
            macs.insert(mac);
        }
    }
    Some(FilterState {
        interfaces: interfaces.into_iter().collect(),
        mode: mode.unwrap_or(FilterMode::Deny),
        macs: macs.into_iter().collect(),
    })
}

impl Backend for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn apply(&mut self, state: &Applied, _change: Change<'_>) -> Result<u64, BackendError> {
        let saved = self.saved()?;
        let found = jumps(&saved);
        let mut input = restore_input(state, found > 0);
        if found > 1 {
            // Someone duplicated the jump: back to exactly one.
            input.truncate(input.len() - "COMMIT\n".len());
            for _ in 1..found {
                input.push_str(&format!("-D INPUT -p udp -m udp --dport 67 -j {TOP}\n"));
            }
            input.push_str("COMMIT\n");
        }
        let start = Instant::now();
        self.baseline = None;
        self.restore(&input)?;
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // What the kernel printed for it is what the check compares with;
        // a failed read-back only costs the check its exact comparison.
        match self.saved() {
            Ok(after) => self.baseline = Some(our_lines(&after)),
            Err(e) => tracing::warn!(error = %e, "cannot read the iptables filter back after applying it"),
        }
        Ok(micros)
    }

    fn drift(&mut self, wanted: &Applied) -> Result<Option<String>, BackendError> {
        let saved = self.saved()?;
        let now = our_lines(&saved);
        let same_state = parse_saved(&saved).map(|s| Applied::from_state(&s)).as_ref() == Some(wanted);
        match &self.baseline {
            Some(applied) if *applied == now && same_state => Ok(None),
            Some(applied) => Ok(Some(describe_drift(applied, &now))),
            // Kept from the kernel at start-up (never applied here): it
            // becomes the baseline if it holds the state.
            None if same_state && jumps(&saved) == 1 => {
                self.baseline = Some(now);
                Ok(None)
            }
            None => Ok(Some(super::describe_state_drift(
                parse_saved(&saved).map(|s| Applied::from_state(&s)).as_ref(),
                wanted,
            ))),
        }
    }

    fn read(&self) -> Result<Option<FilterState>, BackendError> {
        Ok(parse_saved(&self.saved()?))
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        let saved = self.saved()?;
        let mut input = String::from("*filter\n");
        if jump_present(&saved) {
            input.push_str(&format!("-D INPUT -p udp -m udp --dport 67 -j {TOP}\n"));
        }
        for chain in [TOP, MACS] {
            if chain_present(&saved, chain) {
                input.push_str(&format!("-F {chain}\n"));
            }
        }
        for chain in [TOP, MACS] {
            if chain_present(&saved, chain) {
                input.push_str(&format!("-X {chain}\n"));
            }
        }
        input.push_str("COMMIT\n");
        self.baseline = None;
        self.restore(&input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(mode: FilterMode) -> Applied {
        Applied {
            interfaces: vec![InterfaceName::new("br0").unwrap_or_else(|e| panic!("{e}"))],
            mode,
            macs: [MacAddr::new([2, 0, 0, 0, 0, 1]), MacAddr::new([2, 0, 0, 0, 0, 2])].into(),
        }
    }

    #[test]
    fn deny_input_drops_each_mac_and_adds_the_jump_once() {
        let text = restore_input(&applied(FilterMode::Deny), false);
        assert!(text.contains("-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:01 -j DROP\n"));
        assert!(text.contains("-I INPUT 1 -p udp -m udp --dport 67 -j IRONIC_DISCOVERD\n"));
        assert!(!restore_input(&applied(FilterMode::Deny), true).contains("INPUT"));
        assert!(text.ends_with("COMMIT\n"));
    }

    #[test]
    fn allow_input_returns_listed_and_drops_the_rest() {
        let text = restore_input(&applied(FilterMode::Allow), true);
        assert!(text.contains("--mac-source 02:00:00:00:00:02 -j RETURN\n"));
        assert!(text.contains("-A IRONIC_DISCOVERD_MACS -j DROP\n"));
    }

    #[test]
    fn saved_output_parses_back_to_the_state() {
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:IRONIC_DISCOVERD - [0:0]\n:IRONIC_DISCOVERD_MACS - [0:0]\n\
-A INPUT -p udp -m udp --dport 67 -j IRONIC_DISCOVERD\n\
-A IRONIC_DISCOVERD -i br0 -m comment --comment \"ironic-discoverd:allow\" -j IRONIC_DISCOVERD_MACS\n\
-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:01 -j RETURN\n\
-A IRONIC_DISCOVERD_MACS -m mac --mac-source 02:00:00:00:00:02 -j RETURN\n\
-A IRONIC_DISCOVERD_MACS -j DROP\nCOMMIT\n";
        let st = parse_saved(saved);
        let want = applied(FilterMode::Allow);
        assert_eq!(st.as_ref().map(|s| s.mode), Some(FilterMode::Allow));
        assert_eq!(st.as_ref().map(|s| s.macs.len()), Some(2));
        assert_eq!(st.map(|s| s.interfaces), Some(want.interfaces));
        assert!(jump_present(saved));
        assert_eq!(parse_saved("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), None);
    }
}
