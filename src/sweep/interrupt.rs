//! Stopping from outside: Ctrl-C and SIGTERM stop every worker (a second
//! one kills them), and `dispatch cancel --task` (an `ipc/.cancel` file and
//! SIGUSR1) stops some tasks, or keeps them from starting.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::Sweep;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::supervise::process::Stop;

impl Sweep {
    /// `dispatch cancel --task` left `ipc/.cancel` in some tasks: stop
    /// those running, and never start those waiting (also during a retry's
    /// back-off).
    pub(super) fn cancel_requested(&mut self) {
        let tasks = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot.record.status.is_final())
            .map(|(index, slot)| (index, PathBuf::from(slot.task.paths.ipc())))
            .collect();
        // Which of them is a `stat` each: on the reading thread.
        self.plans.cancels(tasks);
    }

    /// These tasks hold an `ipc/.cancel`.
    pub(super) fn cancelled(&mut self, tasks: Vec<usize>) {
        for index in tasks {
            let slot = &self.slots[index];
            if slot.record.status.is_final() {
                continue;
            }
            let reason = "cancelled by `dispatch cancel`".to_owned();
            if slot.stop.is_some() {
                if slot.ended_by.is_none() {
                    self.slots[index].ended_by = Some((TaskStatus::Cancelled, reason));
                    self.stop(index);
                }
            } else if slot.waiting() {
                self.end_unlaunched(index, TaskStatus::Cancelled, reason);
            }
        }
    }

    pub(super) fn interrupt(&mut self) {
        self.interrupted += 1;
        let force = self.interrupted > 1;
        let request = if force { Stop::Now } else { Stop::Graceful };
        for stop in self.slots.iter().filter_map(|s| s.stop.as_ref()) {
            let _ = stop.send(request);
        }
        self.emit(Event::Interrupted {
            force,
            signal: super::signals::latest_name(),
        });
    }
}

/// SIGUSR1: `dispatch cancel` asks the run to look for cancel requests.
pub(super) fn cancel_signals() -> mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}
