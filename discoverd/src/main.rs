//! `ironic-discoverd`: parse the command line and config, set up logging,
//! bind, and hand over to the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use discoverd::{Config, logging, server};

/// jemalloc, with a background thread that returns freed memory to the
/// system after its decay time (10 s): glibc malloc kept a connection
/// flood's memory (35.6 MiB a minute after, idle 13.9 MiB; BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hardware introspection service for OpenStack Ironic.
///
/// Runs unprivileged; the DHCP filter is managed through
/// ironic-discoverd-fw-helper over a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "ironic-discoverd", version)]
struct Args {
    /// Configuration file (INI, section [discoverd]).
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Option<PathBuf>,

    /// Deprecated: the configuration file as a positional argument, as
    /// ironic-discoverd 1.0 accepted it. Use --config-file.
    #[arg(value_name = "CONFIG", hide = true)]
    legacy_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (path, legacy) = match (args.config_file, args.legacy_config) {
        (Some(p), None) => (p, false),
        (None, Some(p)) => (p, true),
        (Some(_), Some(_)) => {
            eprintln!(
                "ironic-discoverd: give the configuration either with --config-file or positionally, not both"
            );
            return ExitCode::from(2);
        }
        (None, None) => {
            eprintln!("ironic-discoverd: --config-file PATH is required (see --help)");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = discoverd::privileges::check() {
        eprintln!("ironic-discoverd: {e}");
        return ExitCode::from(1);
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ironic-discoverd: {e}");
            return ExitCode::from(1);
        }
    };
    logging::init(config.debug, config.json_logs);
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc's background purge is off, freed memory returns later: {e}");
    }
    discoverd::connections::raise_open_files_limit();
    if legacy {
        tracing::warn!(
            "passing the configuration file as a positional argument is deprecated, use --config-file {}",
            path.display()
        );
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let addr = std::net::SocketAddr::new(config.listen_address, config.listen_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to bind the HTTP API to {addr}"))?;
        tracing::info!(%addr, "ironic-discoverd listening");
        discoverd::run(config, listener, server::shutdown_signal()).await?;
        Ok(())
    })
}
