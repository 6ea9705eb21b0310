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
    /// An item `[?]`: the worker is waiting for an answer.
    Blocked,
    /// A clean exit with items left unchecked.
    Incomplete,
    TimedOut,
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
            | TaskStatus::Incomplete
            | TaskStatus::TimedOut
            | TaskStatus::BudgetExceeded
            | TaskStatus::Cancelled
            | TaskStatus::Skipped => true,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Complete => "complete",
            TaskStatus::Failed => "failed",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Incomplete => "incomplete",
            TaskStatus::TimedOut => "timed-out",
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
/// precedence as its exit code ([`crate::domain::exit::Outcome`]).
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
