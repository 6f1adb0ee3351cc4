//! The filter's plan and desired MACs: pure functions of the configured
//! mode, auto-discovery, the number of running introspections, Ironic's
//! port MACs and the MACs under introspection.

use std::collections::{BTreeSet, HashSet};

use common::{FilterMode, MacAddr};

/// The desired set and what could not be put in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredMacs {
    pub macs: Vec<MacAddr>,
    /// Addresses that are not valid unicast MACs, left out.
    pub skipped: Vec<String>,
}

fn parse_all<'a>(macs: impl IntoIterator<Item = &'a String>, skipped: &mut Vec<String>) -> BTreeSet<MacAddr> {
    let mut out = BTreeSet::new();
    for m in macs {
        match MacAddr::parse_unicast(m) {
            Ok(mac) => {
                out.insert(mac);
            }
            Err(_) => skipped.push(m.clone()),
        }
    }
    out
}

/// What the filter does, from the configured mode, auto-discovery and
/// whether any introspection is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Unknown MACs pass; MACs Ironic knows and that are not being
    /// introspected are dropped (the set holds those).
    Deny,
    /// Only MACs under introspection pass (the set holds those).
    Allow,
    /// No DHCP passes: deny mode with nothing that needs it. Sent to the
    /// helper as allow mode with an empty set.
    Closed,
}

impl Plan {
    /// The mode the helper is told.
    pub fn wire_mode(self) -> FilterMode {
        match self {
            Plan::Deny => FilterMode::Deny,
            Plan::Allow | Plan::Closed => FilterMode::Allow,
        }
    }
}

/// The filter's plan (ironic-inspector's `_should_enable_dhcp` and
/// `_should_enable_unknown_hosts`). Auto-discovery (`node_not_found_hook`
/// set) needs unknown machines to boot the ramdisk at any time, so it
/// makes any mode `Deny`. Without it, deny mode lets unknown MACs through
/// only while at least one introspection runs (a node enrolled without
/// ports boots with a MAC nobody knows yet), and drops all DHCP
/// otherwise; allow mode is unchanged.
pub fn plan(configured: FilterMode, discovery: bool, introspections: u64) -> Plan {
    match configured {
        _ if discovery => Plan::Deny,
        FilterMode::Allow => Plan::Allow,
        FilterMode::Deny if introspections > 0 => Plan::Deny,
        FilterMode::Deny => Plan::Closed,
    }
}

/// Logs at info when unknown MACs start or stop passing, and why.
pub(super) fn log_change(before: Option<Plan>, now: Plan, discovery: bool, introspections: u64) {
    if before == Some(now) {
        return;
    }
    match (before, now) {
        (_, Plan::Deny) if discovery => {
            tracing::info!("DHCP filter open for unknown MACs: discovery is on (node_not_found_hook)");
        }
        (Some(Plan::Closed), Plan::Deny) => {
            tracing::info!(
                introspections,
                "DHCP filter open for unknown MACs: an introspection started"
            );
        }
        (_, Plan::Deny) => {
            tracing::info!(
                introspections,
                "DHCP filter open for unknown MACs: introspections are running"
            );
        }
        (Some(_), Plan::Closed) => {
            tracing::info!(
                "DHCP filter closed: the last introspection ended, no DHCP passes until the next starts"
            );
        }
        (None, Plan::Closed) => {
            tracing::info!(
                "DHCP filter closed: no introspection is running, no DHCP passes until one starts"
            );
        }
        (_, Plan::Allow) => {}
    }
}

/// Pure: the MACs the filter's set must hold. Deny: every Ironic port's
/// MAC except those under introspection (discoverd 1.0, §7). Allow:
/// exactly the MACs under introspection. Closed: none.
pub fn desired_macs(plan: Plan, ironic_port_macs: &[String], active_macs: &HashSet<String>) -> DesiredMacs {
    let mut skipped = Vec::new();
    let active = parse_all(active_macs.iter(), &mut skipped);
    let macs = match plan {
        Plan::Deny => {
            let ironic = parse_all(ironic_port_macs.iter(), &mut skipped);
            ironic.difference(&active).copied().collect()
        }
        Plan::Allow => active.into_iter().collect(),
        Plan::Closed => Vec::new(),
    };
    skipped.sort();
    skipped.dedup();
    DesiredMacs { macs, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn deny_set_is_ironic_minus_active_and_skips_junk() {
        let ironic = s(&[
            "52:54:00:00:00:01",
            "52:54:00:00:00:02",
            "52:54:00:00:00:03",
            "not-a-mac",
            "01:00:5e:00:00:01",
        ]);
        let active: HashSet<String> =
            ["52:54:00:00:00:02".to_owned(), "52:54:00:00:00:03".to_uppercase()].into();
        let d = desired_macs(Plan::Deny, &ironic, &active);
        assert_eq!(d.macs, vec![MacAddr::new([0x52, 0x54, 0, 0, 0, 1])]);
        assert_eq!(d.skipped, s(&["01:00:5e:00:00:01", "not-a-mac"]));
        let a = desired_macs(Plan::Allow, &ironic, &active);
        assert_eq!(a.macs.len(), 2);
    }

    /// Whether the filter drops DHCP from `mac` with `plan` and `set`, as
    /// the helper applies the wire mode.
    fn dropped(plan: Plan, set: &DesiredMacs, mac: MacAddr) -> bool {
        match plan.wire_mode() {
            FilterMode::Deny => set.macs.contains(&mac),
            FilterMode::Allow => !set.macs.contains(&mac),
        }
    }

    const KNOWN: MacAddr = MacAddr::new([0x52, 0x54, 0, 0, 0, 1]);
    const ACTIVE: MacAddr = MacAddr::new([0x52, 0x54, 0, 0, 0, 2]);
    const UNKNOWN: MacAddr = MacAddr::new([0x52, 0x54, 0, 0, 0, 9]);

    /// (unknown dropped, introspected dropped, known idle dropped) for a
    /// configured mode, discovery and count of running introspections.
    fn outcome(configured: FilterMode, discovery: bool, running: u64) -> (bool, bool, bool) {
        let ironic = s(&["52:54:00:00:00:01", "52:54:00:00:00:02"]);
        let under: HashSet<String> = if running > 0 {
            ["52:54:00:00:00:02".to_owned()].into()
        } else {
            HashSet::new()
        };
        let p = plan(configured, discovery, running);
        let set = desired_macs(p, &ironic, &under);
        (
            dropped(p, &set, UNKNOWN),
            dropped(p, &set, ACTIVE),
            dropped(p, &set, KNOWN),
        )
    }

    #[test]
    fn discovery_lets_unknown_macs_through_in_any_mode_at_any_time() {
        for configured in [FilterMode::Allow, FilterMode::Deny] {
            assert_eq!(plan(configured, true, 0), Plan::Deny);
            assert_eq!(plan(configured, true, 3), Plan::Deny);
            // Unknown passes, introspected passes, known idle dropped.
            assert_eq!(
                outcome(configured, true, 1),
                (false, false, true),
                "{configured:?}"
            );
            // With nothing running, unknown still passes; known stays out.
            let (unknown, _, known) = outcome(configured, true, 0);
            assert!(!unknown && known, "{configured:?}");
        }
    }

    #[test]
    fn deny_mode_without_discovery_opens_only_while_an_introspection_runs() {
        assert_eq!(plan(FilterMode::Deny, false, 1), Plan::Deny);
        assert_eq!(plan(FilterMode::Deny, false, 7), Plan::Deny);
        assert_eq!(outcome(FilterMode::Deny, false, 1), (false, false, true));
        // Nothing running: closed, every MAC dropped.
        assert_eq!(plan(FilterMode::Deny, false, 0), Plan::Closed);
        assert_eq!(outcome(FilterMode::Deny, false, 0), (true, true, true));
        assert_eq!(Plan::Closed.wire_mode(), FilterMode::Allow);
        let set = desired_macs(
            Plan::Closed,
            &s(&["52:54:00:00:00:01"]),
            &["52:54:00:00:00:02".to_owned()].into(),
        );
        assert!(set.macs.is_empty());
    }

    #[test]
    fn allow_mode_without_discovery_passes_only_introspected_macs() {
        assert_eq!(plan(FilterMode::Allow, false, 0), Plan::Allow);
        assert_eq!(plan(FilterMode::Allow, false, 2), Plan::Allow);
        assert_eq!(outcome(FilterMode::Allow, false, 1), (true, false, true));
        assert_eq!(outcome(FilterMode::Allow, false, 0), (true, true, true));
    }
}
