//! The daemon's vocabulary, free of I/O: which node an introspection is
//! about, the introspection state machine, the events it publishes, and
//! time. Everything above (store, flows, API) speaks in these types.

pub mod event;
pub mod node;
pub mod state;
pub mod time;

pub use event::StateChange;
pub use node::{NodeId, NodeRef};
pub use state::{IllegalTransition, State, Transition, next};
pub use time::Timestamp;
