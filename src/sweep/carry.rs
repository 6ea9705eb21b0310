//! Rerunning exactly what needs it: `dispatch run --retry-failed RUN` and
//! `--rerun TASK...` start a new run that carries every other task over
//! from an earlier run as it ended, so the new run's reports cover the
//! whole sweep. Nothing of the earlier run is overwritten: its task folders
//! are archived into its own run folder as usual, and the new run works on
//! copies.

use std::path::{Path, PathBuf};

use crate::domain::checklist::{self, ItemState};
use crate::domain::status::TaskStatus;
use crate::manifest::diagnostic::did_you_mean;
use crate::plan::SweepPlan;
use crate::record::snapshot;
use crate::record::TaskRecord;
use crate::state::{self, StateDir, StateError};

/// What to run again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rerun {
    /// Failed, timed-out and budget-exceeded tasks, continuing where they
    /// stopped, and the tasks that never started because of them.
    Failed,
    /// These tasks, from a fresh plan.
    Tasks(Vec<String>),
}

/// `--retry-failed RUN` or `--rerun TASK... [--from RUN]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarryOptions {
    /// The earlier run (default: the latest).
    pub from: Option<String>,
    pub rerun: Rerun,
}

/// Why a rerun cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error("{0}")]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("--rerun names `{task}`, which is not a task of this manifest{hint}")]
    UnknownTask { task: String, hint: String },
    #[error("run {0} is still going; wait for it to end, or stop it first")]
    StillRunning(String),
    /// `dispatch resume` will not run what the user did not start.
    #[error("{0}")]
    Resume(String),
    #[error("cannot stop what the earlier run left running: {0}")]
    Leftovers(String),
}

/// What becomes of one task of the new run. Its record is boxed: a run
/// holds one fate per task while it starts, most of them `Fresh`.
#[derive(Clone, Debug)]
pub enum Fate {
    /// Not in the earlier run: runs as in any run.
    Fresh,
    /// Kept as it ended; its folder is copied from `dir`.
    Carried {
        record: Box<TaskRecord>,
        dir: PathBuf,
    },
    /// Runs again from where it stopped (its plan so far, `context.md`),
    /// as a further attempt.
    Continued {
        record: Box<TaskRecord>,
        dir: PathBuf,
    },
    /// Runs again from a fresh plan; its earlier attempts stay on record.
    Restarted { record: Box<TaskRecord> },
    /// `dispatch resume`: the run's own task, left as it ended.
    Kept { record: Box<TaskRecord> },
    /// `dispatch resume`: the run's own task, run again in place from
    /// where it stopped (or started, if it never ran).
    Resumed { record: Box<TaskRecord> },
}

impl Fate {
    /// Whether the task runs in the new run.
    pub fn runs(&self) -> bool {
        !matches!(self, Fate::Carried { .. } | Fate::Kept { .. })
    }

    /// Whether a worktree task may take up the branch its earlier run made.
    pub fn reuses_worktree(&self) -> bool {
        matches!(
            self,
            Fate::Continued { .. } | Fate::Restarted { .. } | Fate::Resumed { .. }
        )
    }

    /// Whether the task goes on from its plan so far (a prompt that says
    /// so), rather than from the start.
    pub fn continues(&self) -> bool {
        match self {
            Fate::Continued { .. } => true,
            Fate::Resumed { record } => !record.attempts.is_empty(),
            _ => false,
        }
    }
}

/// Decide each planned task's fate against the earlier run. Returns the
/// earlier run's id and the fates in plan order.
pub fn decide(
    state: &StateDir,
    plan: &SweepPlan,
    options: &CarryOptions,
    grace: std::time::Duration,
    notes: &mut Vec<String>,
) -> Result<(String, Vec<Fate>), CarryError> {
    let earlier = snapshot::load(state, options.from.as_deref())?;
    if earlier.live {
        return Err(CarryError::StillRunning(earlier.run.run_id));
    }
    let by = match options.rerun {
        Rerun::Failed => "run --retry-failed",
        Rerun::Tasks(_) => "run --rerun",
    };
    // The fates are decided on the snapshot from before: a task whose
    // worker was still running is unfinished (and retried), not cancelled.
    super::start::stop_earlier(state, &earlier, grace, by, notes)?;
    let from = earlier.run.run_id.clone();
    if let Rerun::Tasks(ids) = &options.rerun {
        for id in ids {
            if !plan.tasks.iter().any(|t| &t.id == id) {
                let hint = did_you_mean(id, plan.tasks.iter().map(|t| t.id.as_str()))
                    .map(|close| format!("; did you mean `{close}`?"))
                    .unwrap_or_default();
                return Err(CarryError::UnknownTask {
                    task: id.clone(),
                    hint,
                });
            }
        }
    }
    let mut fates = Vec::with_capacity(plan.tasks.len());
    let views: std::collections::HashMap<&str, &snapshot::TaskView> = earlier
        .tasks
        .iter()
        .map(|v| (v.record.id.as_str(), v))
        .collect();
    for task in &plan.tasks {
        let Some(view) = views.get(task.id.as_str()) else {
            fates.push(Fate::Fresh);
            continue;
        };
        let record = view.record.clone();
        let dir = folder_of(state, &from, &task.id);
        let fate = match &options.rerun {
            Rerun::Failed if needs_retry(&record) => Fate::Continued { record, dir },
            Rerun::Tasks(ids) if ids.contains(&task.id) => Fate::Restarted { record },
            _ => Fate::Carried { record, dir },
        };
        fates.push(fate);
    }
    Ok((from, fates))
}

/// What `dispatch resume` does with each task of the run it resumes:
/// complete ones, over-budget ones and ones still waiting on an unanswered
/// question are kept; the rest (failed, timed out, incomplete, cancelled,
/// left running by a dead process, never started, blocked on a question
/// answered since) run again in place.
pub fn resume_fates(plan: &SweepPlan, run: &snapshot::Snapshot) -> Vec<Fate> {
    // By id, once: a scan of the run's tasks per task is quadratic.
    let views: std::collections::HashMap<&str, &snapshot::TaskView> = run
        .tasks
        .iter()
        .map(|v| (v.record.id.as_str(), v))
        .collect();
    plan.tasks
        .iter()
        .map(|task| {
            let Some(view) = views.get(task.id.as_str()) else {
                return Fate::Fresh;
            };
            let mut record = view.record.clone();
            let keep = match record.status {
                TaskStatus::Complete | TaskStatus::BudgetExceeded => true,
                TaskStatus::Blocked => !view.waiting.is_empty(),
                _ => false,
            };
            if keep {
                Fate::Kept { record }
            } else {
                restart(&mut record);
                Fate::Resumed { record }
            }
        })
        .collect()
}

/// Prepare a resumed task's folder in place: failed and blocked items
/// reopened, the answers given since recorded.
pub fn resume_in_place(state: &StateDir, record: &mut TaskRecord) -> Result<(), StateError> {
    let dir = state.task_dir(&record.id);
    reopen_items(&dir.join("plan.md"))?;
    super::check_verdict::reopen_for_rerun(&dir, record)?;
    for question in crate::ipc::questions::list(&dir.join("ipc")).unwrap_or_default() {
        let Some(answer) = question.answer else {
            continue;
        };
        match record.questions.iter_mut().find(|q| q.seq == question.seq) {
            Some(known) if known.answer.is_none() => {
                known.answer = Some(answer);
                known.answered_by = Some("dispatch answer".to_owned());
            }
            Some(_) => {}
            None => record.questions.push(crate::record::QuestionRecord {
                seq: question.seq,
                text: question.text,
                answer: Some(answer),
                answered_by: Some("dispatch answer".to_owned()),
                asked_at: None,
                answered_at: None,
            }),
        }
    }
    state::write_json(&dir.join("task.json"), record)
}

/// Failed, timed out, stalled or over budget, or never started (skipped or
/// cancelled with no attempt): what `--retry-failed` runs again.
fn needs_retry(record: &TaskRecord) -> bool {
    match record.status {
        // Left running by a run whose process died: stopped before this
        // run starts, and not finished.
        TaskStatus::Failed
        | TaskStatus::CheckFailed
        | TaskStatus::TimedOut
        | TaskStatus::Stalled
        | TaskStatus::BudgetExceeded
        | TaskStatus::Running => true,
        TaskStatus::Skipped | TaskStatus::Cancelled => record.attempts.is_empty(),
        _ => false,
    }
}

/// Where run `run_id` left task `id`: its current folder while no later
/// run took the id, else the copy archived into that run's folder.
fn folder_of(state: &StateDir, run_id: &str, id: &str) -> PathBuf {
    let current = state.task_dir(id);
    let owned = state::read_bounded(&current.join("task.json"), 16 * 1024 * 1024)
        .ok()
        .and_then(|text| serde_json::from_str::<TaskRecord>(&text).ok())
        .is_some_and(|r| *r.run_id == *run_id);
    if owned {
        current
    } else {
        state.run_dir(run_id).join("tasks").join(id)
    }
}

/// Lay out a carried or continued task's folder for the new run: the
/// earlier folder is archived (as any run does) and its files copied back,
/// so both runs keep theirs. A continued task's failed and blocked items
/// are set back to pending, for the new attempt to take up.
pub fn install(
    state: &StateDir,
    fate: &Fate,
    new_run: &str,
    from_run: &str,
) -> Result<Option<TaskRecord>, StateError> {
    let (mut record, dir, continued) = match fate {
        Fate::Fresh | Fate::Kept { .. } | Fate::Resumed { .. } => return Ok(None),
        Fate::Restarted { record } => {
            let mut record = TaskRecord::clone(record);
            restart(&mut record);
            record.run_id = new_run.into();
            return Ok(Some(record));
        }
        Fate::Carried { record, dir } => (TaskRecord::clone(record), dir.clone(), false),
        Fate::Continued { record, dir } => (TaskRecord::clone(record), dir.clone(), true),
    };
    let target = state.task_dir(&record.id);
    let archived = state.archive_task(&record.id)?;
    // The earlier folder may just have moved into the archive.
    let source = match archived {
        Some(moved) if dir == target => moved,
        _ => dir,
    };
    copy_folder(&source, &target)?;
    record.run_id = new_run.into();
    if continued {
        restart(&mut record);
        reopen_items(&target.join("plan.md"))?;
        super::check_verdict::reopen_for_rerun(&target, &record)?;
    } else {
        record.carried_from = Some(from_run.to_owned());
    }
    state::write_json(&target.join("task.json"), &record)?;
    Ok(Some(record))
}

/// A task about to run again: pending, its earlier attempts kept.
fn restart(record: &mut TaskRecord) {
    record.status = TaskStatus::Pending;
    record.reason = None;
    record.ended_at = None;
    record.pid = None;
    record.pid_start_time = None;
    record.exit = None;
    record.outcome = None;
    record.carried_from = None;
}

/// `[!]` and `[?]` items back to `[ ]`, notes kept.
fn reopen_items(plan: &Path) -> Result<(), StateError> {
    let Ok(mut text) = std::fs::read_to_string(plan) else {
        return Ok(());
    };
    let lines: Vec<(usize, Option<String>)> = checklist::parse(&text)
        .items
        .iter()
        .filter(|i| matches!(i.state, ItemState::Failed | ItemState::Blocked))
        .map(|i| (i.line, i.note.clone()))
        .collect();
    for (line, note) in lines {
        if let Some(changed) =
            checklist::set_state(&text, line, ItemState::Pending, note.as_deref())
        {
            text = changed;
        }
    }
    state::write_state(plan, text.as_bytes())
}

/// Copy a task folder (files, `ipc/` and the worker's log, to which a new
/// attempt appends; links are not followed).
fn copy_folder(source: &Path, target: &Path) -> Result<(), StateError> {
    state::ensure_dir(target)?;
    let entries = std::fs::read_dir(source).map_err(|e| StateError::io(source, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let from = entry.path();
        let to = target.join(&name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            copy_folder(&from, &to)?;
        } else if kind.is_file() {
            std::fs::copy(&from, &to).map_err(|e| StateError::io(&from, e))?;
        }
    }
    Ok(())
}
