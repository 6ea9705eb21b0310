//! CI logs and pipes: one timestamped line per event on stderr, never
//! progress-bar escape codes, then the end summary.

use super::colour::Palette;
use super::live::event_tone;
use super::reporter::{Reporter, RunEnd, Sink};
use super::sanitize::{sanitize_for, Destination};
use super::screen::Labels;
use super::Stamped;

pub struct PlainReporter {
    labels: Labels,
    out: Sink,
    palette: Palette,
}

impl PlainReporter {
    pub fn new(labels: Labels, out: Sink) -> Self {
        Self {
            labels,
            out,
            palette: Palette::PLAIN,
        }
    }

    /// Colour the lines that say how a task ended, and the summary (a
    /// terminal, or a CI log with `CLICOLOR_FORCE`).
    pub fn with_palette(mut self, palette: Palette) -> Self {
        self.palette = palette;
        self
    }
}

impl Reporter for PlainReporter {
    fn report(&mut self, stamped: &Stamped<'_>) {
        if let Some(line) = self.labels.line(stamped.event) {
            let time = stamped.ts.get(11..19).unwrap_or("");
            let line = sanitize_for(Destination::Line, &line);
            let line = match event_tone(stamped.event) {
                Some(tone) => self.palette.paint(tone, &line),
                None => line,
            };
            self.out.line(&format!("{time} {line}"));
        }
    }

    fn finish(&mut self, end: &RunEnd<'_>) {
        summary_lines(&self.out, end, self.palette);
    }

    fn prompt(&mut self, text: &str) -> bool {
        prompt_lines(&self.out, text);
        true
    }
}

/// The end summary after a blank line, each line escaped.
pub(super) fn summary_lines(out: &Sink, end: &RunEnd<'_>, palette: Palette) {
    out.line("");
    for line in summary_text(end, palette) {
        out.line(&line);
    }
}

/// The end summary's lines, each escaped, then coloured where `palette`
/// has colour.
pub(super) fn summary_text(end: &RunEnd<'_>, palette: Palette) -> Vec<String> {
    end.summary
        .toned_lines()
        .into_iter()
        .map(|(tone, line)| {
            let line = sanitize_for(Destination::Line, &line);
            match tone {
                Some(tone) => palette.paint(tone, &line).into_owned(),
                None => line.into_owned(),
            }
        })
        .collect()
}

/// A prompt's lines, each escaped (the question is a worker's text).
pub(super) fn prompt_lines(out: &Sink, text: &str) {
    for line in text.lines() {
        out.line(&sanitize_for(Destination::Line, line));
    }
}
