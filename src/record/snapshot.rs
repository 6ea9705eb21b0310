//! A run as it stands on disk, for `dispatch status` from another terminal
//! while the run goes on, or after it ended.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RunRecord, TaskRecord};
use crate::domain::checklist::Checklist;
use crate::domain::redact::{Redact, Redactor};
use crate::domain::status::{RunStatus, TaskStatus};
use crate::state::plan_watch as monitor;
use crate::state::{read_bounded, StateDir};
use crate::supervise::procfs::{is_same_process, Marker};

/// One task: its record and its plan as the worker has left it.
#[derive(Clone, Debug, Serialize)]
pub struct TaskView {
    pub record: TaskRecord,
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
    let run_id = match run_id {
        Some(id) => id.to_owned(),
        None => state
            .latest_run()
            .ok_or_else(|| SnapshotError::NoRuns(state.runs_dir()))?,
    };
    let run_dir = state.run_dir(&run_id);
    let run_json = run_dir.join("run.json");
    if !run_json.is_file() {
        return Err(SnapshotError::NoSuchRun(run_id, state.runs_dir()));
    }
    let run: RunRecord = read_json(&run_json)?;
    let mut tasks = Vec::new();
    for id in &run.tasks {
        // The task's folder is current unless a later run archived it into
        // this run's folder.
        let current = state.task_dir(id);
        let archived = run_dir.join("tasks").join(id);
        let dir = [current, archived].into_iter().find(|dir| {
            read_json::<TaskRecord>(&dir.join("task.json")).is_ok_and(|r| r.run_id == run.run_id)
        });
        let Some(dir) = dir else { continue };
        let record: TaskRecord = read_json(&dir.join("task.json"))?;
        let plan = monitor::read_plan(&dir.join("plan.md"));
        let waiting = crate::ipc::questions::waiting(&dir.join("ipc"))
            .unwrap_or_default()
            .into_iter()
            .map(|q| WaitingQuestion {
                seq: q.seq,
                text: q.text,
            })
            .collect();
        tasks.push(TaskView {
            record,
            plan,
            waiting,
        });
    }
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
    Ok(snapshot)
}

/// The run's process died without concluding (kill -9, reboot, hang-up):
/// a task whose worker is still alive is still running, and says that
/// nothing watches it any more; the others were cut off with the run.
fn mark_dead_run(snapshot: &mut Snapshot) {
    let mut orphans = 0;
    for task in &mut snapshot.tasks {
        let record = &mut task.record;
        if record.status != TaskStatus::Running {
            continue;
        }
        let marker = Marker::task(&snapshot.run.run_id, &record.id);
        let alive = record
            .pid
            .is_some_and(|pid| is_same_process(pid, record.pid_start_time, Some(&marker)));
        if alive {
            orphans += 1;
            record.reason = Some(ORPHANED.to_owned());
        } else {
            record.status = TaskStatus::Cancelled;
            record.reason = Some("the run's process is gone".to_owned());
        }
    }
    snapshot.run.status = RunStatus::Interrupted;
    snapshot.orphaned = orphans;
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
