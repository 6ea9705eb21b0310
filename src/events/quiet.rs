//! `--quiet`: only what must not wait for the end (warnings, findings,
//! escalation banners), then the end summary.

use super::colour::Palette;
use super::reporter::{Reporter, RunEnd, Sink};
use super::sanitize::{sanitize_for, Destination};
use super::screen::Labels;
use super::{Event, Stamped};

pub struct QuietReporter {
    labels: Labels,
    out: Sink,
    palette: Palette,
}

impl QuietReporter {
    pub fn new(labels: Labels, out: Sink) -> Self {
        Self {
            labels,
            out,
            palette: Palette::PLAIN,
        }
    }

    /// Colour the summary (a terminal, or forced).
    pub fn with_palette(mut self, palette: Palette) -> Self {
        self.palette = palette;
        self
    }
}

impl Reporter for QuietReporter {
    fn report(&mut self, stamped: &Stamped<'_>) {
        let shown = matches!(
            stamped.event,
            Event::Warning { .. } | Event::Finding { .. } | Event::Escalation { notify: true, .. }
        );
        if !shown {
            return;
        }
        if let Some(line) = self.labels.line(stamped.event) {
            self.out.line(&sanitize_for(Destination::Line, &line));
        }
    }

    fn finish(&mut self, end: &RunEnd<'_>) {
        super::plain::summary_lines(&self.out, end, self.palette);
    }

    fn prompt(&mut self, text: &str) -> bool {
        super::plain::prompt_lines(&self.out, text);
        true
    }
}
