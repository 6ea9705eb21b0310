//! What a finished task left undone that its status alone would hide:
//! items of the written plan the worker deleted, and items nobody ticked
//! in a task the worker declared done. Both go into `task.json` (and from
//! there into every report) and are announced as warnings, so the record
//! says what really happened.

use super::{verdict, Sweep};
use crate::domain::checklist::{self, Checklist};
use crate::domain::status::TaskStatus;
use crate::events::Event;

impl Sweep {
    /// Record task `index`'s dropped and unticked items, from its plan as
    /// it ended (`plan`) and the plan dispatch wrote.
    pub(super) fn note_gaps(&mut self, index: usize, status: TaskStatus, plan: Option<&Checklist>) {
        let written = checklist::parse(&self.slots[index].task.plan);
        let dropped = plan
            .map(|plan| verdict::dropped_items(&written, plan))
            .unwrap_or_default();
        let unticked = verdict::unticked_items(status, plan);
        let record = &mut self.slots[index].record;
        record.dropped = dropped;
        record.unticked = unticked;
        let task = record.id.clone();
        let mut warnings = Vec::new();
        if !record.dropped.is_empty() {
            warnings.push(format!(
                "the worker removed items dispatch wrote into its plan (the task is not complete): {}",
                record.dropped.join("; ")
            ));
        }
        // Unticked items are no event of their own: a sweep of workers
        // that declare done without ticking would print one per task. They
        // are in the record, counted in the end summary, `status` and the
        // reports.
        for message in warnings {
            self.emit(Event::Warning {
                task: Some(task.clone()),
                message,
            });
        }
    }
}
