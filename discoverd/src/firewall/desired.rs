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
}
