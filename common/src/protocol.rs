//! The wire protocol between `ironic-discoverd` and `ironic-discoverd-fw-helper`.
//!
//! The daemon owns the *desired* filter state and the helper owns the kernel,
//! so the daemon never sends rules, only state. Every message is one frame:
//! a 4-byte big-endian payload length followed by that many bytes of JSON.
//! JSON keeps the socket debuggable with `socat`, and at 100 k MACs the
//! encode + decode cost (a few ms) is small next to the kernel transaction.
//!
//! A connection starts with [`RequestBody::Hello`]; the helper refuses any
//! other request until the versions were agreed. Each request carries an id
//! that the reply echoes, so a client can match replies and log them.
//! Requests are answered one at a time, in order.
//!
//! Limits ([`MAX_FRAME_LEN`], [`MAX_MACS`], [`MAX_INTERFACES`]) are checked
//! by both sides; a request over a limit gets a typed [`ErrorCode`] and
//! changes nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::iface::InterfaceName;
use crate::mac::MacAddr;

/// The protocol version this build speaks. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest accepted frame payload, in bytes. A full sync of [`MAX_MACS`]
/// addresses encodes to about 20 bytes per MAC (≈ 5 MiB), so this leaves
/// headroom without letting a peer make us buffer unbounded input.
pub const MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Most MAC addresses one request may carry. A deployment with more Ironic
/// ports than this is far beyond anything discoverd was used for; the limit
/// exists so that memory use on both sides is bounded and known.
pub const MAX_MACS: usize = 262_144;

/// Most interfaces one filter may cover.
pub const MAX_INTERFACES: usize = 16;

/// Length of the frame header (big-endian `u32` payload length).
pub const HEADER_LEN: usize = 4;

/// How many MACs a `Debug` rendering lists before eliding the rest.
const DEBUG_MACS: usize = 4;

/// What the filter does with the MACs in the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMode {
    /// Drop DHCP from the listed MACs, let everything else through.
    /// This is discoverd's semantics: the list is "Ironic ports that are not
    /// being introspected".
    Deny,
    /// Drop DHCP from every MAC except the listed ones.
    Allow,
}

impl fmt::Display for FilterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterMode::Deny => "deny",
            FilterMode::Allow => "allow",
        })
    }
}

impl std::str::FromStr for FilterMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(FilterMode::Deny),
            "allow" => Ok(FilterMode::Allow),
            other => Err(format!("unknown filter mode {other:?}: expected deny or allow")),
        }
    }
}

/// The complete desired filter: which interfaces, which mode, which MACs.
/// Applying the same state twice is a no-op.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterState {
    /// Interfaces whose incoming DHCP is filtered (the dnsmasq interface).
    pub interfaces: Vec<InterfaceName>,
    pub mode: FilterMode,
    /// The set the mode applies to. Order and duplicates do not matter.
    pub macs: Vec<MacAddr>,
}

impl fmt::Debug for FilterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterState")
            .field("interfaces", &self.interfaces)
            .field("mode", &self.mode)
            .field("macs", &MacList(&self.macs))
            .finish()
    }
}

/// Renders a MAC list as its length plus the first few entries, so that a
/// request with 100 k MACs logs as one short line.
pub struct MacList<'a>(pub &'a [MacAddr]);

impl fmt::Debug for MacList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MACs [", self.0.len())?;
        for (i, m) in self.0.iter().take(DEBUG_MACS).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        if self.0.len() > DEBUG_MACS {
            f.write_str(", …")?;
        }
        f.write_str("]")
    }
}

/// A request from the daemon to the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the reply.
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
}

/// What the daemon asks for.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RequestBody {
    /// Must be the first request on a connection.
    Hello { version: u32 },
    /// Replace the whole filter with this state, atomically.
    Sync(FilterState),
    /// Add MACs to the set of the last synced state.
    Add { macs: Vec<MacAddr> },
    /// Remove MACs from the set of the last synced state. Absent ones are ignored.
    Remove { macs: Vec<MacAddr> },
    /// Report what is applied in the kernel now.
    Status,
    /// Remove the helper's table from the kernel.
    Teardown,
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Hello { version } => f.debug_struct("Hello").field("version", version).finish(),
            RequestBody::Sync(state) => f.debug_tuple("Sync").field(state).finish(),
            RequestBody::Add { macs } => f.debug_struct("Add").field("macs", &MacList(macs)).finish(),
            RequestBody::Remove { macs } => f.debug_struct("Remove").field("macs", &MacList(macs)).finish(),
            RequestBody::Status => f.write_str("Status"),
            RequestBody::Teardown => f.write_str("Teardown"),
        }
    }
}

impl RequestBody {
    /// The operation's name as it appears on the wire, for logs and metrics.
    pub fn op(&self) -> &'static str {
        match self {
            RequestBody::Hello { .. } => "hello",
            RequestBody::Sync(_) => "sync",
            RequestBody::Add { .. } => "add",
            RequestBody::Remove { .. } => "remove",
            RequestBody::Status => "status",
            RequestBody::Teardown => "teardown",
        }
    }

    /// Checks every limit and every MAC. The helper calls this before it
    /// touches anything; the daemon calls it before sending, so that a bad
    /// state is caught where it was made.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let macs = match self {
            RequestBody::Hello { version } if *version != PROTOCOL_VERSION => {
                return Err(ProtocolError::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "protocol version {version} is not supported, this side speaks {PROTOCOL_VERSION}"
                    ),
                ));
            }
            RequestBody::Sync(state) => {
                if state.interfaces.is_empty() {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidInterface,
                        "a filter needs at least one interface",
                    ));
                }
                if state.interfaces.len() > MAX_INTERFACES {
                    return Err(ProtocolError::new(
                        ErrorCode::TooManyInterfaces,
                        format!(
                            "{} interfaces in one filter, the limit is {MAX_INTERFACES}",
                            state.interfaces.len()
                        ),
                    ));
                }
                &state.macs
            }
            RequestBody::Add { macs } | RequestBody::Remove { macs } => macs,
            _ => return Ok(()),
        };
        if macs.len() > MAX_MACS {
            return Err(ProtocolError::new(
                ErrorCode::TooManyMacs,
                format!("{} MACs in one request, the limit is {MAX_MACS}", macs.len()),
            ));
        }
        if let Some(bad) = macs.iter().find(|m| !m.is_unicast()) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidMac,
                format!("MAC {bad} is not a unicast address and cannot be filtered"),
            ));
        }
        Ok(())
    }
}

/// The helper's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the request this answers; 0 when the request could not be
    /// read far enough to know its id.
    pub id: u64,
    #[serde(flatten)]
    pub body: ReplyBody,
}

/// What the helper answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReplyBody {
    /// Versions agreed.
    Hello {
        version: u32,
        /// The backend in use: `nftables`, `iptables` or `none`.
        backend: String,
    },
    /// The kernel now holds this state (for sync, add and remove).
    Applied(AppliedSummary),
    /// Answer to [`RequestBody::Status`].
    Status(StatusReport),
    /// The helper's table is gone.
    TornDown,
    /// Nothing was changed.
    Error(ProtocolError),
}

/// What a successful change left in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSummary {
    /// Distinct MACs in the set after the change.
    pub mac_count: usize,
    /// Bumped by every applied change since the helper started.
    pub generation: u64,
    /// Time the kernel transaction took, in microseconds.
    pub apply_micros: u64,
}

/// The helper's view of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub backend: String,
    /// The helper's table as read back from the kernel, or `None` when it
    /// does not exist (fresh boot, or after teardown).
    pub applied: Option<FilterState>,
    /// 0 until the first change this helper process applied.
    pub generation: u64,
}

/// Machine-readable reason for a refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or its JSON could not be read.
    Malformed,
    /// The frame is larger than [`MAX_FRAME_LEN`].
    FrameTooLarge,
    UnsupportedVersion,
    /// A request other than `hello` came before `hello`.
    HelloRequired,
    InvalidMac,
    InvalidInterface,
    TooManyMacs,
    TooManyInterfaces,
    /// The interface is not one the helper was configured to manage.
    InterfaceNotAllowed,
    /// `add`/`remove` before any `sync`: there is no mode or interface yet.
    NotSynced,
    /// The kernel refused the change; nothing was applied.
    Kernel,
    /// Anything else on the helper's side.
    Internal,
}

/// A typed refusal, with a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge { len: usize },
    #[error("empty frame")]
    Empty,
    #[error("malformed frame payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("failed to read or write a frame: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The protocol error code a peer should receive for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::Io(_) => ErrorCode::Internal,
            _ => ErrorCode::Malformed,
        }
    }
}

/// Encodes a message as one frame (header + JSON).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    serde_json::to_writer(&mut out, msg)?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge { len })?;
    out[..HEADER_LEN].copy_from_slice(&len32.to_be_bytes());
    Ok(out)
}

/// Reads the payload length from a frame header and checks it.
pub fn payload_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        Err(FrameError::Empty)
    } else if len > MAX_FRAME_LEN {
        Err(FrameError::TooLarge { len })
    } else {
        Ok(len)
    }
}

/// Decodes one complete frame from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame, and otherwise
/// the message and the number of bytes it used.
pub fn decode<T: serde::de::DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(header);
    let len = payload_len(h)?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(payload)?;
    Ok(Some((msg, HEADER_LEN + len)))
}

/// Async frame I/O over tokio streams.
#[cfg(feature = "tokio")]
pub mod io {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::{FrameError, HEADER_LEN, payload_len};

    /// Reads one frame's payload. `Ok(None)` means the peer closed the
    /// connection cleanly between frames.
    pub async fn read_payload<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            let n = r.read(&mut header[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            got += n;
        }
        let len = payload_len(header)?;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
        Ok(Some(payload))
    }

    /// Reads and decodes one frame.
    pub async fn read_frame<T, R>(r: &mut R) -> Result<Option<T>, FrameError>
    where
        T: serde::de::DeserializeOwned,
        R: AsyncRead + Unpin,
    {
        match read_payload(r).await? {
            Some(p) => Ok(Some(serde_json::from_slice(&p)?)),
            None => Ok(None),
        }
    }

    /// Encodes and writes one frame, then flushes.
    pub async fn write_frame<T, W>(w: &mut W, msg: &T) -> Result<(), FrameError>
    where
        T: serde::Serialize,
        W: AsyncWrite + Unpin,
    {
        let bytes = super::encode(msg)?;
        w.write_all(&bytes).await?;
        w.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mac(i: u32) -> MacAddr {
        let b = i.to_be_bytes();
        MacAddr::new([0x02, 0x00, b[0], b[1], b[2], b[3]])
    }

    fn iface(n: &str) -> InterfaceName {
        InterfaceName::new(n).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sample_requests() -> Vec<RequestBody> {
        vec![
            RequestBody::Hello {
                version: PROTOCOL_VERSION,
            },
            RequestBody::Sync(FilterState {
                interfaces: vec![iface("br-ctlplane"), iface("eth1")],
                mode: FilterMode::Deny,
                macs: (0..5).map(mac).collect(),
            }),
            RequestBody::Sync(FilterState {
                interfaces: vec![iface("veth0")],
                mode: FilterMode::Allow,
                macs: vec![],
            }),
            RequestBody::Add { macs: vec![mac(7)] },
            RequestBody::Remove {
                macs: vec![mac(7), mac(8)],
            },
            RequestBody::Status,
            RequestBody::Teardown,
        ]
    }

    fn sample_replies() -> Vec<ReplyBody> {
        vec![
            ReplyBody::Hello {
                version: PROTOCOL_VERSION,
                backend: "nftables".into(),
            },
            ReplyBody::Applied(AppliedSummary {
                mac_count: 3,
                generation: 9,
                apply_micros: 1234,
            }),
            ReplyBody::Status(StatusReport {
                backend: "iptables".into(),
                applied: Some(FilterState {
                    interfaces: vec![iface("eth0")],
                    mode: FilterMode::Allow,
                    macs: vec![mac(1)],
                }),
                generation: 2,
            }),
            ReplyBody::Status(StatusReport {
                backend: "none".into(),
                applied: None,
                generation: 0,
            }),
            ReplyBody::TornDown,
            ReplyBody::Error(ProtocolError::new(ErrorCode::InvalidMac, "bad")),
        ]
    }

    #[test]
    fn every_request_round_trips() -> Result<(), FrameError> {
        for (i, body) in sample_requests().into_iter().enumerate() {
            let req = Request {
                id: i as u64 + 1,
                body,
            };
            let bytes = encode(&req)?;
            let (back, used): (Request, usize) = decode(&bytes)?.ok_or(FrameError::Truncated)?;
            assert_eq!(back, req);
            assert_eq!(used, bytes.len());
        }
        Ok(())
    }

    #[test]
    fn every_reply_round_trips() -> Result<(), FrameError> {
        for (i, body) in sample_replies().into_iter().enumerate() {
            let rep = Reply { id: i as u64, body };
            let bytes = encode(&rep)?;
            let (back, _): (Reply, usize) = decode(&bytes)?.ok_or(FrameError::Truncated)?;
            assert_eq!(back, rep);
        }
        Ok(())
    }

    #[test]
    fn wire_form_is_stable() -> Result<(), serde_json::Error> {
        let req = Request {
            id: 3,
            body: RequestBody::Add { macs: vec![mac(1)] },
        };
        assert_eq!(
            serde_json::to_string(&req)?,
            r#"{"id":3,"op":"add","macs":["02:00:00:00:00:01"]}"#
        );
        let rep = Reply {
            id: 3,
            body: ReplyBody::Error(ProtocolError::new(ErrorCode::NotSynced, "x")),
        };
        assert_eq!(
            serde_json::to_string(&rep)?,
            r#"{"id":3,"result":"error","code":"not_synced","message":"x"}"#
        );
        Ok(())
    }

    #[test]
    fn mac_count_limit_is_enforced_at_the_boundary() {
        let at_limit = RequestBody::Add {
            macs: (0..MAX_MACS as u32).map(mac).collect(),
        };
        assert_eq!(at_limit.validate(), Ok(()));
        let over = RequestBody::Remove {
            macs: (0..=MAX_MACS as u32).map(mac).collect(),
        };
        assert_eq!(over.validate().map_err(|e| e.code), Err(ErrorCode::TooManyMacs));
        let sync_over = RequestBody::Sync(FilterState {
            interfaces: vec![iface("eth0")],
            mode: FilterMode::Deny,
            macs: (0..=MAX_MACS as u32).map(mac).collect(),
        });
        assert_eq!(
            sync_over.validate().map_err(|e| e.code),
            Err(ErrorCode::TooManyMacs)
        );
    }

    #[test]
    fn a_full_sync_at_the_mac_limit_fits_in_one_frame() -> Result<(), FrameError> {
        let req = Request {
            id: 1,
            body: RequestBody::Sync(FilterState {
                interfaces: vec![iface("br-ctlplane")],
                mode: FilterMode::Deny,
                macs: (0..MAX_MACS as u32).map(mac).collect(),
            }),
        };
        let bytes = encode(&req)?;
        assert!(bytes.len() <= MAX_FRAME_LEN, "{} bytes", bytes.len());
        Ok(())
    }

    #[test]
    fn interface_limits() {
        let none = RequestBody::Sync(FilterState {
            interfaces: vec![],
            mode: FilterMode::Deny,
            macs: vec![],
        });
        assert_eq!(
            none.validate().map_err(|e| e.code),
            Err(ErrorCode::InvalidInterface)
        );
        let names: Vec<String> = (0..=MAX_INTERFACES).map(|i| format!("eth{i}")).collect();
        let many = RequestBody::Sync(FilterState {
            interfaces: names.iter().map(|n| iface(n)).collect(),
            mode: FilterMode::Deny,
            macs: vec![],
        });
        assert_eq!(
            many.validate().map_err(|e| e.code),
            Err(ErrorCode::TooManyInterfaces)
        );
        let ok = RequestBody::Sync(FilterState {
            interfaces: names[..MAX_INTERFACES].iter().map(|n| iface(n)).collect(),
            mode: FilterMode::Deny,
            macs: vec![],
        });
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn non_unicast_and_bad_version_are_refused() {
        let multicast = RequestBody::Add {
            macs: vec![MacAddr::new([1, 0, 0x5e, 0, 0, 1])],
        };
        assert_eq!(
            multicast.validate().map_err(|e| e.code),
            Err(ErrorCode::InvalidMac)
        );
        let v = RequestBody::Hello { version: 99 };
        assert_eq!(
            v.validate().map_err(|e| e.code),
            Err(ErrorCode::UnsupportedVersion)
        );
    }

    #[test]
    fn oversized_and_empty_headers_are_refused_before_reading_the_payload() {
        let over = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(payload_len(over), Err(FrameError::TooLarge { .. })));
        assert!(matches!(payload_len([0; 4]), Err(FrameError::Empty)));
        assert_eq!(
            payload_len((MAX_FRAME_LEN as u32).to_be_bytes()).ok(),
            Some(MAX_FRAME_LEN)
        );
        let mut buf = over.to_vec();
        buf.extend_from_slice(b"{}");
        assert!(matches!(
            decode::<Request>(&buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_wrong_shapes_are_typed_errors() {
        for payload in [
            &b"not json"[..],
            b"{\"id\":1,\"op\":\"explode\"}",
            b"{\"id\":1,\"op\":\"add\",\"macs\":[\"zz:zz:zz:zz:zz:zz\"]}",
            b"{\"id\":-1,\"op\":\"status\"}",
            b"{\"id\":1,\"op\":\"sync\",\"interfaces\":[\"a/b\"],\"mode\":\"deny\",\"macs\":[]}",
            b"{\"id\":1,\"op\":\"sync\",\"interfaces\":[\"eth0\"],\"mode\":\"maybe\",\"macs\":[]}",
            b"[]",
        ] {
            let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(payload);
            let r = decode::<Request>(&frame);
            assert!(
                matches!(&r, Err(e) if e.code() == ErrorCode::Malformed),
                "{:?} gave {:?}",
                String::from_utf8_lossy(payload),
                r.map(|o| o.map(|(m, _)| m))
            );
        }
    }

    #[test]
    fn debug_form_stays_short_for_huge_requests() {
        let req = Request {
            id: 1,
            body: RequestBody::Sync(FilterState {
                interfaces: vec![iface("br-ctlplane")],
                mode: FilterMode::Deny,
                macs: (0..100_000).map(mac).collect(),
            }),
        };
        let text = format!("{req:?}");
        assert!(text.len() < 300, "{text}");
        assert!(text.contains("100000 MACs"), "{text}");
    }

    #[tokio::test]
    async fn async_io_reads_what_it_wrote_and_detects_truncation() -> Result<(), FrameError> {
        let req = Request {
            id: 42,
            body: RequestBody::Status,
        };
        let mut buf = Vec::new();
        io::write_frame(&mut buf, &req).await?;
        let mut rd = &buf[..];
        let back: Option<Request> = io::read_frame(&mut rd).await?;
        assert_eq!(back, Some(req));
        let mut empty: &[u8] = &[];
        assert!(io::read_frame::<Request, _>(&mut empty).await?.is_none());
        let mut cut = &buf[..buf.len() - 1];
        assert!(matches!(
            io::read_frame::<Request, _>(&mut cut).await,
            Err(FrameError::Truncated)
        ));
        let mut half_header = &buf[..2];
        assert!(matches!(
            io::read_frame::<Request, _>(&mut half_header).await,
            Err(FrameError::Truncated)
        ));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any byte string either decodes, asks for more, or gives a typed
        /// error; it never panics, and never claims more bytes than given.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Some((_, used))) = decode::<Request>(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        /// Every prefix of a valid frame is "incomplete", and the full frame decodes.
        #[test]
        fn every_prefix_of_a_frame_is_incomplete(ids in 0u64..u64::MAX, n in 0usize..40) {
            let req = Request { id: ids, body: RequestBody::Add { macs: (0..n as u32).map(mac).collect() } };
            let bytes = encode(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for cut in 0..bytes.len() {
                let r = decode::<Request>(&bytes[..cut]);
                prop_assert!(matches!(r, Ok(None)), "prefix {} of {}", cut, bytes.len());
            }
            let full = decode::<Request>(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(full.map(|(m, _)| m), Some(req));
        }

        /// Two frames back to back decode one after the other.
        #[test]
        fn frames_are_self_delimiting(a in 0u64..1000, b in 0u64..1000) {
            let mut bytes = encode(&Request { id: a, body: RequestBody::Status })
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            bytes.extend(encode(&Request { id: b, body: RequestBody::Teardown })
                .map_err(|e| TestCaseError::fail(e.to_string()))?);
            let (first, used): (Request, usize) = decode(&bytes)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .ok_or_else(|| TestCaseError::fail("incomplete"))?;
            let (second, _): (Request, usize) = decode(&bytes[used..])
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .ok_or_else(|| TestCaseError::fail("incomplete"))?;
            prop_assert_eq!(first.id, a);
            prop_assert_eq!(second.body, RequestBody::Teardown);
        }

        /// Any string MAC parse either fails with a typed error or round-trips.
        #[test]
        fn mac_parse_round_trips(s in "[0-9a-fA-F:-]{0,20}") {
            if let Ok(m) = MacAddr::parse(&s) {
                prop_assert_eq!(MacAddr::parse(&m.to_string()), Ok(m));
            }
        }
    }
}
