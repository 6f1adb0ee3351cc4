//! ironic-inspector's hook options, in its sections: `[processing]`
//! (`default_processing_hooks`, `processing_hooks`, `add_ports`,
//! `keep_ports`, `update_pxe_enabled`, `disk_partitioning_spacing`,
//! `overwrite_existing`, the ramdisk logs' `ramdisk_logs_dir`,
//! `always_store_ramdisk_logs`, `ramdisk_logs_filename_format`),
//! `[pci_devices] alias`, `[port_physnet] cidr_map`, `[capabilities]
//! boot_mode` and `cpu_flags`, `[extra_hardware] strict`. A discoverd 1.0 file has none of them and keeps its
//! `[discoverd] processing_hooks`; a bad value stops start-up with the
//! section, option and value named.

use common::ini::{ConfigError, IniFile, Section};
use ipnet::IpNet;

use crate::hooks::port_options::{AddPorts, KeepPorts};
use crate::processing::ramdisk_logs::{FileNameFormat, RamdiskLogs};

/// ironic-inspector 12.5's `default_processing_hooks`.
pub const INSPECTOR_DEFAULT_HOOKS: &str =
    "ramdisk_error,root_disk_selection,scheduler,validate_interfaces,capabilities,pci_devices";

/// Most `[pci_devices] alias` entries and `[port_physnet] cidr_map` entries.
const MAX_ENTRIES: usize = 1000;

/// One `[pci_devices] alias` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciAlias {
    pub vendor_id: String,
    pub product_id: String,
    pub name: String,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            processing_hooks: None,
            add_ports: None,
            keep_ports: KeepPorts::All,
            update_pxe_enabled: true,
            disk_partitioning_spacing: true,
            overwrite_existing: None,
            pci_aliases: Vec::new(),
            cidr_map: Vec::new(),
            boot_mode: false,
            cpu_flags: default_cpu_flags(),
            extra_hardware_strict: false,
            ramdisk_logs: RamdiskLogs::default(),
        }
    }
}

/// The inspector's `DEFAULT_CPU_FLAGS_MAPPING`, in its order.
pub const DEFAULT_CPU_FLAGS: [(&str, &str); 6] = [
    ("vmx", "cpu_vt"),
    ("svm", "cpu_vt"),
    ("aes", "cpu_aes"),
    ("pse", "cpu_hugepages"),
    ("pdpe1gb", "cpu_hugepages_1g"),
    ("smx", "cpu_txt"),
];

/// [`DEFAULT_CPU_FLAGS`] as owned pairs.
pub fn default_cpu_flags() -> Vec<(String, String)> {
    DEFAULT_CPU_FLAGS
        .iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect()
}

/// The options of the inspector's sections, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct HookOptions {
    /// The hooks, when `[processing]` names them (else `[discoverd]`'s).
    pub processing_hooks: Option<Vec<String>>,
    /// Unset: discoverd 1.0's choice (see `HookSettings::port_policy`).
    pub add_ports: Option<AddPorts>,
    pub keep_ports: KeepPorts,
    pub update_pxe_enabled: bool,
    pub disk_partitioning_spacing: bool,
    /// `[processing] overwrite_existing`, which wins over `[discoverd]`'s.
    pub overwrite_existing: Option<bool>,
    pub pci_aliases: Vec<PciAlias>,
    pub cidr_map: Vec<(IpNet, String)>,
    /// `[capabilities] boot_mode`: add `boot_mode:<current boot mode>`.
    pub boot_mode: bool,
    /// `[capabilities] cpu_flags`: CPU flag -> capability, in order.
    pub cpu_flags: Vec<(String, String)>,
    /// `[extra_hardware] strict`.
    pub extra_hardware_strict: bool,
    /// Where and when the ramdisk's logs are kept.
    pub ramdisk_logs: RamdiskLogs,
}

fn hooks(s: &Section<'_>) -> Option<Vec<String>> {
    let default = s.raw("default_processing_hooks");
    let hooks = s.raw("processing_hooks");
    if default.is_none() && hooks.is_none() {
        return None;
    }
    let default = default.unwrap_or(INSPECTOR_DEFAULT_HOOKS);
    let text = hooks
        .unwrap_or("$default_processing_hooks")
        .replace("${default_processing_hooks}", default)
        .replace("$default_processing_hooks", default);
    Some(
        text.split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

fn aliases(s: &Section<'_>) -> Result<Vec<PciAlias>, ConfigError> {
    let all = s.all("alias");
    if all.len() > MAX_ENTRIES {
        return Err(s.bad_value("alias", "", format!("more than {MAX_ENTRIES} aliases")));
    }
    all.into_iter()
        .map(|raw| {
            let bad = |why: &str| s.bad_value("alias", raw, why.to_owned());
            let v: serde_json::Value =
                serde_json::from_str(raw).map_err(|e| bad(&format!("not JSON: {e}")))?;
            let obj = v.as_object().ok_or_else(|| bad("expected a JSON object"))?;
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            if keys != ["name", "product_id", "vendor_id"] {
                return Err(bad(
                    "the entry must have exactly the keys vendor_id, product_id and name",
                ));
            }
            let field = |k: &str| {
                obj.get(k)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| bad(&format!("{k} must be a string")))
            };
            Ok(PciAlias {
                vendor_id: field("vendor_id")?,
                product_id: field("product_id")?,
                name: field("name")?,
            })
        })
        .collect()
}

fn cidr_map(s: &Section<'_>) -> Result<Vec<(IpNet, String)>, ConfigError> {
    let entries = s.list("cidr_map", &[]);
    if entries.len() > MAX_ENTRIES {
        return Err(s.bad_value("cidr_map", "", format!("more than {MAX_ENTRIES} entries")));
    }
    entries
        .iter()
        .map(|e| {
            let bad = |why: &str| s.bad_value("cidr_map", e, why.to_owned());
            let (cidr, physnet) = e.rsplit_once(':').ok_or_else(|| bad("expected CIDR:physnet"))?;
            if physnet.is_empty() {
                return Err(bad("the physical network name is empty"));
            }
            let net: IpNet = cidr
                .parse()
                .map_err(|_| bad(&format!("{cidr:?} is not a network in CIDR notation")))?;
            if net.trunc() != net {
                return Err(bad(&format!("{cidr} has host bits set")));
            }
            Ok((net, physnet.to_owned()))
        })
        .collect()
}

/// oslo.config's `DictOpt`: `key:value` entries separated by commas.
fn cpu_flags(s: &Section<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(raw) = s.raw("cpu_flags") else {
        return Ok(default_cpu_flags());
    };
    let mut map: Vec<(String, String)> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (flag, cap) = entry
            .split_once(':')
            .map(|(f, c)| (f.trim(), c.trim()))
            .ok_or_else(|| s.bad_value("cpu_flags", raw, format!("{entry:?} is not flag:capability")))?;
        if flag.is_empty() || cap.is_empty() || cap.contains(':') {
            return Err(s.bad_value("cpu_flags", raw, format!("{entry:?} is not flag:capability")));
        }
        if map.len() >= MAX_ENTRIES {
            return Err(s.bad_value("cpu_flags", raw, format!("more than {MAX_ENTRIES} entries")));
        }
        // A repeated flag keeps its first place and takes the last value.
        match map.iter_mut().find(|(f, _)| f == flag) {
            Some((_, c)) => *c = cap.to_owned(),
            None => map.push((flag.to_owned(), cap.to_owned())),
        }
    }
    Ok(map)
}

fn ramdisk_logs(p: &Section<'_>) -> Result<RamdiskLogs, ConfigError> {
    let format = p.string("ramdisk_logs_filename_format");
    let format = match format.as_deref() {
        Some(f) => {
            FileNameFormat::parse(f).map_err(|why| p.bad_value("ramdisk_logs_filename_format", f, why))?
        }
        None => FileNameFormat::default(),
    };
    Ok(RamdiskLogs {
        dir: p
            .string("ramdisk_logs_dir")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from),
        always: p.boolean("always_store_ramdisk_logs", false)?,
        format,
    })
}

/// Reads the inspector's sections of `file`.
pub fn read(file: &IniFile) -> Result<HookOptions, ConfigError> {
    let p = file.section("processing");
    let overwrite = match p.raw("overwrite_existing") {
        Some(_) => Some(p.boolean("overwrite_existing", false)?),
        None => None,
    };
    let opts = HookOptions {
        processing_hooks: hooks(&p),
        add_ports: match p.raw("add_ports").filter(|v| !v.is_empty()) {
            Some(_) => Some(p.parsed("add_ports", AddPorts::Pxe)?),
            None => None,
        },
        keep_ports: p.parsed("keep_ports", KeepPorts::All)?,
        update_pxe_enabled: p.boolean("update_pxe_enabled", true)?,
        disk_partitioning_spacing: p.boolean("disk_partitioning_spacing", true)?,
        overwrite_existing: overwrite,
        ramdisk_logs: ramdisk_logs(&p)?,
        ..HookOptions::default()
    };
    // Auto-discovery's option, read by config/discovery.rs.
    p.reject_unknown(&["node_not_found_hook"])?;
    if opts.add_ports == Some(AddPorts::Disabled) && opts.keep_ports == KeepPorts::Added {
        return Err(p.bad_value(
            "keep_ports",
            "added",
            "add_ports = disabled and keep_ports = added cannot be used together; set keep_ports to all",
        ));
    }
    let pci = file.section("pci_devices");
    let pci_aliases = aliases(&pci)?;
    pci.reject_unknown(&[])?;
    let physnet = file.section("port_physnet");
    let cidr_map = cidr_map(&physnet)?;
    physnet.reject_unknown(&[])?;
    let caps = file.section("capabilities");
    let boot_mode = caps.boolean("boot_mode", false)?;
    let cpu_flags = cpu_flags(&caps)?;
    caps.reject_unknown(&[])?;
    let extra = file.section("extra_hardware");
    let extra_hardware_strict = extra.boolean("strict", false)?;
    extra.reject_unknown(&[])?;
    Ok(HookOptions {
        pci_aliases,
        cidr_map,
        boot_mode,
        cpu_flags,
        extra_hardware_strict,
        ..opts
    })
}
