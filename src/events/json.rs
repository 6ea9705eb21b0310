//! `--json`: the events as JSON lines on stdout, which this reporter owns
//! alone; nothing else may write there, or a consumer's parser breaks.

use super::reporter::{Reporter, Sink};
use super::sanitize::{sanitize_for, Destination};
use super::Stamped;

pub struct JsonReporter {
    out: Sink,
}

impl JsonReporter {
    pub fn new(out: Sink) -> Self {
        Self { out }
    }
}

impl Reporter for JsonReporter {
    /// serde escapes every string (a worker's newline stays inside it);
    /// the rest of what a terminal would obey is escaped on the way out.
    fn report(&mut self, stamped: &Stamped<'_>) {
        if let Ok(line) = serde_json::to_string(stamped) {
            self.out.line(&sanitize_for(Destination::Json, &line));
        }
    }

    /// A question goes to the person on stderr, never into the stream.
    fn prompt(&mut self, text: &str) -> bool {
        super::plain::prompt_lines(&Sink::Stderr, text);
        true
    }
}
