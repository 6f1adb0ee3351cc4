//! The `none` backend: accepts every state and changes nothing, for
//! installs that filter DHCP elsewhere. Status reports what it was given.

use common::FilterState;

use super::{Applied, Backend, BackendError, Change};

#[derive(Debug, Default)]
pub struct Noop {
    held: Option<FilterState>,
}

impl Backend for Noop {
    fn name(&self) -> &'static str {
        "none"
    }

    fn apply(&mut self, state: &Applied, _change: Change<'_>) -> Result<u64, BackendError> {
        self.held = Some(FilterState {
            interfaces: state.interfaces.clone(),
            mode: state.mode,
            macs: state.macs.iter().copied().collect(),
        });
        Ok(0)
    }

    fn read(&self) -> Result<Option<FilterState>, BackendError> {
        Ok(self.held.clone())
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        self.held = None;
        Ok(())
    }
}
