//! `events.jsonl`: every event, as it happened, one JSON object a line.
//! The record a later `status`, `report` or `resume` reads, so it is the
//! first reporter an event reaches.

use std::fs::File;

use super::reporter::Reporter;
use super::Stamped;

/// The run's append-only event log.
pub struct LogReporter {
    file: Option<File>,
}

impl LogReporter {
    pub fn new(file: File) -> Self {
        Self { file: Some(file) }
    }
}

impl Reporter for LogReporter {
    /// A log that cannot be written is dropped rather than stopping the
    /// run (the terminal still shows the events).
    fn report(&mut self, stamped: &Stamped<'_>) {
        if let Some(file) = &mut self.file {
            if crate::state::append_json_line(file, stamped).is_err() {
                self.file = None;
            }
        }
    }
}
