//! `ironic-discoverd-fw-helper`: parse arguments and config, set up
//! logging, and run the helper (or one `ctl` request).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::protocol::RequestBody;
use common::{FilterMode, FilterState, InterfaceName, MacAddr};

use fw_helper::config::{HelperConfig, Overrides};

/// The privileged helper of ironic-discoverd.
///
/// Keeps DHCP (udp/67) on the dnsmasq interface filtered by source MAC, in
/// the state the ironic-discoverd daemon sends over a Unix socket. Holds
/// CAP_NET_ADMIN and nothing else: started as root it binds its socket and
/// drops to --user; started unprivileged it must have CAP_NET_ADMIN (e.g.
/// systemd AmbientCapabilities=). Options come from the [fw_helper]
/// section of --config-file; flags override them.
#[derive(Debug, Parser)]
#[command(name = "ironic-discoverd-fw-helper", version)]
struct Args {
    /// discoverd.conf to read the [fw_helper] section from.
    #[arg(long = "config-file", value_name = "PATH", global = true)]
    config_file: Option<PathBuf>,
    /// Unix socket to listen on (or to connect to, with `ctl`).
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// Filter backend: nftables, iptables, dnsmasq or none.
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// The only user (name or uid) allowed to connect: the daemon's.
    #[arg(long, value_name = "USER")]
    allowed_uid: Option<String>,
    /// When given, the connecting peer's group must match too.
    #[arg(long, value_name = "GROUP")]
    allowed_gid: Option<String>,
    /// User to drop to when started as root.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Interfaces the daemon may ask to filter, comma-separated.
    #[arg(long, value_name = "IF,...")]
    interfaces: Option<String>,
    /// Remove the filter when stopping.
    #[arg(long)]
    teardown_on_stop: bool,
    /// Debug logging.
    #[arg(long)]
    debug: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send one request to a running helper and print the reply as JSON.
    Ctl {
        #[command(subcommand)]
        request: CtlRequest,
    },
}

#[derive(Debug, Subcommand)]
enum CtlRequest {
    /// What the kernel holds now.
    Status,
    /// Remove the filter.
    Teardown,
    /// Replace the filter.
    Sync {
        /// Interface to filter (repeatable).
        #[arg(long = "interface", required = true)]
        interfaces: Vec<InterfaceName>,
        #[arg(long, default_value = "deny")]
        mode: FilterMode,
        /// MAC address (repeatable).
        #[arg(long = "mac")]
        macs: Vec<MacAddr>,
    },
    /// Add MACs to the set.
    Add {
        #[arg(long = "mac", required = true)]
        macs: Vec<MacAddr>,
    },
    /// Remove MACs from the set.
    Remove {
        #[arg(long = "mac", required = true)]
        macs: Vec<MacAddr>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Ctl { request }) = args.command {
        let socket = args
            .socket
            .or_else(|| {
                args.config_file
                    .as_deref()
                    .and_then(|p| common::ini::IniFile::load(p).ok())
                    .and_then(|f| f.section(fw_helper::config::SECTION).string("socket_path"))
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(fw_helper::config::DEFAULT_SOCKET));
        let body = match request {
            CtlRequest::Status => RequestBody::Status,
            CtlRequest::Teardown => RequestBody::Teardown,
            CtlRequest::Sync {
                interfaces,
                mode,
                macs,
            } => RequestBody::Sync(FilterState {
                interfaces,
                mode,
                macs,
            }),
            CtlRequest::Add { macs } => RequestBody::Add { macs },
            CtlRequest::Remove { macs } => RequestBody::Remove { macs },
        };
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ironic-discoverd-fw-helper: failed to start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return ExitCode::from(runtime.block_on(fw_helper::ctl::run(&socket, body)));
    }
    let overrides = Overrides {
        socket_path: args.socket,
        backend: args.backend,
        allowed_uid: args.allowed_uid,
        allowed_gid: args.allowed_gid,
        user: args.user,
        interfaces: args.interfaces,
        teardown_on_stop: args.teardown_on_stop.then_some(true),
        debug: args.debug.then_some(true),
    };
    let cfg = match HelperConfig::load(args.config_file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ironic-discoverd-fw-helper: {e}");
            return ExitCode::from(1);
        }
    };
    fw_helper::logging::init(cfg.debug, cfg.json_logs);
    match fw_helper::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
