//! ironic-discoverd: hardware introspection for OpenStack Ironic.
//!
//! The daemon runs unprivileged. It serves the HTTP API, talks to Ironic,
//! keeps its node cache in SQLite, and asks `ironic-discoverd-fw-helper`
//! over a Unix socket to keep the DHCP filter in the state it computes.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod backoff;
pub mod client;
pub mod config;
pub mod connections;
pub mod daemon;
pub mod domain;
pub mod events;
pub mod firewall;
pub mod hooks;
pub mod http_body;
pub mod introspection;
pub mod ironic;
pub mod json;
pub mod keystone;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod periodic;
pub mod privileges;
pub mod processing;
pub mod rules;
pub mod server;
pub mod store;
pub mod takeover;
pub mod tasks;

pub use config::Config;
pub use daemon::run;
