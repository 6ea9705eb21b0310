//! Showing a run as it goes: a live multi-line view on a terminal, plain
//! timestamped lines in CI (never progress-bar escape codes), JSON lines
//! with `--json`, or only the end with `--quiet`.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Event, Stamped};
use super::record::{TaskRecord, TaskStatus};
use crate::clock;
use crate::monitor::checklist::ItemState;

/// How the run is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A live view, one line per task (on a terminal).
    Live,
    /// One timestamped line per event (CI logs, pipes).
    Plain,
    /// Events as JSON lines on stdout.
    Json,
    /// Only the end summary.
    Quiet,
}

impl Mode {
    /// `Live` on a terminal, else `Plain`.
    pub fn detect() -> Mode {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// The terminal side of a run.
pub struct Screen {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    labels: HashMap<String, String>,
}

impl Screen {
    pub fn new(mode: Mode) -> Self {
        let multi = (mode == Mode::Live)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)));
        Self {
            mode,
            multi,
            bars: HashMap::new(),
            labels: HashMap::new(),
        }
    }

    /// Remember how to name a task on screen: `id (model, worktree)`.
    pub fn label(&mut self, task: &str, model: Option<&str>, worktree: bool) {
        let mut parts: Vec<&str> = model.into_iter().collect();
        if worktree {
            parts.push("worktree");
        }
        let label = if parts.is_empty() {
            task.to_owned()
        } else {
            format!("{task} ({})", parts.join(", "))
        };
        self.labels.insert(task.to_owned(), label);
    }

    fn name<'a>(&'a self, task: &'a str) -> &'a str {
        self.labels.get(task).map_or(task, String::as_str)
    }

    pub fn show(&mut self, stamped: &Stamped<'_>) {
        match self.mode {
            Mode::Json => {
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut out, stamped);
                let _ = writeln!(out);
            }
            Mode::Plain => {
                if let Some(line) = self.plain_line(stamped.event) {
                    let time = stamped.ts.get(11..19).unwrap_or("");
                    eprintln!("{time} {line}");
                }
            }
            Mode::Live => self.live(stamped.event),
            Mode::Quiet => {
                if let Event::Warning { task, message } = stamped.event {
                    eprintln!(
                        "warning: {}{message}",
                        task.as_ref().map(|t| format!("{t}: ")).unwrap_or_default()
                    );
                }
            }
        }
    }

    fn plain_line(&self, event: &Event) -> Option<String> {
        Some(match event {
            Event::RunStarted {
                run_id,
                name,
                tasks,
                concurrency,
                ..
            } => {
                format!("run {run_id}: sweep {name}, {tasks} tasks, {concurrency} at a time")
            }
            Event::TaskStarted {
                task, attempt, pid, ..
            } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                format!("{}: started{again}, pid {pid}", self.name(task))
            }
            Event::Item {
                task,
                text,
                state,
                note,
                done,
                total,
                ..
            } => {
                let note = note
                    .as_deref()
                    .map(|n| format!(" — {n}"))
                    .unwrap_or_default();
                format!("{task}: {} {text}{note} ({done}/{total})", symbol(*state))
            }
            Event::TaskEnded {
                task,
                status,
                reason,
                duration_ms,
                retrying,
                ..
            } => {
                let retry = if *retrying { "; retrying" } else { "" };
                format!(
                    "{}: {} — {reason} in {}{retry}",
                    self.name(task),
                    status.label(),
                    clock::human(Duration::from_millis(*duration_ms))
                )
            }
            Event::TaskSkipped { task, reason } => {
                format!("{}: skipped — {reason}", self.name(task))
            }
            Event::Interrupted { force: false } => {
                "interrupted: stopping workers (Ctrl-C again to kill them at once)".to_owned()
            }
            Event::Interrupted { force: true } => "interrupted again: killing workers".to_owned(),
            Event::Warning { task, message } => {
                format!(
                    "warning: {}{message}",
                    task.as_ref().map(|t| format!("{t}: ")).unwrap_or_default()
                )
            }
            Event::RunEnded { .. } => return None,
        })
    }

    fn live(&mut self, event: &Event) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        match event {
            Event::TaskStarted { task, .. } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(self.name(task).to_owned());
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
                    bar.set_message(format!("{done}/{total}{now}"));
                }
            }
            Event::TaskEnded {
                task,
                status,
                reason,
                ..
            } => {
                if let Some(bar) = self.bars.remove(task) {
                    bar.finish_with_message(format!("{} {reason}", status.label()));
                }
            }
            other => {
                if let Some(line) = self.plain_line(other) {
                    let _ = multi.println(line);
                }
            }
        }
    }

    /// The end of the run: what became of each task, and the exit code.
    pub fn summary(
        &mut self,
        name: &str,
        run_id: &str,
        records: &[TaskRecord],
        duration: Duration,
        exit_code: u8,
    ) {
        if let Some(multi) = self.multi.take() {
            let _ = multi.clear();
        }
        if self.mode == Mode::Json {
            return;
        }
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "\n{}",
            summary_text(name, run_id, records, duration, exit_code)
        );
    }
}

/// The end-of-run summary as text.
pub fn summary_text(
    name: &str,
    run_id: &str,
    records: &[TaskRecord],
    duration: Duration,
    exit_code: u8,
) -> String {
    let mut counts: Vec<(TaskStatus, usize)> = Vec::new();
    for record in records {
        match counts.iter_mut().find(|(s, _)| *s == record.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((record.status, 1)),
        }
    }
    let tally: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.label()))
        .collect();
    let mut text = format!(
        "Sweep {name}: {} in {} (run {run_id}, exit code {exit_code})\n",
        tally.join(", "),
        clock::human(duration)
    );
    for record in records {
        let model = record
            .model
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let reason = record.reason.as_deref().unwrap_or("");
        text.push_str(&format!(
            "{} {}{model} — {}: {reason}\n",
            status_symbol(record.status),
            record.id,
            record.status.label()
        ));
    }
    text.push_str("Plans, outputs and logs: .dispatch/tasks/<id>/\n");
    text
}

/// The seed's symbols: ✓ done, ⋯ in progress, ○ pending, ? blocked, ! error.
pub fn symbol(state: ItemState) -> &'static str {
    match state {
        ItemState::Done => "✓",
        ItemState::InProgress => "⋯",
        ItemState::Pending => "○",
        ItemState::Blocked => "?",
        ItemState::Failed => "!",
    }
}

pub fn status_symbol(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Complete => "✓",
        TaskStatus::Running => "●",
        TaskStatus::Pending => "○",
        TaskStatus::Blocked => "?",
        TaskStatus::Skipped => "-",
        TaskStatus::Failed
        | TaskStatus::TimedOut
        | TaskStatus::Incomplete
        | TaskStatus::Cancelled
        | TaskStatus::BudgetExceeded => "✗",
    }
}
