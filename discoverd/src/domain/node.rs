//! Which node an introspection is about: a node's UUID once known, and
//! the reference an API caller gives (a UUID, or a node name from API
//! version 1.5 on).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Ironic node's UUID, the key of everything the daemon stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(uuid::Uuid);

/// A string that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid UUID value")]
pub struct InvalidNodeId;

impl NodeId {
    pub fn new(uuid: uuid::Uuid) -> Self {
        NodeId(uuid)
    }

    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = InvalidNodeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(NodeId).map_err(|_| InvalidNodeId)
    }
}

impl fmt::Display for NodeId {
    /// Ironic's form: lower-case, hyphenated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Longest node name accepted (Ironic's own column is 255).
pub const MAX_NAME_LEN: usize = 255;

/// How a caller names a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeRef {
    Id(NodeId),
    /// A node name, resolved through Ironic.
    Name(String),
}

/// A reference that is neither a UUID nor a usable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNodeRef {
    #[error("Invalid UUID value")]
    NotUuid,
    #[error("Invalid node name: {0}")]
    BadName(&'static str),
}

impl NodeRef {
    /// A UUID only (what discoverd 1.0 and API versions below 1.5 accept).
    pub fn parse_uuid(s: &str) -> Result<Self, InvalidNodeRef> {
        s.parse().map(NodeRef::Id).map_err(|_| InvalidNodeRef::NotUuid)
    }

    /// A UUID or a node name (API 1.5 and later).
    pub fn parse_uuid_or_name(s: &str) -> Result<Self, InvalidNodeRef> {
        if let Ok(id) = s.parse() {
            return Ok(NodeRef::Id(id));
        }
        if s.is_empty() {
            return Err(InvalidNodeRef::BadName("empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(InvalidNodeRef::BadName("longer than 255 bytes"));
        }
        // Ironic's names are host names or RFC 3986 unreserved characters.
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        {
            return Err(InvalidNodeRef::BadName(
                "only letters, digits, '-', '.', '_' and '~' are allowed",
            ));
        }
        Ok(NodeRef::Name(s.to_owned()))
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeRef::Id(id) => id.fmt(f),
            NodeRef::Name(n) => f.write_str(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_lower_case_hyphenated() {
        let id: NodeId = "9F2A0B1C-1111-4222-8333-444455556666".parse().expect("a uuid");
        assert_eq!(id.to_string(), "9f2a0b1c-1111-4222-8333-444455556666");
        assert!("not-a-uuid".parse::<NodeId>().is_err());
    }

    #[test]
    fn references_accept_names_only_when_asked() {
        assert_eq!(NodeRef::parse_uuid("node-1"), Err(InvalidNodeRef::NotUuid));
        assert_eq!(
            NodeRef::parse_uuid_or_name("node-1.rack_2~a"),
            Ok(NodeRef::Name("node-1.rack_2~a".into()))
        );
        assert!(matches!(
            NodeRef::parse_uuid_or_name("9f2a0b1c-1111-4222-8333-444455556666"),
            Ok(NodeRef::Id(_))
        ));
        assert!(NodeRef::parse_uuid_or_name("a b").is_err());
        assert!(NodeRef::parse_uuid_or_name("").is_err());
        assert!(NodeRef::parse_uuid_or_name(&"x".repeat(256)).is_err());
    }
}
