//! The live view on a terminal: a line per running task with its progress,
//! a last line counting where the tasks stand, notes above them; then the
//! end summary once the view is cleared.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::reporter::{Reporter, RunEnd, Sink};
use super::sanitize::{sanitize_for, Destination};
use super::screen::Labels;
use super::{Event, Stamped};
use crate::domain::status::TaskStatus;

pub struct LiveReporter {
    labels: Labels,
    multi: Option<MultiProgress>,
    /// The last line of the live view: how many tasks stand where.
    tally_bar: Option<ProgressBar>,
    tally: Tally,
    bars: HashMap<String, ProgressBar>,
}

impl LiveReporter {
    pub fn new(labels: Labels) -> Self {
        Self {
            labels,
            multi: Some(MultiProgress::with_draw_target(
                ProgressDrawTarget::stderr_with_hz(4),
            )),
            tally_bar: None,
            tally: Tally::default(),
            bars: HashMap::new(),
        }
    }

    fn show(&mut self, event: &Event) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        self.tally.count(event);
        let line = |text: &str| sanitize_for(Destination::Line, text).into_owned();
        match event {
            Event::RunStarted { .. } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                self.tally_bar = Some(bar);
            }
            Event::TaskStarted { task, .. } => {
                let bar = match &self.tally_bar {
                    Some(tally) => multi.insert_before(tally, ProgressBar::new_spinner()),
                    None => multi.add(ProgressBar::new_spinner()),
                };
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(line(self.labels.name(task)));
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(250));
                self.bars.insert(task.clone(), bar);
            }
            Event::Item {
                task,
                done,
                total,
                current,
                ..
            } => {
                if let Some(bar) = self.bars.get(task) {
                    let now = current
                        .as_deref()
                        .map(|c| format!(" · {c}"))
                        .unwrap_or_default();
                    bar.set_message(line(&format!("{done}/{total}{now}")));
                }
            }
            // On the task's own line, until its next item: one line per
            // retry would scroll a long retry storm past everything else.
            Event::ApiRetry { task, summary, .. } => {
                if let Some(bar) = self.bars.get(task) {
                    bar.set_message(line(summary));
                }
            }
            Event::TaskEnded {
                task,
                status,
                reason,
                ..
            } => {
                if let Some(bar) = self.bars.remove(task) {
                    bar.finish_with_message(line(&format!("{} {reason}", status.label())));
                }
            }
            other => {
                if let Some(text) = self.labels.line(other) {
                    let _ = multi.println(line(&text));
                }
            }
        }
        if let Some(bar) = &self.tally_bar {
            bar.set_message(self.tally.line());
        }
    }
}

impl Reporter for LiveReporter {
    fn report(&mut self, stamped: &Stamped<'_>) {
        self.show(stamped.event);
    }

    fn finish(&mut self, end: &RunEnd<'_>) {
        if let Some(multi) = self.multi.take() {
            let _ = multi.clear();
        }
        super::plain::summary_lines(&Sink::Stderr, end);
    }

    /// The question is printed with the live view held still.
    fn prompt(&mut self, text: &str) -> bool {
        match &self.multi {
            Some(multi) => multi.suspend(|| super::plain::prompt_lines(&Sink::Stderr, text)),
            None => super::plain::prompt_lines(&Sink::Stderr, text),
        }
        true
    }
}

/// How many tasks stand where, for the live view's last line.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    running: usize,
    complete: usize,
    not_complete: usize,
    findings: usize,
}

impl Tally {
    fn count(&mut self, event: &Event) {
        match event {
            Event::RunStarted { tasks, .. } => self.total = *tasks,
            Event::TaskStarted { .. } => self.running += 1,
            Event::TaskEnded {
                status, retrying, ..
            } => {
                self.running = self.running.saturating_sub(1);
                if !retrying {
                    if *status == TaskStatus::Complete {
                        self.complete += 1;
                    } else {
                        self.not_complete += 1;
                    }
                }
            }
            Event::TaskSkipped { .. } => self.not_complete += 1,
            Event::Finding { .. } => self.findings += 1,
            _ => {}
        }
    }

    fn line(&self) -> String {
        let waiting = self
            .total
            .saturating_sub(self.running + self.complete + self.not_complete);
        format!(
            "{} tasks: {} running, {} complete, {} not complete, {} waiting · {} finding{}",
            self.total,
            self.running,
            self.complete,
            self.not_complete,
            waiting,
            self.findings,
            if self.findings == 1 { "" } else { "s" }
        )
    }
}
