//! The introspection state machine, as ironic-inspector's
//! `introspection_state.py` has it: one pure function, [`next`], says
//! where an event takes a node, and refuses every other move. The store
//! applies a move only if the state is still the one the caller read
//! (compare-and-swap), so two flows never both win.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where one node's introspection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded; the reboot into the ramdisk is not sent yet.
    Starting,
    /// The reboot was sent (or the operator boots the node); waiting for
    /// the ramdisk's report.
    Waiting,
    /// A report was accepted and is being written to Ironic.
    Processing,
    /// Ended without error.
    Finished,
    /// Ended with an error (timeouts and aborts included).
    Error,
    /// An operator asked to stop a waiting node; powering it off.
    Aborting,
    /// Stored data is being processed again.
    Reapplying,
    /// An unknown node reported and is being enrolled in Ironic.
    Enrolling,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Starting,
        State::Waiting,
        State::Processing,
        State::Finished,
        State::Error,
        State::Aborting,
        State::Reapplying,
        State::Enrolling,
    ];

    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Waiting => "waiting",
            State::Processing => "processing",
            State::Finished => "finished",
            State::Error => "error",
            State::Aborting => "aborting",
            State::Reapplying => "reapplying",
            State::Enrolling => "enrolling",
        }
    }

    /// `finished` or `error`: nothing runs for the node any more.
    pub fn is_final(self) -> bool {
        matches!(self, State::Finished | State::Error)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`State::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown introspection state {0:?}; known states: starting, waiting, processing, finished, error, aborting, reapplying, enrolling"
)]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.chars().take(40).collect()))
    }
}

/// What happens to a node; [`next`] maps (state, event) to a new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// An operator starts (or restarts) an introspection.
    Start,
    /// The reboot into the ramdisk was sent.
    Wait,
    /// A ramdisk report was accepted.
    Process,
    /// Processing (or reapplying) ended well.
    Finish,
    /// Something failed.
    Fail,
    /// The deadline passed.
    Timeout,
    /// An operator aborts a waiting node.
    Abort,
    /// The abort's power-off is done.
    AbortEnd,
    /// Stored data is processed again.
    Reapply,
    /// A report could not be written to Ironic for a transient reason
    /// (its retry budget spent): the node waits for the ramdisk's retry.
    Requeue,
    /// A report no node matched was enrolled in Ironic (auto-discovery).
    Enroll,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Wait => "wait",
            Transition::Process => "process",
            Transition::Finish => "finish",
            Transition::Fail => "error",
            Transition::Timeout => "timeout",
            Transition::Abort => "abort",
            Transition::AbortEnd => "abort_end",
            Transition::Reapply => "reapply",
            Transition::Requeue => "requeue",
            Transition::Enroll => "enroll",
        }
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} an introspection in state {from}", event = .event.as_str(), from = .from.map_or("(none)", State::as_str))]
pub struct IllegalTransition {
    /// `None`: the node has no introspection yet.
    pub from: Option<State>,
    pub event: Transition,
}

/// Where `event` takes a node in `from` (`None`: never introspected).
pub fn next(from: Option<State>, event: Transition) -> Result<State, IllegalTransition> {
    use State::*;
    use Transition as T;
    let to = match (from, event) {
        (None | Some(Finished | Error | Waiting), T::Start) => Some(Starting),
        (None | Some(Finished | Error), T::Enroll) => Some(Enrolling),
        (Some(Starting), T::Wait) => Some(Waiting),
        (Some(Waiting | Enrolling), T::Process) => Some(Processing),
        (Some(Processing | Reapplying), T::Finish) => Some(Finished),
        (Some(Processing), T::Requeue) => Some(Waiting),
        (Some(Waiting), T::Abort) => Some(Aborting),
        (Some(Aborting), T::AbortEnd | T::Timeout) => Some(Error),
        (Some(Finished | Error), T::Reapply) => Some(Reapplying),
        (Some(Starting | Waiting | Processing | Reapplying | Enrolling | Aborting), T::Fail) => Some(Error),
        (Some(Starting | Waiting | Processing | Reapplying | Enrolling), T::Timeout) => Some(Error),
        _ => None,
    };
    to.ok_or(IllegalTransition { from, event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;
    use Transition as T;

    const EVENTS: [Transition; 11] = [
        T::Start,
        T::Wait,
        T::Process,
        T::Finish,
        T::Fail,
        T::Timeout,
        T::Abort,
        T::AbortEnd,
        T::Reapply,
        T::Requeue,
        T::Enroll,
    ];

    /// Every legal move, written out; anything not here must be refused.
    const LEGAL: &[(Option<State>, Transition, State)] = &[
        (None, T::Start, Starting),
        (Some(Finished), T::Start, Starting),
        (Some(Error), T::Start, Starting),
        (Some(Waiting), T::Start, Starting),
        (None, T::Enroll, Enrolling),
        (Some(Finished), T::Enroll, Enrolling),
        (Some(Error), T::Enroll, Enrolling),
        (Some(Starting), T::Wait, Waiting),
        (Some(Waiting), T::Process, Processing),
        (Some(Enrolling), T::Process, Processing),
        (Some(Processing), T::Finish, Finished),
        (Some(Processing), T::Requeue, Waiting),
        (Some(Reapplying), T::Finish, Finished),
        (Some(Waiting), T::Abort, Aborting),
        (Some(Aborting), T::AbortEnd, Error),
        (Some(Aborting), T::Timeout, Error),
        (Some(Aborting), T::Fail, Error),
        (Some(Finished), T::Reapply, Reapplying),
        (Some(Error), T::Reapply, Reapplying),
        (Some(Starting), T::Fail, Error),
        (Some(Waiting), T::Fail, Error),
        (Some(Processing), T::Fail, Error),
        (Some(Reapplying), T::Fail, Error),
        (Some(Enrolling), T::Fail, Error),
        (Some(Starting), T::Timeout, Error),
        (Some(Waiting), T::Timeout, Error),
        (Some(Processing), T::Timeout, Error),
        (Some(Reapplying), T::Timeout, Error),
        (Some(Enrolling), T::Timeout, Error),
    ];

    #[test]
    fn every_pair_of_state_and_event_is_legal_exactly_when_listed() {
        let froms = std::iter::once(None).chain(State::ALL.into_iter().map(Some));
        let mut checked = 0;
        for from in froms {
            for event in EVENTS {
                let expected = LEGAL
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (next(from, event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from:?} --{event:?}->"),
                    (Err(e), None) => assert_eq!(e, IllegalTransition { from, event }),
                    (got, want) => panic!("{from:?} --{event:?}-> gave {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 9 * EVENTS.len());
    }

    #[test]
    fn a_report_for_a_starting_node_is_refused() {
        // The start flow has not sent its reboot: processing now would race it.
        assert!(next(Some(Starting), T::Process).is_err());
    }

    #[test]
    fn final_states_only_restart_reapply_or_enroll() {
        for s in [Finished, Error] {
            assert!(s.is_final());
            for e in EVENTS {
                let ok = next(Some(s), e).is_ok();
                assert_eq!(ok, matches!(e, T::Start | T::Reapply | T::Enroll), "{s} {e:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
        }
        assert!("Waiting".parse::<State>().is_err());
    }

    #[test]
    fn illegal_moves_say_what_and_where() {
        let e = next(Some(Starting), T::Process).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("cannot process an introspection in state starting")
        );
        let e = next(None, T::Finish).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("cannot finish an introspection in state (none)")
        );
    }
}
