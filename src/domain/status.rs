//! Where a task and a run stand, defined once. Records, events, reports
//! and `merge` all read and write these types (serde, kebab-case), never a
//! string of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a task stands. The end states are derived from the process *and*
/// the plan: an exit code alone lies too often.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Pending,
    Running,
    /// Every item `[x]`, or the worker touched `ipc/.done`.
    Complete,
    /// An item `[!]`, a non-zero exit with items left, an error reported by
    /// the agent CLI, or a worker that could not start.
    Failed,
    /// The plan was done, but an acceptance check failed (or timed out).
    CheckFailed,
    /// An item `[?]`: the worker is waiting for an answer.
    Blocked,
    /// A clean exit with items left unchecked.
    Incomplete,
    TimedOut,
    /// Stopped by the runner because its worker went quiet for its
    /// `idle_timeout`: no output, no plan change, no event from its CLI.
    Stalled,
    /// Stopped by the runner for spending past its budget.
    BudgetExceeded,
    Cancelled,
    /// Not started because something it needs did not complete.
    Skipped,
}

impl TaskStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }

    /// Whether this end fails the sweep (exit code 1). Exhaustive, so a new
    /// status has to be placed.
    pub fn is_failure(self) -> bool {
        match self {
            TaskStatus::Pending
            | TaskStatus::Running
            | TaskStatus::Complete
            | TaskStatus::Blocked => false,
            TaskStatus::Failed
            | TaskStatus::CheckFailed
            | TaskStatus::Incomplete
            | TaskStatus::TimedOut
            | TaskStatus::Stalled
            | TaskStatus::BudgetExceeded
            | TaskStatus::Cancelled
            | TaskStatus::Skipped => true,
        }
    }

    /// Whether a task that ended so needs a person's look after the run
    /// (the end summary and `dispatch status` list it). Exhaustive, so a
    /// new status (stalled, check-failed, flaky) has to be placed.
    pub fn needs_attention(self) -> bool {
        match self {
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Complete => false,
            TaskStatus::Failed
            | TaskStatus::CheckFailed
            | TaskStatus::Blocked
            | TaskStatus::Incomplete
            | TaskStatus::TimedOut
            | TaskStatus::Stalled
            | TaskStatus::BudgetExceeded
            | TaskStatus::Cancelled
            | TaskStatus::Skipped => true,
        }
    }

    /// Every status, in the order summaries count them.
    pub const ALL: [TaskStatus; 12] = [
        TaskStatus::Complete,
        TaskStatus::Failed,
        TaskStatus::CheckFailed,
        TaskStatus::TimedOut,
        TaskStatus::Stalled,
        TaskStatus::BudgetExceeded,
        TaskStatus::Incomplete,
        TaskStatus::Blocked,
        TaskStatus::Cancelled,
        TaskStatus::Skipped,
        TaskStatus::Running,
        TaskStatus::Pending,
    ];

    /// The status a label (`timed-out`) names.
    pub fn from_label(label: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.label() == label)
    }

    pub fn label(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Complete => "complete",
            TaskStatus::Failed => "failed",
            TaskStatus::CheckFailed => "check-failed",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Incomplete => "incomplete",
            TaskStatus::TimedOut => "timed-out",
            TaskStatus::Stalled => "stalled",
            TaskStatus::BudgetExceeded => "budget-exceeded",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Where a whole run stands. A run that has ended says how, by the same
/// precedence as its exit code.
//
// The precedence is `crate::domain::exit::RunOutcome`'s; a plain comment, so
// the rustdoc path stays out of the published report schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Its `dispatch` is still at work (or died without concluding: a
    /// snapshot tells the two apart by whether the process is alive).
    Running,
    /// Every task complete, no escalation.
    Complete,
    /// A task is waiting on a question nobody answered (and nothing failed).
    Blocked,
    /// A task failed, timed out, went over budget, was skipped, cancelled or
    /// left items undone.
    Failed,
    /// An escalation rule decided the exit code.
    Escalated,
    /// Stopped by a signal, or its process is gone without concluding.
    /// (Versions before 0.2 wrote the latter as a sentence in `run.json`.)
    #[serde(alias = "interrupted (its process is gone)")]
    Interrupted,
}

impl RunStatus {
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Blocked => "blocked",
            RunStatus::Failed => "failed",
            RunStatus::Escalated => "escalated",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each status sits in `ALL`; a new status fails to compile here
    /// until it is placed there too.
    fn position(status: TaskStatus) -> usize {
        match status {
            TaskStatus::Complete => 0,
            TaskStatus::Failed => 1,
            TaskStatus::CheckFailed => 2,
            TaskStatus::TimedOut => 3,
            TaskStatus::Stalled => 4,
            TaskStatus::BudgetExceeded => 5,
            TaskStatus::Incomplete => 6,
            TaskStatus::Blocked => 7,
            TaskStatus::Cancelled => 8,
            TaskStatus::Skipped => 9,
            TaskStatus::Running => 10,
            TaskStatus::Pending => 11,
        }
    }

    #[test]
    fn every_status_is_listed_once_and_read_back_from_its_label() {
        for (i, status) in TaskStatus::ALL.into_iter().enumerate() {
            assert_eq!(position(status), i);
            assert_eq!(TaskStatus::from_label(status.label()), Some(status));
        }
        assert_eq!(TaskStatus::from_label("done"), None);
    }

    #[test]
    fn every_end_but_complete_needs_attention() {
        let attention: Vec<&str> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.needs_attention())
            .map(TaskStatus::label)
            .collect();
        assert_eq!(
            attention,
            [
                "failed",
                "check-failed",
                "timed-out",
                "stalled",
                "budget-exceeded",
                "incomplete",
                "blocked",
                "cancelled",
                "skipped"
            ]
        );
    }
}
