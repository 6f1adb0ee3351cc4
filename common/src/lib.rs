//! Types shared by `ironic-discoverd` and `ironic-discoverd-fw-helper`, and
//! nothing else: MAC addresses, interface names, the helper wire protocol,
//! and the INI option reader both binaries use for `discoverd.conf`.
#![forbid(unsafe_code)]

#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod iface;
pub mod ini;
#[cfg(feature = "logging")]
pub mod logging;
pub mod mac;
pub mod protocol;

pub use iface::{InterfaceName, InterfaceNameError};
pub use mac::{MacAddr, MacError};
pub use protocol::{FilterMode, FilterState};
