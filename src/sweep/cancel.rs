//! `dispatch cancel [RUN] [--task ID]...`: stop a sweep, or some of its
//! tasks, from another terminal. A live run is asked through its own
//! process (SIGTERM for the whole run; for tasks, an `ipc/.cancel` file in
//! each and SIGUSR1 to look), so its workers stop gracefully and its
//! records and reports say what happened. When the run's process is gone
//! (killed with `kill -9`), the workers it left are stopped directly.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::domain::status::TaskStatus;
use crate::record::snapshot::{self, SnapshotError};
use crate::record::TaskRecord;
use crate::state::lock::process_alive;
use crate::state::{self, StateDir};

/// The file in a task's `ipc/` that asks the running dispatch to cancel it.
pub const CANCEL_FILE: &str = ".cancel";

/// Why a cancel could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("{0}")]
    Snapshot(#[from] SnapshotError),
    #[error("run {run} has no task `{task}`")]
    UnknownTask { run: String, task: String },
    #[error("{0}")]
    State(#[from] state::StateError),
}

/// What was done.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The live run was asked to stop (these tasks, or all).
    Asked { run: String, tasks: Vec<String> },
    /// The run's process was gone; these workers were stopped directly.
    Stopped { run: String, tasks: Vec<String> },
    /// Nothing was running.
    NothingRunning { run: String },
}

/// Cancel `tasks` (all when empty) of run `run` (default: the latest).
pub fn cancel(
    state: &StateDir,
    run: Option<&str>,
    tasks: &[String],
    grace: Duration,
) -> Result<Cancelled, CancelError> {
    let snapshot = snapshot::load(state, run)?;
    let run_id = snapshot.run.run_id.clone();
    for task in tasks {
        if !snapshot.tasks.iter().any(|t| &t.record.id == task) {
            return Err(CancelError::UnknownTask {
                run: run_id,
                task: task.clone(),
            });
        }
    }
    let chosen: Vec<&TaskRecord> = snapshot
        .tasks
        .iter()
        .map(|t| &t.record)
        .filter(|r| tasks.is_empty() || tasks.contains(&r.id))
        .collect();
    if snapshot.live {
        let pid = snapshot.run.pid as i32;
        if tasks.is_empty() {
            signal(pid, libc::SIGTERM);
        } else {
            for record in &chosen {
                let ipc = state.task_dir(&record.id).join("ipc");
                state::write_state(&ipc.join(CANCEL_FILE), b"dispatch cancel\n")?;
            }
            signal(pid, libc::SIGUSR1);
        }
        return Ok(Cancelled::Asked {
            run: run_id,
            tasks: chosen.iter().map(|r| r.id.clone()).collect(),
        });
    }
    // The run's process is gone: stop the workers it left, and record it.
    let mut stopped = Vec::new();
    for view in &snapshot.tasks {
        let record = &view.record;
        if !(tasks.is_empty() || tasks.contains(&record.id)) {
            continue;
        }
        let Some(pid) = record.pid.filter(|&pid| process_alive(pid)) else {
            continue;
        };
        if record.ended_at.is_some() {
            continue;
        }
        stop_group(pid as i32, grace);
        let path = state.task_dir(&record.id).join("task.json");
        if let Ok(text) = state::read_bounded(&path, 16 * 1024 * 1024) {
            if let Ok(mut on_disk) = serde_json::from_str::<TaskRecord>(&text) {
                if on_disk.run_id == run_id {
                    on_disk.status = TaskStatus::Cancelled;
                    on_disk.reason = Some(
                        "cancelled by `dispatch cancel` after its run's process was gone"
                            .to_owned(),
                    );
                    on_disk.ended_at = Some(crate::util::clock::now());
                    state::write_json(&path, &on_disk)?;
                }
            }
        }
        stopped.push(record.id.clone());
    }
    if stopped.is_empty() {
        Ok(Cancelled::NothingRunning { run: run_id })
    } else {
        Ok(Cancelled::Stopped {
            run: run_id,
            tasks: stopped,
        })
    }
}

fn signal(pid: i32, signal: i32) {
    if pid > 1 {
        // SAFETY: kill(2) with a positive pid only signals that process.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// SIGTERM to a worker's process group, SIGKILL after `grace`.
fn stop_group(pid: i32, grace: Duration) {
    if pid <= 1 {
        return;
    }
    // SAFETY: a negative pid signals that process group only.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && process_alive(pid as u32) {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Whether someone asked to cancel the task whose `ipc/` is `ipc`.
pub fn requested(ipc: &Path) -> bool {
    std::fs::symlink_metadata(ipc.join(CANCEL_FILE)).is_ok()
}
