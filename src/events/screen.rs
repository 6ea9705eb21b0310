//! What the terminal reporters share: how the run is shown ([`Mode`]),
//! how tasks are named, and how an event reads as one line of text (the
//! live view's notes, the CI lines and `--quiet` all use the same words).

use std::collections::HashMap;
use std::time::Duration;

use super::Event;
use crate::domain::checklist::ItemState;
use crate::domain::status::TaskStatus;
use crate::manifest::types::{Action, Severity};
use crate::util::clock;

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
    /// `Live` on a terminal that can move its cursor, else `Plain`.
    pub fn detect() -> Mode {
        use std::io::IsTerminal;
        Mode::choose(
            std::io::stderr().is_terminal(),
            std::env::var_os("CI").is_some(),
            std::env::var_os("TERM").as_deref(),
        )
    }

    /// The rule itself. A `dumb` terminal (Emacs' shell, some IDE
    /// consoles) has no cursor movement: the live view would show nothing
    /// until the end, so it gets the CI lines.
    pub fn choose(terminal: bool, ci: bool, term: Option<&std::ffi::OsStr>) -> Mode {
        let dumb = term.is_some_and(|t| t == "dumb");
        if terminal && !ci && !dumb {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// How tasks are named on screen: `id (model, worktree)`.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    labels: HashMap<String, String>,
}

impl Labels {
    /// Remember how to name a task on screen. A task named by its id
    /// alone is not kept: a wide sweep of plain commands would hold every
    /// id twice over for nothing.
    pub fn label(&mut self, task: &str, model: Option<&str>, worktree: bool) {
        let mut parts: Vec<&str> = model.into_iter().collect();
        if worktree {
            parts.push("worktree");
        }
        if parts.is_empty() {
            self.labels.remove(task);
            return;
        }
        let label = format!("{task} ({})", parts.join(", "));
        self.labels.insert(task.to_owned(), label);
    }

    pub fn name<'a>(&'a self, task: &'a str) -> &'a str {
        self.labels.get(task).map_or(task, String::as_str)
    }

    /// An event as one line of text, or `None` for events shown otherwise
    /// (the end, silent escalations). Not yet escaped: the reporter writing
    /// it does that for its destination.
    pub fn line(&self, event: &Event) -> Option<String> {
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
            Event::CheckEnded {
                task,
                name,
                passed,
                how,
                duration_ms,
                log,
                ..
            } => {
                let took = clock::human(Duration::from_millis(*duration_ms));
                if *passed {
                    format!("{}: check `{name}` passed in {took}", self.name(task))
                } else {
                    format!(
                        "{}: check `{name}` FAILED ({how}) in {took}; output in {}/{log}",
                        self.name(task),
                        crate::state::layout::task_dir(task)
                    )
                }
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
            Event::ApiRetry { task, summary, .. } => format!("{}: {summary}", self.name(task)),
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
        | TaskStatus::CheckFailed
        | TaskStatus::TimedOut
        | TaskStatus::Stalled
        | TaskStatus::Incomplete
        | TaskStatus::Cancelled
        | TaskStatus::BudgetExceeded => "✗",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn a_dumb_terminal_or_ci_gets_the_ci_lines() {
        let xterm = Some(OsStr::new("xterm-256color"));
        assert_eq!(Mode::choose(true, false, xterm), Mode::Live);
        assert_eq!(Mode::choose(true, false, None), Mode::Live);
        assert_eq!(
            Mode::choose(true, false, Some(OsStr::new("dumb"))),
            Mode::Plain
        );
        assert_eq!(Mode::choose(true, true, xterm), Mode::Plain);
        assert_eq!(Mode::choose(false, false, xterm), Mode::Plain);
    }

    #[test]
    fn a_task_is_named_by_its_model_and_worktree_and_only_those_are_kept() {
        let mut labels = Labels::default();
        labels.label("lint", None, false);
        labels.label("fix", Some("opus"), true);
        labels.label("docs", Some("opus"), false);
        assert_eq!(labels.name("lint"), "lint");
        assert_eq!(labels.name("fix"), "fix (opus, worktree)");
        assert_eq!(labels.name("docs"), "docs (opus)");
        assert_eq!(labels.labels.len(), 2, "a plain id is not stored");
        labels.label("docs", None, false);
        assert_eq!(labels.name("docs"), "docs");
    }
}
