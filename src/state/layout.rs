//! The `.dispatch/` folder's layout, defined once: the dispatch skill for
//! Claude Code reads the same names, so a task's files are where both
//! expect them. Every path dispatch builds into the state folder comes from
//! here, whether as a `Path` ([`super::StateDir`]) or as the text a plan and
//! a worker prompt show (`plan::TaskPaths`).

/// The state folder's name under the project root.
pub const DIR_NAME: &str = ".dispatch";
/// `.dispatch/tasks/<id>/`: one folder per task, the current run's.
pub const TASKS: &str = "tasks";
/// `.dispatch/runs/<run>/`: one folder per run (its record, events, reports
/// and the task folders a later run archived).
pub const RUNS: &str = "runs";
/// `.dispatch/worktrees/<id>/`: worktree tasks' checkouts.
pub const WORKTREES: &str = "worktrees";

/// In a task folder: the checklist its worker ticks.
pub const PLAN: &str = "plan.md";
/// In a task folder: what the worker hands on (`needs[...].output`).
pub const OUTPUT: &str = "output.md";
/// In a task folder: what a resumed or retried worker is told happened.
pub const CONTEXT: &str = "context.md";
/// In a task folder: the prompt, for backends that read it from a file.
pub const PROMPT: &str = "prompt.md";
/// In a task folder: questions, answers and the `.done` marker.
pub const IPC: &str = "ipc";
/// In `ipc/`: the marker a worker makes when its whole plan is done.
pub const DONE_MARKER: &str = ".done";
/// In a task folder: the task's record.
pub const TASK_RECORD: &str = "task.json";
/// In a task folder: the worker's output, redacted.
pub const WORKER_LOG: &str = "worker.log";
/// In a task folder: the findings the worker reported.
pub const FINDINGS: &str = "findings.jsonl";
/// In a task folder: the acceptance checks' output, one log per check and
/// attempt ([`check_log`]).
pub const CHECKS: &str = "checks";

/// A check's log, relative to its task folder: `checks/attempt-2-1.log` is
/// the first check after the second attempt. Numbered, never named after
/// the check, so a check's name never becomes a path.
pub fn check_log(attempt: u32, check: usize) -> String {
    format!("{CHECKS}/attempt-{attempt}-{check}.log")
}

/// In a run folder: the run's record.
pub const RUN_RECORD: &str = "run.json";
/// In a run folder: each task's id, status and need for attention, written
/// when the run ends (`record::index`), so `dispatch status` need not read
/// every task's folder.
pub const RUN_INDEX: &str = "index.json";
/// In a run folder: every event of the run, one JSON object a line.
pub const EVENTS: &str = "events.jsonl";
/// In a run folder: the manifest as the run started from it.
pub const MANIFEST_COPY: &str = "manifest.yaml";

/// `root/relative` as text, or `relative` alone for a dry run's `.` root,
/// so plans made without a root stay reviewable (`.dispatch/tasks/ID/…`).
pub fn join(root: &str, relative: &str) -> String {
    if root.is_empty() || root == "." {
        relative.to_owned()
    } else {
        format!("{}/{relative}", root.trim_end_matches('/'))
    }
}

/// A task's folder relative to the project root, as text.
pub fn task_dir(id: &str) -> String {
    format!("{DIR_NAME}/{TASKS}/{id}")
}

/// A run's folder relative to the project root, as text.
pub fn run_dir(run_id: &str) -> String {
    format!("{DIR_NAME}/{RUNS}/{run_id}")
}

/// A worktree task's default checkout, relative to the project root.
pub fn worktree_dir(id: &str) -> String {
    format!("{DIR_NAME}/{WORKTREES}/{id}")
}
