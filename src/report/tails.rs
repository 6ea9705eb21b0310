//! The end of what a failed task printed, where people look first (the
//! terminal summary and `report.md`): the failed checks' output for a
//! `check-failed` task, the end of the worker's log for a failed one. Both
//! were redacted when they were written.

use std::path::Path;

use crate::domain::status::TaskStatus;
use crate::record::TaskRecord;
use crate::state::layout;

/// How many lines of a tail are shown.
pub const TAIL_LINES: usize = 12;
/// Longer lines are cut (a minified bundle, a JSON event).
const MAX_LINE_CHARS: usize = 240;

/// Whether a task that ended so shows the tail of its output: a failure
/// whose cause is in what it printed. Exhaustive, so a new status (a
/// stalled worker's, say) has to be placed.
pub fn shows_tail(status: TaskStatus) -> bool {
    match status {
        TaskStatus::Failed | TaskStatus::CheckFailed | TaskStatus::Stalled => true,
        TaskStatus::Pending
        | TaskStatus::Running
        | TaskStatus::Complete
        | TaskStatus::Blocked
        | TaskStatus::Incomplete
        | TaskStatus::TimedOut
        | TaskStatus::BudgetExceeded
        | TaskStatus::Cancelled
        | TaskStatus::Skipped => false,
    }
}

/// The tail to show for `record` (its folder is `task_dir`), or `None`.
pub fn failure_tail(record: &TaskRecord, task_dir: &Path) -> Option<String> {
    if !shows_tail(record.status) {
        return None;
    }
    let text = if record.status == TaskStatus::CheckFailed {
        record
            .last_checks()
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("check `{}` ({}):\n{}", c.name, c.how(), last_lines(&c.tail)))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        let log = super::tail(&task_dir.join(layout::WORKER_LOG), super::LOG_TAIL_BYTES);
        last_lines(&log)
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The last [`TAIL_LINES`] non-empty lines of `text`, each cut to
/// [`MAX_LINE_CHARS`].
pub fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|line| match line.char_indices().nth(MAX_LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => (*line).to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_lines_are_kept_and_long_ones_are_cut() {
        let text: String = (1..=20).map(|i| format!("line {i}\n\n")).collect();
        let tail = last_lines(&text);
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(
            tail.starts_with("line 9\n") && tail.ends_with("line 20"),
            "{tail}"
        );
        let long = "é".repeat(500);
        assert_eq!(last_lines(&long).chars().count(), MAX_LINE_CHARS + 1);
    }
}
