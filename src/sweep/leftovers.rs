//! What a run does about processes that outlive their task: it notes the
//! strays a worker's end stopped in the task's record and as a warning,
//! and at its own end stops whatever is still left (a process that cleared
//! its environment carries no task's marker, but is still a descendant of
//! the subreaper dispatch made itself).

use super::Sweep;
use crate::events::Event;
use crate::supervise::reaper::{self, Owner, Stray};

impl Sweep {
    /// Record and announce the processes stopped at a task's end.
    pub(super) fn note_strays(&mut self, index: usize, strays: &[Stray]) {
        if strays.is_empty() {
            return;
        }
        self.slots[index].record.strays.extend_from_slice(strays);
        self.save_soon(index);
        let task = self.slots[index].task.id.clone();
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
        let mut hooks: Vec<(String, Vec<Stray>)> = Vec::new();
        for (owner, stray) in left {
            match owner {
                // Its own end missed it (the hook's end stops what it
                // left); still the hook's, not its task's worker's.
                Owner::Hook(id) => {
                    let rule = id.rsplit_once('-').map_or(id.as_str(), |(rule, _)| rule);
                    match hooks.iter_mut().find(|(r, _)| r == rule) {
                        Some((_, strays)) => strays.push(stray),
                        None => hooks.push((rule.to_owned(), vec![stray])),
                    }
                }
                Owner::Task(id) => match self.slots.iter().position(|s| s.task.id == id) {
                    Some(index) => self.note_strays(index, std::slice::from_ref(&stray)),
                    None => unattributed.push(stray),
                },
                Owner::Unknown => unattributed.push(stray),
            }
        }
        for (rule, strays) in hooks {
            self.emit(Event::Warning {
                task: None,
                message: hook_strays(&rule, &strays),
            });
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

/// The warning for what an escalation hook left running when it ended.
pub(super) fn hook_strays(rule: &str, strays: &[Stray]) -> String {
    format!(
        "processes the hook of escalation rule {rule} started outlived it and were stopped: {}",
        reaper::describe(strays)
    )
}
