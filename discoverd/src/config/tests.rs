use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let f = IniFile::parse(Path::new("/etc/ironic-discoverd/discoverd.conf"), text)?;
    Config::from_ini(&f)
}

/// The example configuration of the discoverd 1.0 README, unchanged.
const DISCOVERD_1_0_CONF: &str = "\
[discoverd]
debug = false
os_auth_url = http://127.0.0.1:5000/v2.0
os_username = admin
os_password = password
os_tenant_name = admin
identity_uri = http://127.0.0.1:35357
admin_tenant_name = admin
dnsmasq_interface = br-ctlplane
database = /var/lib/ironic-discoverd/discoverd.sqlite
processing_hooks = ramdisk_error,scheduler,validate_interfaces
manage_firewall = true
ironic_retry_attempts = 5
ironic_retry_period = 5
firewall_update_period = 15
ports_for_inactive_interfaces = false
timeout = 3600
node_status_keep_time = 604800
clean_up_period = 60
overwrite_existing = false
enable_setting_ipmi_credentials = false
listen_address = 0.0.0.0
listen_port = 5050
authenticate = true
";

#[test]
fn a_discoverd_1_0_file_loads_unchanged() -> Result<(), ConfigError> {
    let c = parse(DISCOVERD_1_0_CONF)?;
    assert_eq!(c.os_username.as_deref(), Some("admin"));
    assert_eq!(c.os_password.as_ref().map(Secret::expose), Some("password"));
    assert_eq!(
        c.database,
        Database::Sqlite(PathBuf::from("/var/lib/ironic-discoverd/discoverd.sqlite"))
    );
    assert_eq!(
        c.processing_hooks,
        vec!["ramdisk_error", "scheduler", "validate_interfaces"]
    );
    assert_eq!(c.auth_strategy, AuthStrategy::Keystone);
    assert_eq!(c.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(c.dnsmasq_interface.len(), 1);
    Ok(())
}

#[test]
fn defaults_follow_discoverd_1_0() -> Result<(), ConfigError> {
    let c = parse("[discoverd]\ndatabase = /tmp/x.sqlite\n")?;
    assert_eq!(c.os_auth_url, "http://127.0.0.1:5000/v2.0");
    assert_eq!(c.identity_uri, "http://127.0.0.1:35357");
    assert_eq!(c.ironic_retry_attempts, 5);
    assert_eq!(c.ironic_retry_period, Duration::from_secs(5));
    assert!(c.manage_firewall);
    assert_eq!(c.dnsmasq_interface[0].as_str(), "br-ctlplane");
    assert_eq!(c.firewall_update_period, Duration::from_secs(15));
    assert!(!c.ports_for_inactive_interfaces);
    assert_eq!(c.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(c.node_status_keep_time, Duration::from_secs(604_800));
    assert_eq!(c.clean_up_period, Duration::from_secs(60));
    assert!(!c.overwrite_existing);
    assert!(!c.enable_setting_ipmi_credentials);
    assert_eq!(c.listen_address, IpAddr::from([0, 0, 0, 0]));
    assert_eq!(c.listen_port, 5050);
    assert_eq!(c.processing_hooks, vec!["scheduler", "validate_interfaces"]);
    assert!(!c.debug);
    assert_eq!(c.auth_strategy, AuthStrategy::Keystone);
    assert_eq!(c.ironic_conflict_retries, 12);
    assert_eq!(c.ironic_conflict_retry_period, Duration::from_secs(5));
    assert_eq!(c.firewall_mode, FilterMode::Deny);
    Ok(())
}

#[test]
fn bad_timeout_names_file_option_and_value() {
    let e = parse("[discoverd]\ndatabase = /tmp/x\ntimeout = abc\n")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "/etc/ironic-discoverd/discoverd.conf: [discoverd] timeout = \"abc\": expected a number of seconds (≤ 0 disables the timeout)"
        )
    );
}

#[test]
fn timeout_of_zero_or_less_disables() -> Result<(), ConfigError> {
    assert_eq!(parse("[discoverd]\ndatabase = /x\ntimeout = 0\n")?.timeout, None);
    assert_eq!(parse("[discoverd]\ndatabase = /x\ntimeout = -5\n")?.timeout, None);
    assert_eq!(
        parse("[discoverd]\ndatabase = /x\ntimeout = 1.5\n")?.timeout,
        Some(Duration::from_millis(1500))
    );
    Ok(())
}

#[test]
fn database_is_required_and_must_be_a_file() {
    let e = parse("[discoverd]\ntimeout = 5\n").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("/etc/ironic-discoverd/discoverd.conf: [discoverd] database is required but not set")
    );
    assert!(parse("[discoverd]\ndatabase = :memory:\n").is_err());
    assert!(parse("[discoverd]\ndatabase =   \n").is_err());
}

#[test]
fn unknown_options_fail_with_their_name() {
    let e = parse("[discoverd]\ndatabase = /x\ntimout = 5\n")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("/etc/ironic-discoverd/discoverd.conf: [discoverd] has unknown option \"timout\"")
    );
}

#[test]
fn authenticate_maps_to_auth_strategy() -> Result<(), ConfigError> {
    let c = parse("[discoverd]\ndatabase = /x\nauthenticate = false\n")?;
    assert_eq!(c.auth_strategy, AuthStrategy::NoAuth);
    let c = parse("[discoverd]\ndatabase = /x\nauth_strategy = noauth\n")?;
    assert_eq!(c.auth_strategy, AuthStrategy::NoAuth);
    assert!(parse("[discoverd]\ndatabase = /x\nauthenticate = false\nauth_strategy = keystone\n").is_err());
    assert!(parse("[discoverd]\ndatabase = /x\nauth_strategy = http_basic\n").is_err());
    let c = parse(
        "[discoverd]\ndatabase = /x\nauth_strategy = http_basic\nhttp_basic_auth_user_file = /etc/htpasswd\n",
    )?;
    assert_eq!(c.auth_strategy, AuthStrategy::HttpBasic);
    assert!(parse("[discoverd]\ndatabase = /x\nauth_strategy = kerberos\n").is_err());
    Ok(())
}

#[test]
fn interface_lists_and_invalid_names() -> Result<(), ConfigError> {
    let c = parse("[discoverd]\ndatabase = /x\ndnsmasq_interface = br-ctlplane, eth1\n")?;
    assert_eq!(c.dnsmasq_interface.len(), 2);
    let e = parse("[discoverd]\ndatabase = /x\ndnsmasq_interface = a/b\n")
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("dnsmasq_interface") && e.contains("a/b")));
    Ok(())
}

#[test]
fn value_checks() {
    for bad in [
        "listen_port = 70000",
        "listen_address = localhost",
        "firewall_update_period = 0",
        "clean_up_period = -1",
        "manage_firewall = maybe",
        "firewall_mode = block",
        "max_body_size = 10",
        "ironic_retry_attempts = -1",
    ] {
        let r = parse(&format!("[discoverd]\ndatabase = /x\n{bad}\n"));
        let key = bad.split(' ').next().unwrap_or_default();
        assert!(
            matches!(&r, Err(ConfigError::BadValue { option, .. }) if option == key),
            "{bad}: {r:?}"
        );
    }
}

/// `example.conf` must list every option with the default the code uses.
#[test]
fn example_conf_lists_every_option_with_its_default() -> Result<(), ConfigError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example.conf");
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let section: String = text
        .split("\n[")
        .find(|part| part.starts_with("discoverd]"))
        .map(|part| format!("[{part}"))
        .unwrap_or_default();
    let mut listed = Vec::new();
    let mut uncommented = String::new();
    for line in section.lines() {
        let opt = line
            .strip_prefix('#')
            .filter(|l| !l.starts_with(['#', ' ']) && l.contains(" ="));
        if let Some(opt) = opt {
            listed.push(opt.split(' ').next().unwrap_or_default().to_owned());
            uncommented.push_str(opt);
        } else {
            if let Some((k, _)) = line.split_once(" =").filter(|_| !line.starts_with('#')) {
                listed.push(k.to_owned());
            }
            uncommented.push_str(line);
        }
        uncommented.push('\n');
    }
    listed.sort();
    assert_eq!(
        listed,
        Config::known_options(),
        "options in example.conf vs. code"
    );
    let with_defaults = parse(&uncommented)?;
    let minimal = parse("[discoverd]\ndatabase = /var/lib/ironic-discoverd/discoverd.sqlite\n")?;
    assert_eq!(with_defaults, minimal, "defaults in example.conf vs. code");
    Ok(())
}

#[test]
fn a_postgresql_url_selects_the_shared_store_and_hides_its_password() -> Result<(), ConfigError> {
    let c = parse("[discoverd]\ndatabase = postgresql://d:hunter2@db:5432/discoverd\n")?;
    assert_eq!(
        c.database,
        Database::Postgres("postgresql://d:hunter2@db:5432/discoverd".into())
    );
    assert!(!format!("{c:?}").contains("hunter2"));
    let e = parse("[discoverd]\ndatabase = postgresql://d:hunter2@db:notaport/x\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("database") && e.contains("PostgreSQL") && !e.contains("hunter2"),
        "{e}"
    );
    for other in ["mysql://d:hunter2@db/x", "sqlite:///var/lib/x.sqlite"] {
        let e = parse(&format!("[discoverd]\ndatabase = {other}\n"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("[discoverd] database") && e.contains("unsupported scheme") && !e.contains("hunter2"),
            "{e}"
        );
    }
    Ok(())
}

#[test]
fn secrets_do_not_leak_through_debug() -> Result<(), ConfigError> {
    let c = parse("[discoverd]\ndatabase = /x\nos_password = hunter2\n")?;
    assert!(!format!("{c:?}").contains("hunter2"));
    Ok(())
}

#[test]
fn inspector_hook_options_are_read_from_its_sections() -> Result<(), ConfigError> {
    let base = "[discoverd]\ndatabase = /x\n";
    // 1.0: [discoverd] processing_hooks, 1.0 port behaviour.
    let c = parse(DISCOVERD_1_0_CONF)?;
    assert_eq!(
        c.processing_hooks,
        ["ramdisk_error", "scheduler", "validate_interfaces"]
    );
    assert_eq!(c.hook_options, processing::HookOptions::default());
    // The inspector's defaults, with $default_processing_hooks expanded.
    let c = parse(&format!(
        "{base}[processing]\nprocessing_hooks = $default_processing_hooks,lldp_basic\n\
         add_ports = pxe\nkeep_ports = present\noverwrite_existing = true\n\
         [pci_devices]\nalias = {{\"vendor_id\": \"8086\", \"product_id\": \"1572\", \"name\": \"nic\"}}\n\
         alias = {{\"vendor_id\": \"10de\", \"product_id\": \"1eb8\", \"name\": \"gpu\"}}\n\
         [port_physnet]\ncidr_map = 10.10.0.0/24:physnet_a, fd00::/64:physnet_b\n"
    ))?;
    assert_eq!(
        c.processing_hooks,
        [
            "ramdisk_error",
            "root_disk_selection",
            "scheduler",
            "validate_interfaces",
            "capabilities",
            "pci_devices",
            "lldp_basic"
        ]
    );
    assert_eq!(
        c.hook_options.add_ports,
        Some(crate::hooks::port_options::AddPorts::Pxe)
    );
    assert!(c.overwrite_existing);
    assert_eq!(c.hook_options.pci_aliases.len(), 2);
    assert_eq!(c.hook_options.cidr_map[1].1, "physnet_b");
    let c = parse(&format!(
        "{base}[processing]\ndefault_processing_hooks = scheduler\n"
    ))?;
    assert_eq!(c.processing_hooks, ["scheduler"]);
    Ok(())
}

#[test]
fn bad_hook_options_name_section_option_and_value() {
    let base = "[discoverd]\ndatabase = /x\n";
    let err = |extra: &str| {
        parse(&format!("{base}{extra}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = err("[processing]\nadd_ports = some\n");
    assert!(e.contains("[processing] add_ports = \"some\""), "{e}");
    let e = err("[processing]\nkeep_ports = none\n");
    assert!(e.contains("[processing] keep_ports"), "{e}");
    let e = err("[processing]\nadd_ports = disabled\nkeep_ports = added\n");
    assert!(
        e.contains("keep_ports") && e.contains("set keep_ports to all"),
        "{e}"
    );
    let e = err("[pci_devices]\nalias = {\"vendor_id\": \"8086\"\n");
    assert!(e.contains("[pci_devices] alias") && e.contains("not JSON"), "{e}");
    let e = err("[pci_devices]\nalias = {\"vendor_id\": \"8086\", \"name\": \"x\"}\n");
    assert!(e.contains("exactly the keys"), "{e}");
    let e = err("[port_physnet]\ncidr_map = 10.10.0.0/24\n");
    assert!(e.contains("[port_physnet] cidr_map = \"10.10.0.0/24\""), "{e}");
    let e = err("[port_physnet]\ncidr_map = 10.10.0.300/24:a\n");
    assert!(e.contains("not a network"), "{e}");
    let e = err("[port_physnet]\ncidr_map = 10.10.0.1/24:a\n");
    assert!(e.contains("host bits"), "{e}");
    let e = err("[processing]\nadd_port = pxe\n");
    assert!(e.contains("[processing] has unknown option \"add_port\""), "{e}");
    let e = parse("[discoverd]\ndatabase = /x\nprocessing_hooks = scheduler\n[processing]\nprocessing_hooks = scheduler\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("also set in [processing]"), "{e}");
    let e = err("[capabilities]\nboot_mode = maybe\n");
    assert!(e.contains("[capabilities] boot_mode = \"maybe\""), "{e}");
    let e = err("[capabilities]\ncpu_flags = vmx\n");
    assert!(
        e.contains("[capabilities] cpu_flags = \"vmx\"") && e.contains("flag:capability"),
        "{e}"
    );
    let e = err("[extra_hardware]\nstrict = 2\n");
    assert!(e.contains("[extra_hardware] strict"), "{e}");
    let e = err("[processing]\nramdisk_logs_filename_format = {node}.tgz\n");
    assert!(
        e.contains("[processing] ramdisk_logs_filename_format = \"{node}.tgz\"")
            && e.contains("unknown field"),
        "{e}"
    );
    let e = err("[processing]\nalways_store_ramdisk_logs = sometimes\n");
    assert!(e.contains("always_store_ramdisk_logs"), "{e}");
}

#[test]
fn capabilities_extra_hardware_and_ramdisk_logs_options() -> Result<(), ConfigError> {
    let base = "[discoverd]\ndatabase = /x\n";
    let c = parse(base)?;
    assert!(!c.hook_options.boot_mode && !c.hook_options.extra_hardware_strict);
    assert_eq!(c.hook_options.cpu_flags, processing::default_cpu_flags());
    assert_eq!(c.hook_options.ramdisk_logs.dir, None);
    let c = parse(&format!(
        "{base}[capabilities]\nboot_mode = true\ncpu_flags = avx2:cpu_avx2, vmx : virt,avx2:avx\n\
         [extra_hardware]\nstrict = true\n\
         [processing]\nramdisk_logs_dir = /var/log/discoverd/ramdisk\nalways_store_ramdisk_logs = true\n\
         ramdisk_logs_filename_format = {{uuid}}-{{bmc}}.tgz\n"
    ))?;
    assert!(c.hook_options.boot_mode && c.hook_options.extra_hardware_strict);
    assert_eq!(
        c.hook_options.cpu_flags,
        [
            ("avx2".to_owned(), "avx".to_owned()),
            ("vmx".to_owned(), "virt".to_owned())
        ]
    );
    let logs = &c.hook_options.ramdisk_logs;
    assert_eq!(
        logs.dir.as_deref(),
        Some(std::path::Path::new("/var/log/discoverd/ramdisk"))
    );
    assert!(logs.always);
    assert_ne!(
        logs.format,
        crate::processing::ramdisk_logs::FileNameFormat::default()
    );
    // Empty cpu_flags: no CPU capabilities (oslo.config's empty dict).
    let c = parse(&format!("{base}[capabilities]\ncpu_flags =\n"))?;
    assert!(c.hook_options.cpu_flags.is_empty());
    Ok(())
}
