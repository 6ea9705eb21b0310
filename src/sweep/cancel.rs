//! `dispatch cancel [RUN] [--task ID]...`: stop a sweep, or some of its
//! tasks, from another terminal. A live run is asked through its own
//! process (SIGINT for the whole run, as Ctrl-C; for tasks, an `ipc/.cancel` file in
//! each and SIGUSR1 to look), so its workers stop gracefully and its
//! records and reports say what happened. When the run's process is gone
//! (killed with `kill -9`), the workers it left are stopped directly.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::domain::status::TaskStatus;
use crate::record::snapshot::{self, Snapshot, SnapshotError};
use crate::record::TaskRecord;
use crate::state::{self, StateDir};
use crate::supervise::procfs::{self, is_same_process, Marker};
use crate::supervise::reaper::{self, Scope, Stray};

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
        .map(|t| &*t.record)
        .filter(|r| tasks.is_empty() || tasks.contains(&r.id))
        .collect();
    if snapshot.live {
        let pid = snapshot.run.pid;
        let start = snapshot.run.pid_start_time;
        let signal = if tasks.is_empty() {
            // As Ctrl-C at its terminal: the run ends `interrupted`, 130.
            libc::SIGINT
        } else {
            for record in &chosen {
                let ipc = state.task_dir(&record.id).join("ipc");
                state::write_state(&ipc.join(CANCEL_FILE), b"dispatch cancel\n")?;
            }
            libc::SIGUSR1
        };
        // Checked again just before the signal: the run may have ended
        // since the snapshot, and its pid been given to another process.
        if !signal_run(pid, start, signal) {
            return Ok(Cancelled::NothingRunning { run: run_id });
        }
        return Ok(Cancelled::Asked {
            run: run_id,
            tasks: chosen.iter().map(|r| r.id.clone()).collect(),
        });
    }
    // The run's process is gone: stop the workers it left, and record it.
    let stopped = stop_left_behind(
        state,
        &snapshot,
        tasks,
        grace,
        "cancelled by `dispatch cancel` after its run's process was gone",
        "cancel",
    )?;
    if stopped.is_empty() {
        Ok(Cancelled::NothingRunning { run: run_id })
    } else {
        Ok(Cancelled::Stopped {
            run: run_id,
            tasks: stopped,
        })
    }
}

/// Stop what a run whose process is gone left running of `tasks` (all
/// when empty): each worker's process group, while its leader is still the
/// recorded worker (same pid and start time), and every process anywhere
/// that carries the task's marker (what left the group with `setsid`, or a
/// group whose leader is gone). A task found running is recorded as
/// cancelled for `reason`, with what was stopped. Returns those tasks.
pub fn stop_left_behind(
    state: &StateDir,
    snapshot: &Snapshot,
    tasks: &[String],
    grace: Duration,
    reason: &str,
    when: &str,
) -> Result<Vec<String>, CancelError> {
    let run_id = &snapshot.run.run_id;
    let mut stopped = Vec::new();
    for view in &snapshot.tasks {
        let record = &view.record;
        if !(tasks.is_empty() || tasks.contains(&record.id)) || record.ended_at.is_some() {
            continue;
        }
        let marker = Marker::task(run_id, &record.id);
        let mut strays = Vec::new();
        if let Some(pid) = record.pid {
            if is_same_process(pid, record.pid_start_time, Some(&marker)) {
                strays.push(Stray {
                    pid,
                    command: procfs::command_name(pid as procfs::Pid),
                    when: when.to_owned(),
                });
                stop_group(pid, record.pid_start_time, &marker, grace);
            }
        }
        for stray in reaper::stop_marked(&marker, Scope::Anywhere, grace, when) {
            if !strays.iter().any(|s| s.pid == stray.pid) {
                strays.push(stray);
            }
        }
        if strays.is_empty() {
            continue;
        }
        record_stopped(state, run_id, &record.id, reason, &strays)?;
        stopped.push(record.id.clone());
    }
    Ok(stopped)
}

/// Note in the task's `task.json` that its leftovers were stopped.
fn record_stopped(
    state: &StateDir,
    run_id: &str,
    id: &str,
    reason: &str,
    strays: &[Stray],
) -> Result<(), CancelError> {
    let path = state.task_dir(id).join("task.json");
    let Ok(text) = state::read_bounded(&path, 16 * 1024 * 1024) else {
        return Ok(());
    };
    let Ok(mut on_disk) = serde_json::from_str::<TaskRecord>(&text) else {
        return Ok(());
    };
    if *on_disk.run_id != *run_id {
        return Ok(());
    }
    if on_disk.ended_at.is_none() {
        on_disk.status = TaskStatus::Cancelled;
        on_disk.reason = Some(reason.to_owned());
        on_disk.ended_at = Some(crate::util::clock::now());
        if let Some(attempt) = on_disk.attempts.last_mut() {
            attempt.status.get_or_insert(TaskStatus::Cancelled);
            attempt.reason.get_or_insert_with(|| reason.to_owned());
        }
    }
    on_disk.strays.extend_from_slice(strays);
    state::write_json(&path, &on_disk)?;
    Ok(())
}

/// Signal a live run's own process, if `pid` is still that process.
fn signal_run(pid: u32, start_time: Option<u64>, signal: i32) -> bool {
    if pid <= 1 || !is_same_process(pid, start_time, None) {
        return false;
    }
    // SAFETY: kill(2) with a positive pid only signals that process,
    // identified just above by its start time.
    unsafe { libc::kill(pid as i32, signal) == 0 }
}

/// SIGTERM to a worker's process group, SIGKILL after `grace`; each signal
/// only while the group's leader is still the recorded worker.
fn stop_group(pid: u32, start_time: Option<u64>, marker: &Marker, grace: Duration) {
    let still_it = || is_same_process(pid, start_time, Some(marker));
    let group = pid as i32;
    if group <= 1 || !still_it() {
        return;
    }
    // SAFETY: a negative pid signals that process group only; its leader
    // was identified just above.
    unsafe {
        libc::kill(-group, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && still_it() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if still_it() {
        // SAFETY: as above, the leader is still the recorded worker.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

/// Whether someone asked to cancel the task whose `ipc/` is `ipc`.
pub fn requested(ipc: &Path) -> bool {
    std::fs::symlink_metadata(ipc.join(CANCEL_FILE)).is_ok()
}
