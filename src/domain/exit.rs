//! How a run ends and the exit code a pipeline acts on, defined once: the
//! codes as documented in the README and `--help`, and the precedence
//! between them as a type, [`RunOutcome`], which `dispatch run`, `resume`,
//! `report` and `merge` all decide with.

use super::status::{RunStatus, TaskStatus};

/// Every task complete and no escalation.
pub const OK: u8 = 0;
/// A task failed, timed out, was skipped or left items undone.
pub const TASK_FAILED: u8 = 1;
/// Bad usage or an invalid manifest.
pub const USAGE: u8 = 2;
/// An escalation rule fired (a rule may set its own code).
pub const ESCALATED: u8 = 3;
/// A question was left unanswered.
pub const UNANSWERED: u8 = 4;
/// Interrupted by Ctrl-C or `dispatch cancel` (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
/// Stopped by a hang-up (128 + SIGHUP): the terminal closed.
pub const HANGUP: u8 = 129;
/// Stopped by SIGTERM (128 + SIGTERM).
pub const TERMINATED: u8 = 143;

/// How a run ended, from the most to the least drastic: an interruption
/// overrides an escalation, which overrides a failed task, which overrides
/// a task blocked on a question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Interrupted,
    /// An escalation rule's exit code (the most drastic rule's, when
    /// several fired).
    Escalated(u8),
    Failed,
    Blocked,
    Complete,
}

impl RunOutcome {
    /// The outcome of a run from what happened in it: whether it was
    /// interrupted, the exit code escalation decided (if a rule fired), and
    /// its tasks' statuses.
    pub fn decide(
        interrupted: bool,
        escalation: Option<u8>,
        statuses: impl IntoIterator<Item = TaskStatus>,
    ) -> RunOutcome {
        if interrupted {
            return RunOutcome::Interrupted;
        }
        if let Some(code) = escalation {
            return RunOutcome::Escalated(code);
        }
        let mut blocked = false;
        for status in statuses {
            if status.is_failure() {
                return RunOutcome::Failed;
            }
            blocked |= status == TaskStatus::Blocked;
        }
        if blocked {
            RunOutcome::Blocked
        } else {
            RunOutcome::Complete
        }
    }

    /// The outcome an ended run recorded, read back from its status and
    /// exit code (a shard's report, for `merge`).
    pub fn recorded(status: RunStatus, code: u8) -> RunOutcome {
        match status {
            RunStatus::Interrupted => RunOutcome::Interrupted,
            RunStatus::Escalated => RunOutcome::Escalated(code),
            RunStatus::Failed => RunOutcome::Failed,
            RunStatus::Blocked => RunOutcome::Blocked,
            RunStatus::Complete => RunOutcome::Complete,
            // An ended run is never `running`; if a report says so, its
            // code is all there is to go by.
            RunStatus::Running => match code {
                OK => RunOutcome::Complete,
                UNANSWERED => RunOutcome::Blocked,
                INTERRUPTED | HANGUP | TERMINATED => RunOutcome::Interrupted,
                TASK_FAILED | USAGE => RunOutcome::Failed,
                other => RunOutcome::Escalated(other),
            },
        }
    }

    pub fn code(self) -> u8 {
        match self {
            RunOutcome::Interrupted => INTERRUPTED,
            RunOutcome::Escalated(code) => code,
            RunOutcome::Failed => TASK_FAILED,
            RunOutcome::Blocked => UNANSWERED,
            RunOutcome::Complete => OK,
        }
    }

    pub fn status(self) -> RunStatus {
        match self {
            RunOutcome::Interrupted => RunStatus::Interrupted,
            RunOutcome::Escalated(_) => RunStatus::Escalated,
            RunOutcome::Failed => RunStatus::Failed,
            RunOutcome::Blocked => RunStatus::Blocked,
            RunOutcome::Complete => RunStatus::Complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_interrupted_escalated_failed_blocked_complete() {
        use TaskStatus::*;
        assert_eq!(
            RunOutcome::decide(true, Some(3), [Failed]),
            RunOutcome::Interrupted
        );
        assert_eq!(
            RunOutcome::decide(false, Some(7), [Failed]),
            RunOutcome::Escalated(7)
        );
        assert_eq!(
            RunOutcome::decide(false, None, [Blocked, Skipped]),
            RunOutcome::Failed
        );
        assert_eq!(
            RunOutcome::decide(false, None, [Complete, Blocked]),
            RunOutcome::Blocked
        );
        assert_eq!(
            RunOutcome::decide(false, None, [Complete]),
            RunOutcome::Complete
        );
        assert_eq!(RunOutcome::decide(false, None, []), RunOutcome::Complete);
    }

    #[test]
    fn an_escalation_with_code_one_reads_back_as_escalated() {
        let outcome = RunOutcome::decide(false, Some(TASK_FAILED), [TaskStatus::Complete]);
        assert_eq!(outcome.status(), RunStatus::Escalated);
        assert_eq!(
            RunOutcome::recorded(outcome.status(), outcome.code()),
            outcome
        );
    }

    #[test]
    fn every_outcome_reads_back_as_itself() {
        for outcome in [
            RunOutcome::Interrupted,
            RunOutcome::Escalated(3),
            RunOutcome::Escalated(42),
            RunOutcome::Failed,
            RunOutcome::Blocked,
            RunOutcome::Complete,
        ] {
            assert_eq!(
                RunOutcome::recorded(outcome.status(), outcome.code()),
                outcome
            );
        }
    }

    #[test]
    fn a_killed_runs_old_status_sentence_reads_as_interrupted() {
        let status: RunStatus =
            serde_json::from_str("\"interrupted (its process is gone)\"").expect("parses");
        assert_eq!(status, RunStatus::Interrupted);
    }
}
