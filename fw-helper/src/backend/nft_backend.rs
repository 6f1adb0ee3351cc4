//! The nftables backend: sends the batches `nft.rs` builds over the
//! helper's own netlink socket, sized sets and the watch muted for whole
//! states, and reads the table back.

use std::collections::BTreeSet;
use std::time::Instant;

use common::{FilterState, MacAddr};

use super::netlink::{NetlinkError, Socket};
use super::nft::{
    Matching, Meta0, PlannedBatch, TABLE, delta_batch, refill_batch, replace_batch, set_name, teardown_batch,
};
use super::{Applied, Backend, BackendError, Change, set_size, watch};

/// The nftables backend.
#[derive(Debug, Default)]
pub struct Nftables {
    pub matching: Matching,
    /// The size this process last created the set with; `None` before
    /// (a set made by an earlier helper may have another size, or none).
    capacity: Option<usize>,
}

impl Nftables {
    pub fn new(matching: Matching) -> Self {
        Nftables {
            matching,
            capacity: None,
        }
    }

    /// Recreates the table, the set sized for `state` with room to grow.
    fn replace(&mut self, state: &Applied) -> Result<(), BackendError> {
        let capacity = set_size::capacity_for(state.macs.len());
        self.capacity = None;
        self.send(replace_batch(state, self.matching, capacity)?)?;
        self.capacity = usize::try_from(capacity).ok();
        Ok(())
    }

    /// The whole state: the set refilled when the table has the same shape
    /// and room, else the table replaced.
    fn full(&mut self, state: &Applied, previous: Option<&Applied>) -> Result<(), BackendError> {
        let same_shape = previous.is_some_and(|p| p.mode == state.mode && p.interfaces == state.interfaces);
        if !(same_shape && self.fits(state.macs.len())) {
            return self.replace(state);
        }
        match self.send(refill_batch(state)?) {
            Ok(()) => Ok(()),
            // The table vanished behind our back (an admin's
            // `nft flush ruleset`): rebuild it.
            Err(BackendError::Rejected { .. }) => self.replace(state),
            Err(e) => Err(e),
        }
    }

    /// Whether `n` elements fit the set as this process created it.
    fn fits(&self, n: usize) -> bool {
        self.capacity.is_some_and(|c| n <= c)
    }

    fn send(&self, plan: PlannedBatch) -> Result<(), BackendError> {
        let sock = Socket::open().map_err(BackendError::Netlink)?;
        // The change notifications of this transaction carry this port id:
        // the watch must not take our own changes for tampering.
        super::watch::note_own_portid(sock.portid().map_err(BackendError::Netlink)?);
        let objects = plan.objects.clone();
        match sock.transact(plan.bytes) {
            Ok(()) => Ok(()),
            Err(NetlinkError::Rejected { seq, errno }) => {
                let object = PlannedBatch {
                    bytes: Vec::new(),
                    objects,
                }
                .object_for(seq)
                .map_or_else(|| format!("message {seq}"), |o| format!("{o:?}"));
                Err(BackendError::Rejected { object, errno })
            }
            Err(e) => Err(BackendError::Netlink(e)),
        }
    }
}

impl Backend for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn apply(&mut self, state: &Applied, change: Change<'_>) -> Result<u64, BackendError> {
        let start = Instant::now();
        match change {
            Change::Full { previous } => {
                // The watch need not hear this one (see watch::Quiet).
                let quiet = watch::Quiet::begin();
                let result = self.full(state, previous);
                if let Some(q) = quiet
                    && !q.end(result.is_ok())
                    && result.is_ok()
                {
                    // Someone else's change went unheard: everything again,
                    // with the watch listening.
                    self.replace(state)?;
                }
                result?;
            }
            Change::Delta { added, removed } => {
                if added.is_empty() && removed.is_empty() {
                    return Ok(0);
                }
                if self.capacity.is_some() && !self.fits(state.macs.len()) {
                    // The set is full: a bigger one, in one transaction.
                    self.replace(state)?;
                } else {
                    match self.send(delta_batch(state.mode, added, removed)?) {
                        Ok(()) => {}
                        // A set of unknown size (made by an earlier helper)
                        // that is full.
                        Err(BackendError::Rejected {
                            errno: nix::errno::Errno::ENFILE,
                            ..
                        }) => self.replace(state)?,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn read(&self) -> Result<Option<FilterState>, BackendError> {
        let tables = rustables::list_tables().map_err(|e| BackendError::Query(e.to_string()))?;
        let Some(ours) = tables
            .iter()
            // Only the name is visible here; the userdata below confirms the
            // table is ours (no other program writes our JSON into it).
            .find(|t| t.get_name().is_some_and(|n| n == TABLE))
        else {
            return Ok(None);
        };
        let meta: Meta0 = ours
            .get_userdata()
            .and_then(|u| serde_json::from_slice(u).ok())
            .ok_or_else(|| {
                BackendError::Query(format!(
                    "table inet {TABLE} exists but carries no readable metadata"
                ))
            })?;
        let macs = read_set(set_name(meta.mode))?;
        Ok(Some(FilterState {
            interfaces: meta.interfaces,
            mode: meta.mode,
            macs: macs.into_iter().collect(),
        }))
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        self.send(teardown_batch())
    }
}

/// Dumps of a set this many times at most, [`DUMP_RETRY_PAUSE`] apart,
/// before an inconsistent one is an error.
const DUMP_ATTEMPTS: u32 = 20;
const DUMP_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Every element of our set, from a consistent dump.
///
/// A large hash set keeps growing its table in a kernel worker after the
/// batch that filled it; a dump taken meanwhile resumes each part by
/// skipping the elements already sent in a changed order, and so repeats
/// some elements and misses as many (seen here: 6 073 of 100 000 right
/// after a full sync). A dump without repeats is exact (it always yields
/// as many keys as the set holds), so repeats mean: dump again.
fn read_set(set: &str) -> Result<BTreeSet<MacAddr>, BackendError> {
    let sock = Socket::open().map_err(BackendError::Netlink)?;
    let mut repeated = 0;
    for attempt in 1..=DUMP_ATTEMPTS {
        let keys = sock.dump_set_keys(TABLE, set).map_err(BackendError::Netlink)?;
        let macs;
        (macs, repeated) = distinct(&keys)?;
        if repeated == 0 {
            return Ok(macs);
        }
        tracing::debug!(
            attempt,
            repeated,
            "set dump taken while the kernel resized the set; again"
        );
        std::thread::sleep(DUMP_RETRY_PAUSE);
    }
    Err(BackendError::Query(format!(
        "no consistent dump of set {set} after {DUMP_ATTEMPTS} attempts ({repeated} elements repeated in the last)"
    )))
}

/// The distinct MACs among dumped keys, and how many keys repeated one.
fn distinct(keys: &[Vec<u8>]) -> Result<(BTreeSet<MacAddr>, usize), BackendError> {
    let mut macs = BTreeSet::new();
    for k in keys {
        let octets: [u8; 6] = k
            .as_slice()
            .try_into()
            .map_err(|_| BackendError::Query(format!("set element of {} bytes, expected 6", k.len())))?;
        macs.insert(MacAddr::new(octets));
    }
    let repeated = keys.len() - macs.len();
    Ok((macs, repeated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_with_repeated_keys_is_recognised() -> Result<(), BackendError> {
        let k = |b: u8| vec![2, 0, 0, 0, 0, b];
        let (macs, repeated) = distinct(&[k(1), k(2), k(3)])?;
        assert_eq!((macs.len(), repeated), (3, 0));
        // What a dump during a resize looks like: as many keys, one twice.
        let (macs, repeated) = distinct(&[k(1), k(2), k(2)])?;
        assert_eq!((macs.len(), repeated), (2, 1));
        assert!(distinct(&[vec![1, 2, 3]]).is_err());
        Ok(())
    }
}
