//! Ethernet MAC addresses as Ironic, ramdisks and PXE firmware spell them.
//!
//! Ironic stores `aa:bb:cc:dd:ee:ff`; ramdisks report upper case or `aa-bb-..`;
//! pxelinux's `BOOTIF` prefixes the hardware type (`01-aa-bb-..`). All of them
//! parse into one [`MacAddr`], which always prints in Ironic's lower-case,
//! colon-separated form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest input echoed back inside an error message, so that a hostile
/// ramdisk cannot make us log megabytes.
const MAX_ECHO: usize = 40;

/// A 48-bit Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

/// Why a string or address is not a usable MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// Not six hexadecimal octets in one of the accepted spellings.
    #[error("invalid MAC address {0:?}: expected six hex octets separated by ':' or '-'")]
    Syntax(String),
    /// The group bit is set: multicast or broadcast frames never carry it as a source.
    #[error("MAC address {0} is multicast and cannot be a source address")]
    Multicast(MacAddr),
    /// All ones.
    #[error("MAC address {0} is the broadcast address")]
    Broadcast(MacAddr),
    /// All zeroes: firmware placeholders, never a real NIC.
    #[error("MAC address {0} is all zeroes")]
    Zero(MacAddr),
}

fn echo(input: &str) -> String {
    if input.len() <= MAX_ECHO {
        return input.to_owned();
    }
    let mut end = MAX_ECHO;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &input[..end])
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl MacAddr {
    /// The all-ones broadcast address.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Builds an address from its six octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }

    /// The six octets, most significant first.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, in any letter case.
    /// The separator must be the same throughout. Any address value is
    /// accepted; use [`MacAddr::parse_unicast`] where only a NIC's own
    /// address makes sense.
    pub fn parse(input: &str) -> Result<Self, MacError> {
        let b = input.as_bytes();
        if b.len() != 17 {
            return Err(MacError::Syntax(echo(input)));
        }
        let sep = b[2];
        if sep != b':' && sep != b'-' {
            return Err(MacError::Syntax(echo(input)));
        }
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && b[at - 1] != sep {
                return Err(MacError::Syntax(echo(input)));
            }
            match (hex(b[at]), hex(b[at + 1])) {
                (Some(h), Some(l)) => *octet = (h << 4) | l,
                _ => return Err(MacError::Syntax(echo(input))),
            }
        }
        Ok(MacAddr(out))
    }

    /// Parses like [`MacAddr::parse`] and then refuses addresses that can
    /// never be the source of a DHCP request: multicast, broadcast and zero.
    pub fn parse_unicast(input: &str) -> Result<Self, MacError> {
        Self::parse(input)?.check_unicast()
    }

    /// Parses pxelinux's `BOOTIF` form, `01-aa-bb-cc-dd-ee-ff`, where `01`
    /// is the ARP hardware type of Ethernet. Plain MAC spellings are
    /// accepted too, since ramdisks differ in what they send.
    pub fn parse_bootif(input: &str) -> Result<Self, MacError> {
        match input.strip_prefix("01-") {
            Some(rest) if rest.len() == 17 => Self::parse(rest),
            _ => Self::parse(input),
        }
    }

    /// Returns the address if it can be a NIC's source address.
    pub fn check_unicast(self) -> Result<Self, MacError> {
        if self == Self::BROADCAST {
            Err(MacError::Broadcast(self))
        } else if self.0 == [0; 6] {
            Err(MacError::Zero(self))
        } else if self.is_multicast() {
            Err(MacError::Multicast(self))
        } else {
            Ok(self)
        }
    }

    /// True when the group (I/G) bit of the first octet is set.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for a NIC's own address: not multicast, broadcast or zero.
    pub fn is_unicast(&self) -> bool {
        self.check_unicast().is_ok()
    }
}

impl fmt::Display for MacAddr {
    /// `aa:bb:cc:dd:ee:ff`, written from a table: MACs are formatted on
    /// every lookup and for every element of a filter sync, where six
    /// `{:02x}` cost more than the rest of the work.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b':'; 17];
        for (i, byte) in self.0.iter().enumerate() {
            text[i * 3] = HEX[usize::from(byte >> 4)];
            text[i * 3 + 1] = HEX[usize::from(byte & 0xf)];
        }
        // Only ASCII hex digits and colons were written.
        f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Formatting into a stack buffer keeps 100 k-MAC frames cheap.
        let mut buf = [0u8; 17];
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, o) in self.0.iter().enumerate() {
            buf[i * 3] = DIGITS[usize::from(o >> 4)];
            buf[i * 3 + 1] = DIGITS[usize::from(o & 0xf)];
            if i < 5 {
                buf[i * 3 + 2] = b':';
            }
        }
        let text = std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MacAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MAC address string such as \"52:54:00:12:34:56\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MacAddr, E> {
                MacAddr::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_to_one_form() {
        for s in [
            "52:54:00:ab:cd:ef",
            "52:54:00:AB:CD:EF",
            "52-54-00-ab-cd-ef",
            "52-54-00-AB-cd-EF",
        ] {
            assert_eq!(
                MacAddr::parse(s).map(|m| m.to_string()),
                Ok("52:54:00:ab:cd:ef".to_owned()),
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_malformed_input() {
        for s in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:00",
            "52:54-00:ab:cd:ef",
            "52:54:00:ab:cd:eg",
            "5254.00ab.cdef",
            "52:54:00:ab:cd:e ",
            "525400abcdef",
            "52:54:00:ab:cd:é",
        ] {
            assert!(matches!(MacAddr::parse(s), Err(MacError::Syntax(_))), "{s}");
        }
    }

    #[test]
    fn error_echo_is_bounded() {
        let long = "x".repeat(10_000);
        let msg = MacAddr::parse(&long).err().map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.len() < 200));
        let long_utf8 = "é".repeat(100);
        assert!(MacAddr::parse(&long_utf8).is_err());
    }

    #[test]
    fn unicast_check_names_the_reason() {
        assert!(matches!(
            MacAddr::parse_unicast("ff:ff:ff:ff:ff:ff"),
            Err(MacError::Broadcast(_))
        ));
        assert!(matches!(
            MacAddr::parse_unicast("00:00:00:00:00:00"),
            Err(MacError::Zero(_))
        ));
        assert!(matches!(
            MacAddr::parse_unicast("01:00:5e:00:00:01"),
            Err(MacError::Multicast(_))
        ));
        assert!(MacAddr::parse_unicast("02:00:00:00:00:01").is_ok());
    }

    #[test]
    fn bootif_form() {
        assert_eq!(
            MacAddr::parse_bootif("01-3c-fd-fe-9c-87-60").map(|m| m.to_string()),
            Ok("3c:fd:fe:9c:87:60".to_owned())
        );
        assert!(MacAddr::parse_bootif("3c:fd:fe:9c:87:60").is_ok());
        assert!(MacAddr::parse_bootif("06-3c-fd-fe-9c-87-60").is_err());
    }

    #[test]
    fn serde_uses_canonical_form() {
        let m = MacAddr::new([0x3c, 0xfd, 0xfe, 0x9c, 0x87, 0x60]);
        let json = serde_json::to_string(&m).ok();
        assert_eq!(json.as_deref(), Some("\"3c:fd:fe:9c:87:60\""));
        let back: Result<MacAddr, _> = serde_json::from_str("\"3C-FD-FE-9C-87-60\"");
        assert_eq!(back.ok(), Some(m));
        assert!(serde_json::from_str::<MacAddr>("42").is_err());
    }
}
