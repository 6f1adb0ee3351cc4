//! Network interface names, validated by the kernel's own rules.
//!
//! The helper puts these names into an nftables `iifname` match and the
//! daemon reads them from its config file, so both sides must agree on
//! what a valid name is before anything reaches the kernel.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `IFNAMSIZ` minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// A validated Linux interface name such as `br-ctlplane`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceName(String);

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceNameError {
    #[error("interface name is empty")]
    Empty,
    #[error("interface name {name:?} is {len} bytes long, the kernel allows at most {MAX_IFNAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error("interface name {0:?} is reserved")]
    Reserved(String),
    #[error(
        "interface name {name:?} contains {bad:?}: only printable ASCII without '/', ':' or whitespace is allowed"
    )]
    BadCharacter { name: String, bad: char },
}

impl InterfaceName {
    /// Validates a name the way the kernel's `dev_valid_name()` does, and
    /// additionally refuses non-ASCII and control characters, which the
    /// kernel would take but which nothing in an undercloud uses and which
    /// make logs and `nft` output ambiguous.
    pub fn new(name: &str) -> Result<Self, InterfaceNameError> {
        if name.is_empty() {
            return Err(InterfaceNameError::Empty);
        }
        if name.len() > MAX_IFNAME_LEN {
            let shown: String = name.chars().take(32).collect();
            return Err(InterfaceNameError::TooLong {
                name: shown,
                len: name.len(),
            });
        }
        if name == "." || name == ".." {
            return Err(InterfaceNameError::Reserved(name.to_owned()));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | ':'))
        {
            return Err(InterfaceNameError::BadCharacter {
                name: name.to_owned(),
                bad,
            });
        }
        Ok(InterfaceName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name NUL-padded to `IFNAMSIZ` (16 bytes), the exact operand
    /// `nft` compares `iifname` against.
    pub fn padded(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..self.0.len()].copy_from_slice(self.0.as_bytes());
        out
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for InterfaceName {
    type Err = InterfaceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for InterfaceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InterfaceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InterfaceName::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "eth0",
            "br-ctlplane",
            "veth0.100",
            "a",
            "123456789012345",
            "en_p1s0@x",
        ] {
            assert_eq!(InterfaceName::new(n).map(|i| i.to_string()), Ok(n.to_owned()));
        }
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        assert_eq!(InterfaceName::new(""), Err(InterfaceNameError::Empty));
        assert!(matches!(
            InterfaceName::new("1234567890123456"),
            Err(InterfaceNameError::TooLong { len: 16, .. })
        ));
        assert!(matches!(
            InterfaceName::new("."),
            Err(InterfaceNameError::Reserved(_))
        ));
        assert!(matches!(
            InterfaceName::new(".."),
            Err(InterfaceNameError::Reserved(_))
        ));
        for n in ["a/b", "a:b", "a b", "a\tb", "a\0b", "ä"] {
            assert!(
                matches!(
                    InterfaceName::new(n),
                    Err(InterfaceNameError::BadCharacter { .. })
                ),
                "{n:?}"
            );
        }
    }

    #[test]
    fn padded_form_matches_ifnamsiz() {
        let i = InterfaceName::new("veth0").ok();
        let padded = i.map(|i| i.padded());
        assert_eq!(padded, Some(*b"veth0\0\0\0\0\0\0\0\0\0\0\0"));
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<InterfaceName>("\"eth0\"").is_ok());
        assert!(serde_json::from_str::<InterfaceName>("\"../etc\"").is_err());
    }
}
