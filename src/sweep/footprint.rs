//! Guards on what the engine keeps per task for a whole run.
//!
//! A sweep of 50,000 tasks holds 50,000 slots and planned tasks from its
//! plan to its end, so a field added inline to either costs its size that
//! many times over (benches/README.md, `scale.sh`, has the measured peak).
//! These bounds are not exact sizes: they fail when a struct grows well
//! past what it is now, which is when a large, mostly unset field should be
//! boxed (as the worktree, model and budget of a task are) or derived when
//! needed (as its paths are) rather than stored.

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::super::slot::TaskSlot;
    use crate::plan::{PlannedTask, TaskPaths};

    /// The slot is the vector the runner walks; its record lives behind a
    /// box, so records made one by one move in without a second copy of
    /// them all (the moment that was a large run's peak).
    #[test]
    fn a_slot_keeps_its_record_and_rare_parts_behind_pointers() {
        assert!(
            size_of::<TaskSlot>() <= 400,
            "TaskSlot is {} bytes",
            size_of::<TaskSlot>()
        );
        assert!(size_of::<TaskSlot>() < size_of::<crate::record::TaskRecord>());
    }

    /// Was 1,208 bytes, with nine owned paths and an inline worktree,
    /// model and budget.
    #[test]
    fn a_planned_task_stays_small() {
        assert!(
            size_of::<PlannedTask>() <= 760,
            "PlannedTask is {} bytes",
            size_of::<PlannedTask>()
        );
        assert!(size_of::<TaskPaths>() <= 48);
    }

    /// A finished run hands its records to the reports' snapshot one
    /// view per task; with the record inline, the vector of views was a
    /// second copy of every record (58 MB at 50,000 tasks).
    #[test]
    fn a_task_view_keeps_its_record_behind_a_pointer() {
        use crate::record::snapshot::TaskView;
        assert!(
            size_of::<TaskView>() <= 128,
            "TaskView is {} bytes",
            size_of::<TaskView>()
        );
        assert!(size_of::<TaskView>() * 4 < size_of::<crate::record::TaskRecord>());
    }

    /// Was 1,080 bytes with a branch, a budget, a verdict, a stall and an
    /// API retry inline, which most tasks never have; the task report
    /// beside it in a run's reports was 872.
    #[test]
    fn a_record_and_a_task_report_box_what_most_tasks_lack() {
        assert!(
            size_of::<crate::record::TaskRecord>() <= 760,
            "TaskRecord is {} bytes",
            size_of::<crate::record::TaskRecord>()
        );
        assert!(
            size_of::<crate::report::TaskReport>() <= 620,
            "TaskReport is {} bytes",
            size_of::<crate::report::TaskReport>()
        );
    }

    /// One fate per task is held while a run starts, most of them `Fresh`;
    /// with its record inline each was 1,112 bytes.
    #[test]
    fn a_fate_keeps_its_record_behind_a_pointer() {
        assert!(
            size_of::<super::super::carry::Fate>() <= 64,
            "Fate is {} bytes",
            size_of::<super::super::carry::Fate>()
        );
    }
}
