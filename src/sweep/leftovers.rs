//! What a run does about processes that outlive their task: it notes the
//! strays a worker's end stopped in the task's record and as a warning,
//! and at its own end stops whatever is still left (a process that cleared
//! its environment carries no task's marker, but is still a descendant of
//! the subreaper dispatch made itself).

use super::Sweep;
use crate::events::Event;
use crate::supervise::reaper::{self, Stray};

impl Sweep {
    /// Record and announce the processes stopped at a task's end.
    pub(super) fn note_strays(&mut self, index: usize, strays: &[Stray]) {
        if strays.is_empty() {
            return;
        }
        self.records[index].strays.extend_from_slice(strays);
        self.save_soon(index);
        let task = self.plan.tasks[index].id.clone();
        self.emit(Event::Warning {
            task: Some(task),
            message: format!(
                "processes its worker started outlived it and were stopped: {}",
                reaper::describe(strays)
            ),
        });
    }

    /// Every worker and hook has ended: stop what is left of them, before
    /// the records and reports are written.
    pub(super) async fn stop_leftovers(&mut self) {
        let grace = self.grace;
        let left =
            tokio::task::spawn_blocking(move || reaper::stop_all_descendants(grace, "run end"))
                .await
                .unwrap_or_default();
        let mut unattributed = Vec::new();
        for (task, stray) in left {
            match task.and_then(|id| self.index_of.get(&id).copied()) {
                Some(index) => self.note_strays(index, std::slice::from_ref(&stray)),
                None => unattributed.push(stray),
            }
        }
        if !unattributed.is_empty() {
            self.emit(Event::Warning {
                task: None,
                message: format!(
                    "processes left running at the end of the run were stopped: {}",
                    reaper::describe(&unattributed)
                ),
            });
        }
    }
}
