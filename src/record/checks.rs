//! What a task's acceptance checks said, kept per attempt in `task.json`,
//! and what follows from the attempts: whether the task was flaky.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Attempt, TaskRecord};
use crate::domain::redact::{Redact, Redactor};
use crate::domain::status::TaskStatus;
use crate::supervise::process::Exit;

/// One run of one check, after one attempt of the task's worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckRecord {
    /// The check's name (its command, when it has none).
    pub name: String,
    /// The command as it ran (rendered, secrets redacted).
    pub command: String,
    /// Whether it exited 0 within its timeout.
    pub passed: bool,
    /// How its process ended; `null` when it could not start.
    #[schemars(with = "Option<serde_json::Value>")]
    pub exit: Option<Exit>,
    /// Stopped for running past its timeout.
    #[serde(default)]
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Its output (stdout and stderr, redacted), relative to the task's
    /// folder.
    pub log: String,
    /// The end of its output (at most 4 KiB), redacted; or why it could
    /// not run.
    pub tail: String,
}

impl CheckRecord {
    /// `exit code 1`, `timed out`, `killed by signal 9`, `could not start`.
    pub fn how(&self) -> String {
        if self.timed_out {
            return "timed out".to_owned();
        }
        match self.exit {
            Some(Exit::Code(code)) => format!("exit code {code}"),
            Some(Exit::Signal(signal)) => format!("killed by signal {signal}"),
            None => "could not start".to_owned(),
        }
    }
}

impl Redact for CheckRecord {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.name.redact_with(redactor);
        self.command.redact_with(redactor);
        self.tail.redact_with(redactor);
    }
}

/// Whether an attempt that ended so failed by itself, as a retry would
/// answer. Exhaustive, so a new status has to be placed.
pub fn failed_by_itself(status: TaskStatus) -> bool {
    match status {
        TaskStatus::Failed
        | TaskStatus::TimedOut
        | TaskStatus::CheckFailed
        | TaskStatus::Stalled => true,
        TaskStatus::Pending
        | TaskStatus::Running
        | TaskStatus::Complete
        | TaskStatus::Blocked
        | TaskStatus::Incomplete
        | TaskStatus::BudgetExceeded
        | TaskStatus::Cancelled
        | TaskStatus::Skipped => false,
    }
}

impl Attempt {
    /// The checks of this attempt that did not pass.
    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckRecord> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

impl TaskRecord {
    /// Complete only on a retry: an earlier attempt failed, timed out or
    /// failed a check. It may fail next time. (An attempt stopped by a
    /// person, then resumed, is not flakiness.)
    pub fn is_flaky(&self) -> bool {
        self.status == TaskStatus::Complete
            && self
                .attempts
                .iter()
                .rev()
                .skip(1)
                .any(|a| a.status.is_some_and(failed_by_itself))
    }

    /// The checks of its last attempt.
    pub fn last_checks(&self) -> &[CheckRecord] {
        self.attempts.last().map_or(&[], |a| a.checks.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, attempts: &[&str]) -> TaskRecord {
        let attempts: Vec<serde_json::Value> = attempts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({ "number": i + 1, "started_at": "t", "ended_at": "t",
                    "pid": 1, "exit": null, "status": s, "reason": null, "duration_ms": 5 })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": "t", "run_id": "r", "title": "t", "status": status, "reason": null,
            "model": null, "backend": "command", "worktree": false, "priority": "normal",
            "needs": [], "argv": [], "pid": null, "started_at": null, "ended_at": null,
            "duration_ms": null, "exit": null,
            "items": { "total": 1, "done": 1, "pending": 0, "in_progress": 0, "blocked": 0, "failed": 0 },
            "current_item": null,
            "usage": { "turns": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cost_usd": null },
            "outcome": null, "attempts": attempts,
        }))
        .expect("a task record")
    }

    #[test]
    fn flaky_means_complete_after_an_attempt_that_failed_by_itself() {
        for earlier in ["failed", "timed-out", "check-failed"] {
            assert!(
                record("complete", &[earlier, "complete"]).is_flaky(),
                "{earlier}"
            );
        }
        // Stopped by a person and resumed: not the task's doing.
        assert!(!record("complete", &["cancelled", "complete"]).is_flaky());
        assert!(!record("complete", &["complete"]).is_flaky());
        assert!(!record("check-failed", &["failed", "check-failed"]).is_flaky());
    }
}
