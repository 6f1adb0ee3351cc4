//! `ramdisk_error` (1.0): a report carrying an `error` fails processing
//! with the ramdisk's message.

use serde_json::Value;

use super::{HookError, ProcessingHook};
use crate::processing::payload::{Data, truthy};

#[derive(Debug)]
pub(super) struct RamdiskError;

impl ProcessingHook for RamdiskError {
    fn name(&self) -> &'static str {
        "ramdisk_error"
    }

    fn before_processing(&self, data: &mut Data) -> Result<(), HookError> {
        match data.get("error") {
            e if truthy(e) => {
                let text = match e {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                Err(HookError(format!("Ramdisk reported error: {text}")))
            }
            _ => Ok(()),
        }
    }
}
