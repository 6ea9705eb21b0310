//! `events.jsonl`: every event, as it happened, one JSON object a line.
//! The record a later `status`, `report` or `resume` reads, so it is the
//! first reporter an event reaches. Its lines are written by the state
//! writer's thread, so a slow disk never holds up the runner's.

use std::fs::File;

use super::reporter::Reporter;
use super::Stamped;
use crate::state::writer::{LogId, Writer};

/// The run's append-only event log.
pub struct LogReporter {
    writer: Writer,
    id: LogId,
}

impl LogReporter {
    pub fn new(writer: &Writer, file: File) -> Self {
        Self {
            writer: writer.clone(),
            id: writer.adopt(file),
        }
    }
}

impl Reporter for LogReporter {
    /// A log that cannot be written is dropped by the writer rather than
    /// stopping the run (the terminal still shows the events).
    fn report(&mut self, stamped: &Stamped<'_>) {
        let mut line = serde_json::to_vec(stamped).unwrap_or_default();
        line.push(b'\n');
        self.writer.append(self.id, line);
    }
}
