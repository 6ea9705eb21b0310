//! Where a task stands, defined once. Records, events, reports and `merge`
//! all read and write this type (serde, kebab-case), never a string of it.

use serde::{Deserialize, Serialize};

/// Where a task stands. The end states are derived from the process *and*
/// the plan: an exit code alone lies too often.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
