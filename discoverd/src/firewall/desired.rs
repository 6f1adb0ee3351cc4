//! The filter's desired MACs: a pure function of Ironic's port MACs, the
//! MACs under introspection and the mode.

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

/// The mode the filter runs in. Auto-discovery (`node_not_found_hook`
/// set) needs unknown machines to boot the ramdisk, so `allow` becomes
/// `deny` then: unknown MACs pass, MACs Ironic knows and that are not
/// being introspected stay out (ironic-inspector's
/// `_should_enable_unknown_hosts`: unknown hosts are let through while the
/// hook is set).
pub fn effective_mode(configured: FilterMode, discovery: bool) -> FilterMode {
    if discovery { FilterMode::Deny } else { configured }
}

/// Pure: the MACs the filter's set must hold. Deny mode: every Ironic
/// port's MAC except those under introspection (discoverd 1.0, §7).
/// Allow mode: exactly the MACs under introspection.
pub fn desired_macs(
    mode: FilterMode,
    ironic_port_macs: &[String],
    active_macs: &HashSet<String>,
) -> DesiredMacs {
    let mut skipped = Vec::new();
    let active = parse_all(active_macs.iter(), &mut skipped);
    let macs = match mode {
        FilterMode::Deny => {
            let ironic = parse_all(ironic_port_macs.iter(), &mut skipped);
            ironic.difference(&active).copied().collect()
        }
        FilterMode::Allow => active.into_iter().collect(),
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
        let d = desired_macs(FilterMode::Deny, &ironic, &active);
        assert_eq!(d.macs, vec![MacAddr::new([0x52, 0x54, 0, 0, 0, 1])]);
        assert_eq!(d.skipped, s(&["01:00:5e:00:00:01", "not-a-mac"]));
        let a = desired_macs(FilterMode::Allow, &ironic, &active);
        assert_eq!(a.macs.len(), 2);
    }

    /// Whether the filter drops DHCP from `mac` in `mode` with `set`.
    fn dropped(mode: FilterMode, set: &DesiredMacs, mac: MacAddr) -> bool {
        match mode {
            FilterMode::Deny => set.macs.contains(&mac),
            FilterMode::Allow => !set.macs.contains(&mac),
        }
    }

    #[test]
    fn discovery_lets_unknown_macs_through_in_allow_mode_too() {
        let known = MacAddr::new([0x52, 0x54, 0, 0, 0, 1]);
        let active = MacAddr::new([0x52, 0x54, 0, 0, 0, 2]);
        let unknown = MacAddr::new([0x52, 0x54, 0, 0, 0, 9]);
        let ironic = s(&["52:54:00:00:00:01", "52:54:00:00:00:02"]);
        let under: HashSet<String> = ["52:54:00:00:00:02".to_owned()].into();
        for configured in [FilterMode::Allow, FilterMode::Deny] {
            let mode = effective_mode(configured, true);
            let set = desired_macs(mode, &ironic, &under);
            assert!(!dropped(mode, &set, unknown), "{configured:?}: unknown MACs pass");
            assert!(
                !dropped(mode, &set, active),
                "{configured:?}: introspected MACs pass"
            );
            assert!(
                dropped(mode, &set, known),
                "{configured:?}: known idle MACs stay out"
            );
        }
        // Without discovery, allow mode keeps unknown MACs out.
        let mode = effective_mode(FilterMode::Allow, false);
        let set = desired_macs(mode, &ironic, &under);
        assert!(dropped(mode, &set, unknown));
        assert!(!dropped(mode, &set, active));
        assert_eq!(effective_mode(FilterMode::Deny, false), FilterMode::Deny);
    }
}
