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

impl Attempt {
    /// The checks of this attempt that did not pass.
    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckRecord> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

impl TaskRecord {
    /// Complete only on a retry: an earlier attempt ended in a failure
    /// (failed, timed out, a check failed). It may fail next time.
    pub fn is_flaky(&self) -> bool {
        self.status == TaskStatus::Complete
            && self
                .attempts
                .iter()
                .rev()
                .skip(1)
                .any(|a| a.status.is_some_and(TaskStatus::is_failure))
    }

    /// The checks of its last attempt.
    pub fn last_checks(&self) -> &[CheckRecord] {
        self.attempts.last().map_or(&[], |a| a.checks.as_slice())
    }
}
