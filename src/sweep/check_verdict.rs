//! What a task's checks decide: a task whose plan is done is complete only
//! when every check passed, else `check-failed`. A retry after a failed
//! check reopens the plan (an item to make the checks pass, and no
//! `ipc/.done`) and tells the worker what the checks said.

use std::path::Path;

use crate::domain::status::TaskStatus;
use crate::record::checks::CheckRecord;
use crate::record::Attempt;

/// How much of each failed check's output a retry's prompt quotes.
const FEEDBACK_BYTES: usize = 2048;

/// The status after the checks: only a `complete` verdict can turn into
/// `check-failed`; anything else already says why the task did not
/// complete.
pub(super) fn judge(
    status: TaskStatus,
    reason: String,
    checks: &[CheckRecord],
) -> (TaskStatus, String) {
    if status != TaskStatus::Complete || checks.is_empty() {
        return (status, reason);
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("`{}` ({})", c.name, c.how()))
        .collect();
    if failed.is_empty() {
        let n = checks.len();
        return (
            status,
            format!(
                "{reason}; {n} check{} passed",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
    (
        TaskStatus::CheckFailed,
        format!(
            "{reason}, but {} of {} check{} failed: {}",
            failed.len(),
            checks.len(),
            if checks.len() == 1 { "" } else { "s" },
            failed.join(", ")
        ),
    )
}

/// The item a retry after failed checks adds to the plan: the worker's
/// plan was done, and this is what is left.
pub(super) fn reopening_item(attempt: &Attempt) -> String {
    let names: Vec<String> = attempt
        .failed_checks()
        .map(|c| format!("`{}`", one_line(&c.name)))
        .collect();
    format!(
        "- [ ] Make the failing acceptance check{} pass: {}\n",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

/// Reopen the plan for a retry after failed checks: the item is appended
/// (the plan is otherwise kept as the worker left it) and `ipc/.done` is
/// removed, or the next attempt would be done before it began. Both are
/// written without following a link the worker planted.
pub(super) fn reopen(plan: &Path, ipc: &Path, attempt: &Attempt) -> Result<(), String> {
    let mut text = crate::state::read_bounded(plan, crate::state::plan_watch::MAX_PLAN_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", plan.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&reopening_item(attempt));
    crate::state::write_state(plan, text.as_bytes()).map_err(|e| e.to_string())?;
    let dir = crate::state::beneath::Dir::open(ipc)
        .map_err(|e| format!("cannot open {}: {e}", ipc.display()))?;
    match dir.remove(crate::state::layout::DONE_MARKER) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}/.done: {e}", ipc.display())),
    }
}

/// Reopen the plan in `task_dir` for a task that runs again in a later
/// run (`resume`, `--retry-failed`) after its last attempt failed checks;
/// nothing for any other task.
pub(super) fn reopen_for_rerun(
    task_dir: &Path,
    record: &crate::record::TaskRecord,
) -> Result<(), crate::state::StateError> {
    let Some(last) = record.attempts.last() else {
        return Ok(());
    };
    if last.status != Some(TaskStatus::CheckFailed) {
        return Ok(());
    }
    let layout = |name: &str| task_dir.join(name);
    reopen(
        &layout(crate::state::layout::PLAN),
        &layout(crate::state::layout::IPC),
        last,
    )
    .map_err(|e| crate::state::StateError::io(task_dir, std::io::Error::other(e)))
}

/// What a retry's prompt says about the checks of the attempt before:
/// each failed check, its command and the end of its output (redacted
/// when it was recorded). Empty when no check failed.
pub(super) fn feedback(attempt: &Attempt) -> String {
    let mut out = String::new();
    for check in attempt.failed_checks() {
        let tail = last_bytes(&check.tail, FEEDBACK_BYTES);
        out.push_str(&format!(
            "\n### Check `{}` failed ({})\n\nCommand: `{}`\n\n```text\n{}\n```\n",
            one_line(&check.name),
            check.how(),
            one_line(&check.command),
            tail.trim_end().replace("```", "'''")
        ));
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\n\nYour plan was done, but the acceptance checks dispatch ran afterwards failed. \
         Your plan has a new item for them; make them pass, then tick it.\n{out}"
    )
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The last `limit` bytes of `text`, from a character boundary.
fn last_bytes(text: &str, limit: usize) -> &str {
    let mut start = text.len().saturating_sub(limit);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::process::Exit;

    fn check(name: &str, passed: bool, tail: &str) -> CheckRecord {
        CheckRecord {
            name: name.to_owned(),
            command: format!("run {name}"),
            passed,
            exit: Some(Exit::Code(if passed { 0 } else { 1 })),
            timed_out: false,
            duration_ms: 5,
            log: "checks/attempt-1-1.log".to_owned(),
            tail: tail.to_owned(),
        }
    }

    fn attempt(checks: Vec<CheckRecord>) -> Attempt {
        Attempt {
            status: Some(TaskStatus::CheckFailed),
            checks,
            ..Attempt::begun(1, String::new(), None)
        }
    }

    #[test]
    fn a_done_plan_completes_only_when_every_check_passes() {
        let done = || "2/2 items done".to_owned();
        let passing = [check("lint", true, "")];
        assert_eq!(
            judge(TaskStatus::Complete, done(), &passing),
            (
                TaskStatus::Complete,
                "2/2 items done; 1 check passed".to_owned()
            )
        );
        let (status, reason) = judge(
            TaskStatus::Complete,
            done(),
            &[check("lint", true, ""), check("unit tests", false, "")],
        );
        assert_eq!(status, TaskStatus::CheckFailed);
        assert_eq!(
            reason,
            "2/2 items done, but 1 of 2 checks failed: `unit tests` (exit code 1)"
        );
        let mut timed_out = check("slow", false, "");
        timed_out.timed_out = true;
        assert!(judge(TaskStatus::Complete, done(), &[timed_out])
            .1
            .contains("`slow` (timed out)"));
        // Anything but complete keeps its own reason.
        assert_eq!(
            judge(
                TaskStatus::Failed,
                "boom".to_owned(),
                &[check("x", false, "")]
            )
            .0,
            TaskStatus::Failed
        );
        assert_eq!(judge(TaskStatus::Complete, done(), &[]).1, done());
    }

    #[test]
    fn the_retry_prompt_quotes_each_failed_check_and_cannot_close_its_fence() {
        let text = feedback(&attempt(vec![
            check("lint", true, "fine"),
            check(
                "unit tests",
                false,
                "test a ... FAILED\n```\n# injected heading",
            ),
        ]));
        assert!(
            text.contains("### Check `unit tests` failed (exit code 1)"),
            "{text}"
        );
        assert!(text.contains("Command: `run unit tests`"), "{text}");
        assert!(text.contains("test a ... FAILED"), "{text}");
        assert!(!text.contains("lint"), "{text}");
        assert_eq!(text.matches("```").count(), 2, "{text}");
        assert!(feedback(&attempt(vec![check("lint", true, "")])).is_empty());
        assert_eq!(
            reopening_item(&attempt(vec![check("unit\ntests", false, "")])),
            "- [ ] Make the failing acceptance check pass: `unit tests`\n"
        );
    }

    #[test]
    fn a_long_tail_is_cut_on_a_character_boundary() {
        let text = "é".repeat(3000);
        let cut = last_bytes(&text, 2049);
        assert!(cut.len() <= 2049 && cut.chars().all(|c| c == 'é'));
    }
}
