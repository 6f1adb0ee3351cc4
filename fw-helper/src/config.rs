//! The helper's configuration: the `[fw_helper]` section of the shared
//! `discoverd.conf`, with command-line flags taking precedence.

use std::path::{Path, PathBuf};

use common::InterfaceName;
use common::ini::{ConfigError, IniFile, Section};
use nix::unistd::{Gid, Group, Uid, User};

use crate::backend::BackendKind;

/// The section the helper reads.
pub const SECTION: &str = "fw_helper";
pub const DEFAULT_SOCKET: &str = "/run/ironic-discoverd/fw-helper.sock";
/// Seconds between two checks of the iptables filter against the kernel.
pub const DEFAULT_IPTABLES_CHECK: f64 = 1.0;

/// Settings as given, before names are resolved; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub socket_path: Option<PathBuf>,
    pub backend: Option<String>,
    pub allowed_uid: Option<String>,
    pub allowed_gid: Option<String>,
    pub user: Option<String>,
    pub interfaces: Option<String>,
    pub teardown_on_stop: Option<bool>,
    pub debug: Option<bool>,
}

/// The helper's resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperConfig {
    pub socket_path: PathBuf,
    pub socket_mode: u32,
    pub socket_group: Option<Gid>,
    pub backend: BackendKind,
    /// Only this uid may connect (checked with SO_PEERCRED).
    pub allowed_uid: Uid,
    /// When set, the peer's gid must match too.
    pub allowed_gid: Option<Gid>,
    /// Dropped to when started as root.
    pub user: String,
    /// Interfaces the daemon may ask to filter.
    pub interfaces: Vec<InterfaceName>,
    pub teardown_on_stop: bool,
    /// Where the last state from the daemon is kept across restarts.
    pub state_file: Option<PathBuf>,
    pub allow_extra_capabilities: bool,
    pub debug: bool,
    pub json_logs: bool,
}

/// Resolves a user name or number.
pub fn resolve_uid(v: &str) -> Result<Uid, String> {
    if let Ok(n) = v.parse::<u32>() {
        return Ok(Uid::from_raw(n));
    }
    match User::from_name(v) {
        Ok(Some(u)) => Ok(u.uid),
        Ok(None) => Err(format!("no such user {v:?}")),
        Err(e) => Err(format!("failed to look up user {v:?}: {e}")),
    }
}

/// Resolves a group name or number.
pub fn resolve_gid(v: &str) -> Result<Gid, String> {
    if let Ok(n) = v.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!("no such group {v:?}")),
        Err(e) => Err(format!("failed to look up group {v:?}: {e}")),
    }
}

fn backend(s: &Section<'_>, value: &str) -> Result<BackendKind, ConfigError> {
    match value {
        "nftables" => Ok(BackendKind::Nftables {
            matching: crate::backend::nft::Matching {
                chaddr: s.boolean("match_chaddr", true)?,
                dhcpv6: s.boolean("match_dhcpv6", true)?,
            },
        }),
        "iptables" => {
            // It matches the Ethernet source of DHCPv4 only: asking it for
            // more is an error, not a silent hole.
            for (key, what) in [
                (
                    "match_chaddr",
                    "relayed DHCP (the client's MAC inside the request)",
                ),
                ("match_dhcpv6", "DHCPv6"),
            ] {
                if s.boolean(key, false)? {
                    return Err(s.bad_value(
                        key,
                        s.raw(key).unwrap_or("true"),
                        format!("the iptables backend cannot filter {what}; use backend = nftables"),
                    ));
                }
            }
            Ok(BackendKind::Iptables {
                restore: s.string_or("iptables_restore", "iptables-nft-restore"),
                check_every: std::time::Duration::from_secs_f64(
                    s.seconds("iptables_check_interval", DEFAULT_IPTABLES_CHECK)?,
                ),
            })
        }
        "dnsmasq" => match s.string("dnsmasq_hostsdir").filter(|p| !p.is_empty()) {
            Some(p) => Ok(BackendKind::Dnsmasq {
                hostsdir: PathBuf::from(p),
            }),
            None => Err(s.bad_value(
                "backend",
                value,
                "the dnsmasq backend needs dnsmasq_hostsdir (the directory dnsmasq's --dhcp-hostsdir names)",
            )),
        },
        "none" => Ok(BackendKind::None),
        other => Err(s.bad_value("backend", other, "expected nftables, iptables, dnsmasq or none")),
    }
}

impl HelperConfig {
    /// Reads `path` (if given) and applies `o` on top.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => IniFile::load(p)?,
            None => IniFile::parse(Path::new("<command line>"), "")?,
        };
        let s = file.section(SECTION);
        // The file value is always read, so that reject_unknown knows the
        // option even when the command line overrides it.
        let pick = |key: &str, cli: &Option<String>| {
            let from_file = s.string(key);
            cli.clone().or(from_file)
        };
        let socket_path = o
            .socket_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(s.string_or("socket_path", DEFAULT_SOCKET)));
        let mode_text = s.string_or("socket_mode", "0660");
        let socket_mode = u32::from_str_radix(mode_text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| s.bad_value("socket_mode", &mode_text, "expected an octal mode such as 0660"))?;
        let socket_group = s
            .string("socket_group")
            .map(|g| resolve_gid(&g).map_err(|e| s.bad_value("socket_group", &g, e)))
            .transpose()?;
        let backend_name = pick("backend", &o.backend).unwrap_or_else(|| "nftables".into());
        let backend = backend(&s, &backend_name)?;
        let uid_text = pick("allowed_uid", &o.allowed_uid).ok_or_else(|| ConfigError::Missing {
            path: file.path().to_owned(),
            section: SECTION.into(),
            option: "allowed_uid (or --allowed-uid)".into(),
        })?;
        let allowed_uid = resolve_uid(&uid_text).map_err(|e| s.bad_value("allowed_uid", &uid_text, e))?;
        let allowed_gid = pick("allowed_gid", &o.allowed_gid)
            .map(|g| resolve_gid(&g).map_err(|e| s.bad_value("allowed_gid", &g, e)))
            .transpose()?;
        let user = pick("user", &o.user).unwrap_or_else(|| "nobody".into());
        let iface_text = pick("interfaces", &o.interfaces).unwrap_or_else(|| "br-ctlplane".into());
        let interfaces = iface_text
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(|i| InterfaceName::new(i).map_err(|e| s.bad_value("interfaces", i, e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if interfaces.is_empty() {
            return Err(s.bad_value("interfaces", &iface_text, "at least one interface is needed"));
        }
        let cfg = HelperConfig {
            socket_path,
            socket_mode,
            socket_group,
            backend,
            allowed_uid,
            allowed_gid,
            user,
            interfaces,
            teardown_on_stop: match o.teardown_on_stop {
                Some(v) => v,
                None => s.boolean("teardown_on_stop", false)?,
            },
            state_file: s
                .string("state_file")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            allow_extra_capabilities: s.boolean("allow_extra_capabilities", false)?,
            debug: match o.debug {
                Some(v) => v,
                None => s.boolean("debug", false)?,
            },
            json_logs: s.boolean("json_logs", false)?,
        };
        // iptables_restore is only read for the iptables backend.
        let _ = s.raw("iptables_restore");
        let _ = s.raw("iptables_check_interval");
        let _ = s.raw("match_chaddr");
        let _ = s.raw("dnsmasq_hostsdir");
        let _ = s.raw("match_dhcpv6");
        s.reject_unknown(&[])?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, o: &Overrides) -> Result<HelperConfig, ConfigError> {
        let dir = tempfile::tempdir().map_err(|source| ConfigError::Read {
            path: PathBuf::from("tmp"),
            source,
        })?;
        let p = dir.path().join("discoverd.conf");
        std::fs::write(&p, text).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        HelperConfig::load(Some(&p), o)
    }

    #[test]
    fn defaults_and_required_uid() -> Result<(), ConfigError> {
        assert!(matches!(
            load("[fw_helper]\n", &Overrides::default()),
            Err(ConfigError::Missing { .. })
        ));
        let c = load(
            "[discoverd]\ndatabase = /x\n[fw_helper]\nallowed_uid = 4321\n",
            &Overrides::default(),
        )?;
        assert_eq!(c.socket_path, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(
            c.backend,
            BackendKind::Nftables {
                matching: Default::default()
            }
        );
        assert_eq!(c.allowed_uid, Uid::from_raw(4321));
        assert_eq!(c.user, "nobody");
        assert_eq!(c.interfaces.len(), 1);
        assert!(!c.teardown_on_stop);
        Ok(())
    }

    #[test]
    fn command_line_wins_and_bad_values_are_named() -> Result<(), ConfigError> {
        let o = Overrides {
            backend: Some("none".into()),
            interfaces: Some("veth0, br1".into()),
            ..Overrides::default()
        };
        let c = load("[fw_helper]\nallowed_uid = root\nbackend = iptables\n", &o)?;
        assert_eq!(c.backend, BackendKind::None);
        assert_eq!(c.allowed_uid, Uid::from_raw(0));
        let ipt = |extra: &str| {
            load(
                &format!("[fw_helper]\nallowed_uid = 0\nbackend = iptables\n{extra}\n"),
                &Overrides::default(),
            )
            .map(|c| c.backend)
        };
        let every = |secs: f64| BackendKind::Iptables {
            restore: "iptables-nft-restore".into(),
            check_every: std::time::Duration::from_secs_f64(secs),
        };
        assert_eq!(ipt("")?, every(DEFAULT_IPTABLES_CHECK));
        assert_eq!(ipt("iptables_check_interval = 0.25")?, every(0.25));
        assert!(ipt("iptables_check_interval = -1").is_err());
        assert_eq!(c.interfaces.len(), 2);
        for bad in [
            "backend = pf",
            "backend = dnsmasq",
            "backend = iptables\nmatch_dhcpv6 = true",
            "backend = iptables\nmatch_chaddr = yes",
            "socket_mode = 999",
            "interfaces = a/b",
            "allowed_gid = no-such-group-xyz",
            "bogus = 1",
        ] {
            let r = load(
                &format!("[fw_helper]\nallowed_uid = 0\n{bad}\n"),
                &Overrides::default(),
            );
            assert!(r.is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn the_dnsmasq_backend_needs_its_directory() -> Result<(), ConfigError> {
        let c = load(
            "[fw_helper]\nallowed_uid = 0\nbackend = dnsmasq\ndnsmasq_hostsdir = /var/lib/dnsmasq/hosts\n",
            &Overrides::default(),
        )?;
        assert_eq!(
            c.backend,
            BackendKind::Dnsmasq {
                hostsdir: PathBuf::from("/var/lib/dnsmasq/hosts")
            }
        );
        let e = load(
            "[fw_helper]\nallowed_uid = 0\nbackend = dnsmasq\n",
            &Overrides::default(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(matches!(&e, Err(m) if m.contains("dnsmasq_hostsdir")), "{e:?}");
        Ok(())
    }

    /// example.conf's [fw_helper] section must load and match the defaults.
    #[test]
    fn example_conf_section_matches_defaults() -> Result<(), ConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example.conf");
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with(['#', ' ']) && rest.contains(" =") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let section = uncommented.split("\n[fw_helper]").nth(1).unwrap_or_default();
        // allowed_uid has no default (it names the daemon's user, which
        // need not exist on this machine): give it on the "command line".
        let o = Overrides {
            allowed_uid: Some("0".into()),
            ..Overrides::default()
        };
        let c = load(&format!("[fw_helper]{section}"), &o)?;
        assert_eq!(c, load("[fw_helper]\n", &o)?);
        assert_eq!(c.socket_path, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(
            c.backend,
            BackendKind::Nftables {
                matching: Default::default()
            }
        );
        assert_eq!(c.user, "nobody");
        assert!(!c.teardown_on_stop && !c.allow_extra_capabilities && !c.debug && !c.json_logs);
        Ok(())
    }
}
