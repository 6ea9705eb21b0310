//! Showing a run as it goes: a live multi-line view on a terminal, plain
//! timestamped lines in CI (never progress-bar escape codes), JSON lines
//! with `--json`, or only the end with `--quiet`.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, Stamped};
use crate::domain::checklist::ItemState;
use crate::domain::status::TaskStatus;
use crate::manifest::types::{Action, Severity};
use crate::record::TaskRecord;
use crate::util::{clock, escape};

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
    /// The last line of the live view: how many tasks stand where.
    tally_bar: Option<ProgressBar>,
    tally: Tally,
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
            tally_bar: None,
            tally: Tally::default(),
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
                let line = serde_json::to_string(stamped).unwrap_or_default();
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "{}",
                    escape::json_for_terminal(&line)
                );
            }
            Mode::Plain => {
                if let Some(line) = self.plain_line(stamped.event) {
                    let time = stamped.ts.get(11..19).unwrap_or("");
                    to_stderr(&format!("{time} {line}"));
                }
            }
            Mode::Live => {
                self.live(stamped.event);
                self.show_tally();
            }
            Mode::Quiet => {
                // Escalations and findings show even when quiet.
                if matches!(
                    stamped.event,
                    Event::Warning { .. }
                        | Event::Finding { .. }
                        | Event::Escalation { notify: true, .. }
                ) {
                    if let Some(line) = self.plain_line(stamped.event) {
                        to_stderr(&line);
                    }
                }
            }
        }
    }

    /// One line per event, whatever a worker put in its text: a newline
    /// could forge a CI log line (`::error::`), an ESC could drive the
    /// terminal.
    fn plain_line(&self, event: &Event) -> Option<String> {
        self.plain_text(event).map(|line| escape::one_line(&line))
    }

    fn plain_text(&self, event: &Event) -> Option<String> {
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
            Event::RunResumed { run_id, tasks } => {
                format!("resuming run {run_id}: {tasks} task(s) to run again")
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
            Event::TaskCarried {
                task,
                status,
                from_run,
            } => format!(
                "{}: {} in run {from_run}, carried over",
                self.name(task),
                status.label()
            ),
            Event::WorktreeReady {
                task,
                path,
                branch,
                base_commit,
                reused,
                ..
            } => {
                let how = if *reused { "reusing" } else { "new" };
                let base: String = base_commit.chars().take(8).collect();
                format!("{task}: worktree {path} ({how} branch {branch} from {base})")
            }
            Event::BranchReviewed {
                task,
                branch,
                ahead,
                files_changed,
                insertions,
                deletions,
                uncommitted,
                folder,
                ..
            } => format!(
                "{task}: branch {branch}: {}; {}",
                crate::isolation::review::change_summary(
                    *ahead,
                    *files_changed,
                    *insertions,
                    *deletions,
                    *uncommitted
                ),
                folder.describe()
            ),
            Event::Interrupted {
                force: false,
                signal,
            } => format!(
                "interrupted: stopping workers ({signal}; Ctrl-C again to kill them at once)"
            ),
            Event::Interrupted {
                force: true,
                signal,
            } => format!("interrupted again: killing workers ({signal})"),
            Event::Warning { task, message } => {
                format!(
                    "warning: {}{message}",
                    task.as_ref().map(|t| format!("{t}: ")).unwrap_or_default()
                )
            }
            Event::Question { task, seq, text } => {
                format!(
                    "{}: asks (#{seq}): {text} · answer: {}",
                    self.name(task),
                    crate::ipc::questions::answer_command(task, *seq)
                )
            }
            Event::Answered {
                task,
                seq,
                answer,
                by,
            } => format!("{task}: #{seq} answered by {by}: {answer}"),
            Event::Finding {
                task,
                severity,
                title,
                location,
                ..
            } => {
                let at = location
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default();
                format!("! {task} {}: {title}{at}", severity_label(*severity))
            }
            Event::Escalation { notify: false, .. } => return None,
            Event::Escalation {
                rule,
                action,
                summary,
                exit_code,
                ..
            } => format!(
                "!!! ESCALATION ({rule}, {}, exit code {exit_code}): {summary}",
                action_label(*action)
            ),
            Event::RunEnded { .. } => return None,
        })
    }

    fn live(&mut self, event: &Event) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        self.tally.count(event);
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
                    bar.set_message(escape::one_line(&format!("{done}/{total}{now}")));
                }
            }
            Event::TaskEnded {
                task,
                status,
                reason,
                ..
            } => {
                if let Some(bar) = self.bars.remove(task) {
                    bar.finish_with_message(escape::one_line(&format!(
                        "{} {reason}",
                        status.label()
                    )));
                }
            }
            other => {
                if let Some(line) = self.plain_line(other) {
                    let _ = multi.println(line);
                }
            }
        }
    }

    fn show_tally(&self) {
        if let Some(bar) = &self.tally_bar {
            bar.set_message(self.tally.line());
        }
    }

    /// The end of the run: what became of each task, and the exit code.
    pub fn summary(&mut self, summary: &Summary<'_>) {
        if let Some(multi) = self.multi.take() {
            let _ = multi.clear();
        }
        if self.mode == Mode::Json {
            return;
        }
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "\n{}", summary.text());
    }

    /// Show a question to the person at this terminal.
    pub fn prompt(&self, text: &str) {
        match &self.multi {
            Some(multi) => multi.suspend(|| to_stderr(&escape::terminal(text))),
            None => to_stderr(&escape::terminal(text)),
        }
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

/// What the end-of-run summary says.
pub struct Summary<'a> {
    pub name: &'a str,
    pub run_id: &'a str,
    pub records: &'a [TaskRecord],
    /// The escalation rules that fired, one line each.
    pub escalations: &'a [String],
    pub duration: Duration,
    pub exit_code: u8,
}

impl Summary<'_> {
    /// Escalations first (the launch blocker), then the tally and a line per
    /// task with its findings.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for escalation in self.escalations {
            text.push_str(&format!("ESCALATED {}\n", escape::one_line(escalation)));
        }
        let mut counts: Vec<(TaskStatus, usize)> = Vec::new();
        for record in self.records {
            match counts.iter_mut().find(|(s, _)| *s == record.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((record.status, 1)),
            }
        }
        let mut tally: Vec<String> = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.label()))
            .collect();
        if tally.is_empty() {
            // An empty shard, say.
            tally.push("no tasks to run".to_owned());
        }
        text.push_str(&format!(
            "Sweep {}: {} in {} (run {}, exit code {})\n",
            self.name,
            tally.join(", "),
            clock::human(self.duration),
            self.run_id,
            self.exit_code
        ));
        let unticked: Vec<&str> = self
            .records
            .iter()
            .filter(|r| !r.unticked.is_empty())
            .map(|r| r.id.as_str())
            .collect();
        if !unticked.is_empty() {
            text.push_str(&format!(
                "warning: {} complete task{} declared done with items nobody ticked: {}\n",
                unticked.len(),
                if unticked.len() == 1 {
                    " was"
                } else {
                    "s were"
                },
                unticked.join(", ")
            ));
        }
        for record in self.records {
            let model = record
                .model
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            let reason = escape::one_line(record.reason.as_deref().unwrap_or(""));
            text.push_str(&format!(
                "{} {}{model} — {}: {reason}{}\n",
                status_symbol(record.status),
                record.id,
                record.status.label(),
                findings_tally(record)
            ));
        }
        text.push_str("Plans, outputs and logs: .dispatch/tasks/<id>/\n");
        text
    }
}

/// `; 3 findings (1 critical, 2 high)`, or nothing.
fn findings_tally(record: &TaskRecord) -> String {
    if record.findings.is_empty() {
        return String::new();
    }
    let mut by: Vec<(Severity, usize)> = Vec::new();
    for finding in &record.findings {
        match by.iter_mut().find(|(s, _)| *s == finding.severity) {
            Some((_, n)) => *n += 1,
            None => by.push((finding.severity, 1)),
        }
    }
    by.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let parts: Vec<String> = by
        .iter()
        .map(|(s, n)| format!("{n} {}", severity_label(*s).to_lowercase()))
        .collect();
    let n = record.findings.len();
    format!(
        "; {n} finding{} ({})",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// A severity as a banner shows it: `CRITICAL`.
pub fn severity_label(severity: Severity) -> String {
    serde_json::to_value(severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_uppercase))
        .unwrap_or_default()
}

fn action_label(action: Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
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

/// A line to stderr that never panics: after a hang-up the terminal is
/// gone (writes fail with EIO), and the run must still stop its workers and
/// write its reports rather than die in `eprintln!`.
fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_of_no_tasks_says_so() {
        let summary = Summary {
            name: "sweep",
            run_id: "20261125-000000-abcd",
            records: &[],
            escalations: &[],
            duration: Duration::from_millis(3),
            exit_code: 0,
        };
        assert!(
            summary
                .text()
                .starts_with("Sweep sweep: no tasks to run in 3ms"),
            "{}",
            summary.text()
        );
    }
}
