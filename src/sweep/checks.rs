//! Running a task's acceptance checks once its worker ended with its plan
//! done: each a `sh -c` in the task's folder or worktree, supervised as a
//! worker is (its own process group, a timeout, SIGTERM then SIGKILL,
//! nothing left behind), its output redacted into
//! `.dispatch/tasks/<id>/checks/attempt-N-M.log`.
//!
//! They run in the worker's future, after its closing look: the slot stays
//! running and its stop still reaches them, so Ctrl-C and `dispatch
//! cancel` stop a check as they stop a worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::LEAK_TIMEOUT;
use crate::domain::redact::Redactor;
use crate::manifest::duration;
use crate::plan::PlannedTask;
use crate::record::checks::CheckRecord;
use crate::state::layout;
use crate::supervise::process::{self, Launch, Stop};

/// What running a task's checks needs besides the task.
pub(super) struct CheckRun {
    pub(super) task: Arc<PlannedTask>,
    pub(super) attempt: u32,
    /// The worker's environment: checks see what the worker saw (and carry
    /// its marker, so what they leave behind is found and stopped).
    pub(super) env: Vec<(String, String)>,
    pub(super) redactor: Arc<Redactor>,
    pub(super) grace: Duration,
    /// The commit (or ref) `changed_files` is measured from: a worktree's
    /// base commit, else `HEAD`.
    pub(super) base: String,
    pub(super) stop: watch::Receiver<Stop>,
}

/// What a task's checks said, and whether a stop request cut them short
/// (the task is cancelled then, whatever the checks said).
#[derive(Default)]
pub(super) struct Checked {
    pub(super) records: Vec<CheckRecord>,
    pub(super) stopped: bool,
}

/// Run every check in order; a stop request ends the list.
pub(super) async fn run_all(run: CheckRun) -> Checked {
    let task = &run.task;
    let workdir = PathBuf::from(task.paths.workdir());
    let task_dir = PathBuf::from(task.paths.task_dir());
    let changed = if task.checks.iter().any(|c| c.template.is_some()) {
        let (dir, base) = (workdir.clone(), run.base.clone());
        tokio::task::spawn_blocking(move || {
            crate::isolation::changes::changed_files(&dir, &base).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    } else {
        Ok(Vec::new())
    };
    let mut records = Vec::with_capacity(task.checks.len());
    for (i, check) in task.checks.iter().enumerate() {
        if *run.stop.borrow() != Stop::No {
            return Checked {
                records,
                stopped: true,
            };
        }
        let log = layout::check_log(run.attempt, i + 1);
        let command = changed
            .as_deref()
            .map_err(|e| format!("cannot list the files the task changed: {e}"))
            .and_then(|files| check.render_with_changes(files));
        let command = match command {
            Ok(command) => command,
            Err(why) => {
                records.push(not_run(&check.name, &check.run, log, why, &run.redactor));
                continue;
            }
        };
        forget_planted(&task_dir, &log);
        let launch = Launch {
            argv: vec!["sh".to_owned(), "-c".to_owned(), command.clone()],
            env: run.env.clone(),
            // A check is the manifest author's command, not the worker's:
            // it runs outside any sandbox, with dispatch's environment.
            clear_env: false,
            ignore_term: false,
            cwd: workdir.clone(),
            stdin: None,
            log: task_dir.join(&log),
            timeout: duration::parse(&check.timeout),
            grace: run.grace,
            leak_timeout: LEAK_TIMEOUT,
            redactor: run.redactor.clone(),
            // A check's quiet is not a worker's: only its timeout applies.
            activity: None,
        };
        let record = match process::run(launch, run.stop.clone(), None).await {
            Ok(finished) if finished.stopped => {
                return Checked {
                    records,
                    stopped: true,
                }
            }
            Ok(finished) => CheckRecord {
                name: check.name.clone(),
                command: run.redactor.scrub(command),
                passed: finished.exit == process::Exit::Code(0) && !finished.timed_out,
                exit: Some(finished.exit),
                timed_out: finished.timed_out,
                duration_ms: finished.duration.as_millis() as u64,
                tail: output_tail(&task_dir.join(&log)),
                log,
            },
            Err(e) => not_run(&check.name, &command, log, e.to_string(), &run.redactor),
        };
        records.push(record);
    }
    Checked {
        records,
        stopped: false,
    }
}

/// A check's log is new to this attempt: anything already in its place was
/// put there by the worker (to have its text in the check's tail), so it
/// is removed first, without following a link.
fn forget_planted(task_dir: &Path, log: &str) {
    let path = task_dir.join(log);
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if let (Ok(dir), Some(name)) = (crate::state::beneath::Dir::open(folder), name.to_str()) {
        let _ = dir.remove(name);
    }
}

/// The end of a check's log for reports and the retry prompt: redacted as
/// it was written, control characters removed.
fn output_tail(path: &Path) -> String {
    crate::report::tail(path, crate::report::LOG_TAIL_BYTES)
}

fn not_run(
    name: &str,
    command: &str,
    log: String,
    why: String,
    redactor: &Redactor,
) -> CheckRecord {
    CheckRecord {
        name: name.to_owned(),
        command: redactor.scrub(command.to_owned()),
        passed: false,
        exit: None,
        timed_out: false,
        duration_ms: 0,
        log,
        tail: redactor.scrub(why),
    }
}
