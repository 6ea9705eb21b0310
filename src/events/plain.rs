//! CI logs and pipes: one timestamped line per event on stderr, never
//! progress-bar escape codes, then the end summary.

use super::reporter::{Reporter, RunEnd, Sink};
use super::sanitize::{sanitize_for, Destination};
use super::screen::Labels;
use super::Stamped;

pub struct PlainReporter {
    labels: Labels,
    out: Sink,
}

impl PlainReporter {
    pub fn new(labels: Labels, out: Sink) -> Self {
        Self { labels, out }
    }
}

impl Reporter for PlainReporter {
    fn report(&mut self, stamped: &Stamped<'_>) {
        if let Some(line) = self.labels.line(stamped.event) {
            let time = stamped.ts.get(11..19).unwrap_or("");
            self.out.line(&format!(
                "{time} {}",
                sanitize_for(Destination::Line, &line)
            ));
        }
    }

    fn finish(&mut self, end: &RunEnd<'_>) {
        summary_lines(&self.out, end);
    }

    fn prompt(&mut self, text: &str) -> bool {
        prompt_lines(&self.out, text);
        true
    }
}

/// The end summary after a blank line, each line escaped.
pub(super) fn summary_lines(out: &Sink, end: &RunEnd<'_>) {
    out.line("");
    for line in end.summary.lines() {
        out.line(&sanitize_for(Destination::Line, &line));
    }
}

/// A prompt's lines, each escaped (the question is a worker's text).
pub(super) fn prompt_lines(out: &Sink, text: &str) {
    for line in text.lines() {
        out.line(&sanitize_for(Destination::Line, line));
    }
}
