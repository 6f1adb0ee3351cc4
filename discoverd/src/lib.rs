//! ironic-discoverd: hardware introspection for OpenStack Ironic.
//!
//! The daemon runs unprivileged. It serves the HTTP API, talks to Ironic,
//! keeps its node cache in SQLite, and asks `ironic-discoverd-fw-helper`
//! over a Unix socket to keep the DHCP filter in the state it computes.
#![forbid(unsafe_code)]

pub mod config;
pub mod ironic;
pub mod logging;
pub mod server;

pub use config::Config;
