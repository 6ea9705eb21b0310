//! A run as it stands on disk, for `dispatch status` from another terminal
//! while the run goes on, or after it ended.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::folder::Folder;
use super::{RunRecord, TaskRecord};
use crate::domain::checklist::Checklist;
use crate::domain::redact::{Redact, Redactor};
use crate::domain::status::{RunStatus, TaskStatus};
use crate::state::plan_watch as monitor;
use crate::state::{layout, read_bounded, StateDir};
use crate::supervise::procfs::{is_same_process, Marker};

/// One task: its record and its plan as the worker has left it.
#[derive(Clone, Debug, Serialize)]
pub struct TaskView {
    /// Boxed: a finished run hands its records (already boxed, one per
    /// task) to the reports' snapshot, and a vector of them inline was a
    /// second copy of every record at once (58 MB at 50,000 tasks, the
    /// run's memory peak).
    pub record: Box<TaskRecord>,
    pub plan: Option<Checklist>,
    /// Questions waiting for an answer, read from its `ipc/` folder (the
    /// files are the truth, even when the run that saw them is gone).
    pub waiting: Vec<WaitingQuestion>,
}

/// A question without an answer.
#[derive(Clone, Debug, Serialize)]
pub struct WaitingQuestion {
    pub seq: u32,
    pub text: String,
}

/// A run and its tasks.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub run: RunRecord,
    /// Whether the process running it is still alive.
    pub live: bool,
    /// Workers still running although the run's process is gone (killed
    /// with `kill -9`): `dispatch cancel` or `resume` stops them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orphaned: usize,
    pub tasks: Vec<TaskView>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What `dispatch status` and the reports show of a run read back from
/// disk: the records, and the plans and waiting questions the workers
/// wrote, which were never redacted.
impl Redact for Snapshot {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.run.escalations.redact_with(redactor);
        for task in &mut self.tasks {
            task.record.redact_with(redactor);
            task.plan.redact_with(redactor);
            for question in &mut task.waiting {
                question.text.redact_with(redactor);
            }
        }
    }
}

/// The redactor a command reading a run from disk uses: the secret values
/// of its own environment, and of the variables the run's manifest named
/// under `secrets:`.
pub fn redactor(run: &RunRecord) -> Redactor {
    Redactor::from_env(&run.secrets)
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no runs under {0}; start one with `dispatch run MANIFEST`")]
    NoRuns(PathBuf),
    #[error("no run `{0}` under {1}")]
    NoSuchRun(String, PathBuf),
    #[error("cannot read {0}: {1}")]
    Unreadable(PathBuf, String),
}

/// Load run `run_id` (default: the latest).
pub fn load(state: &StateDir, run_id: Option<&str>) -> Result<Snapshot, SnapshotError> {
    let run = load_run(state, run_id)?;
    let tasks = load_tasks(state, &run, run.tasks.iter().map(String::as_str))?;
    Ok(assemble(run, tasks))
}

/// [`load`] for the reports, which show the questions the records hold
/// and never the waiting files: each task's `ipc/` folder is not listed
/// (two calls fewer per task, 100,000 at 50,000 tasks).
pub fn load_for_report(state: &StateDir, run_id: Option<&str>) -> Result<Snapshot, SnapshotError> {
    let run = load_run(state, run_id)?;
    let ids: Vec<&str> = run.tasks.iter().map(String::as_str).collect();
    let parts = crate::util::parallel::map_chunks(&ids, |part| load_part(state, &run, part, false));
    Ok(assemble(run, concat(parts)))
}

/// The record of run `run_id` (default: the latest), without its tasks.
pub fn load_run(state: &StateDir, run_id: Option<&str>) -> Result<RunRecord, SnapshotError> {
    let run_id = match run_id {
        // An id, never a path (`runs/<id>` must stay under `runs/`).
        Some(id) if crate::domain::ids::run_id(id).is_err() => {
            return Err(SnapshotError::NoSuchRun(id.to_owned(), state.runs_dir()))
        }
        Some(id) => id.to_owned(),
        None => state
            .latest_run()
            .ok_or_else(|| SnapshotError::NoRuns(state.runs_dir()))?,
    };
    let run_json = state.run_dir(&run_id).join("run.json");
    if !run_json.is_file() {
        return Err(SnapshotError::NoSuchRun(run_id, state.runs_dir()));
    }
    read_json(&run_json)
}

/// The tasks `ids` of `run` as they stand on disk, in the order given; a
/// task whose folder holds no record of this run is left out. A large
/// run's folders are read on every core (a 50,000-task report reads
/// 200,000 files).
pub fn load_tasks<'a>(
    state: &StateDir,
    run: &RunRecord,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<TaskView>, SnapshotError> {
    let ids: Vec<&str> = ids.into_iter().collect();
    let parts = crate::util::parallel::map_chunks(&ids, |part| load_part(state, run, part, true));
    Ok(concat(parts))
}

/// The parts in order, each freed as it is moved (collecting a flattened
/// iterator keeps every part until the end: at 50,000 tasks the records
/// twice over, 100 MB).
pub fn concat<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    let mut all = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for mut part in parts {
        all.append(&mut part);
    }
    all
}

/// [`load_tasks`] of one part of the ids, on the calling thread; with
/// `waiting`, each task's waiting questions too.
fn load_part(state: &StateDir, run: &RunRecord, ids: &[&str], waiting: bool) -> Vec<TaskView> {
    ids.iter()
        .filter_map(|id| load_task(state, run, id, waiting))
        .collect()
}

/// Task `id` of `run` as it stands on disk, or `None` when its folder
/// holds no record of this run; with `waiting`, its waiting questions
/// too. Its folder is opened once and each file read relative to it.
pub fn load_task(state: &StateDir, run: &RunRecord, id: &str, waiting: bool) -> Option<TaskView> {
    // The task's folder is current unless a later run archived it into
    // this run's folder.
    let current = state.task_dir(id);
    let archived = state.run_dir(&run.run_id).join("tasks").join(id);
    let (folder, record) = [current, archived].into_iter().find_map(|dir| {
        let folder = Folder::open(dir).ok()?;
        read_record(&folder)
            .filter(|r| *r.run_id == *run.run_id)
            .map(|record| (folder, record))
    })?;
    let plan = folder
        .read(layout::PLAN, monitor::MAX_PLAN_BYTES)
        .ok()
        .map(|text| crate::domain::checklist::parse(&text));
    let waiting = if waiting {
        crate::ipc::questions::waiting(&folder.path().join(layout::IPC))
            .unwrap_or_default()
            .into_iter()
            .map(|q| WaitingQuestion {
                seq: q.seq,
                text: q.text,
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(TaskView {
        record: Box::new(record),
        plan,
        waiting,
    })
}

/// The `task.json` in `folder`; read twice if need be (see [`read_json`]).
fn read_record(folder: &Folder) -> Option<TaskRecord> {
    let read = || -> Option<TaskRecord> {
        let text = folder.read(layout::TASK_RECORD, 16 * 1024 * 1024).ok()?;
        serde_json::from_str(&text).ok()
    };
    read().or_else(read)
}

/// A snapshot of `run` with `tasks` (all of them, or the part a caller
/// needs): whether its process is alive, and if it died without
/// concluding, what became of its tasks.
pub fn assemble(run: RunRecord, tasks: Vec<TaskView>) -> Snapshot {
    let live = run.ended_at.is_none() && is_same_process(run.pid, run.pid_start_time, None);
    let mut snapshot = Snapshot {
        run,
        live,
        orphaned: 0,
        tasks,
    };
    if !snapshot.live && snapshot.run.ended_at.is_none() {
        mark_dead_run(&mut snapshot);
    }
    snapshot
}

/// The run's process died without concluding (kill -9, reboot, hang-up):
/// a task whose worker is still alive is still running, and says that
/// nothing watches it any more; the others were cut off with the run.
fn mark_dead_run(snapshot: &mut Snapshot) {
    let mut orphans = 0;
    for task in &mut snapshot.tasks {
        if mark_dead_task(&snapshot.run.run_id, &mut task.record) {
            orphans += 1;
        }
    }
    snapshot.run.status = RunStatus::Interrupted;
    snapshot.orphaned = orphans;
}

/// [`mark_dead_run`] for one task of run `run_id`, for a caller reading
/// the tasks one at a time; true when its worker is still alive.
pub fn mark_dead_task(run_id: &str, record: &mut TaskRecord) -> bool {
    if record.status != TaskStatus::Running {
        return false;
    }
    let marker = Marker::task(run_id, &record.id);
    let alive = record
        .pid
        .is_some_and(|pid| is_same_process(pid, record.pid_start_time, Some(&marker)));
    if alive {
        record.reason = Some(ORPHANED.to_owned());
    } else {
        record.status = TaskStatus::Cancelled;
        record.reason = Some("the run's process is gone".to_owned());
    }
    alive
}

/// The reason a task shows while its worker outlives its dispatch.
pub const ORPHANED: &str = "still running, but its dispatch is gone: `dispatch cancel` stops it, `dispatch resume` stops it and runs it again";

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SnapshotError> {
    let read = || -> Result<T, SnapshotError> {
        let text = read_bounded(path, 16 * 1024 * 1024)
            .map_err(|e| SnapshotError::Unreadable(path.to_path_buf(), e.to_string()))?;
        serde_json::from_str(&text)
            .map_err(|e| SnapshotError::Unreadable(path.to_path_buf(), e.to_string()))
    };
    // A running dispatch rewrites its files by exchanging them with a
    // sibling it then writes in place: a read that straddled two rewrites
    // can see a torn file. Once more settles it.
    read().or_else(|_| read())
}
