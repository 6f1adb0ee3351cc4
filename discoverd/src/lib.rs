//! ironic-discoverd: hardware introspection for OpenStack Ironic.
//!
//! The daemon runs unprivileged. It serves the HTTP API, talks to Ironic,
//! keeps its node cache in SQLite, and asks `ironic-discoverd-fw-helper`
//! over a Unix socket to keep the DHCP filter in the state it computes.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod firewall;
pub mod http_body;
pub mod introspect;
pub mod ironic;
pub mod keystone;
pub mod logging;
pub mod metrics;
pub mod node_cache;
pub mod notify;
pub mod periodic;
pub mod process;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use app::run;
pub use config::Config;
