//! Which waiting tasks start now, and which can never start.
//!
//! A pass walks the tasks in schedule order (dependencies first, then
//! priority) and decides: launch while there is room and the task's needs
//! completed (and their branches are settled), its back-off is over and no
//! cap of its backend or model is full; skip when a need ended other than
//! complete. The pass only decides; the engine carries the decisions out.
//! It works on [`Candidate`]s, so it is tested here without processes.

use std::collections::HashMap;
use std::time::Instant;

use super::slot::{Phase, TaskSlot};
use super::Sweep;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::plan::PlannedTask;
use crate::util::clock;

/// What the scheduler needs to know of a task.
pub(super) trait Candidate {
    fn id(&self) -> &str;
    fn status(&self) -> TaskStatus;
    fn phase(&self) -> Phase;
    fn retry_at(&self) -> Option<Instant>;
    /// Its needs as indexes (`None`: not in this run, so never ready).
    fn needs(&self) -> &[Option<usize>];
    /// The capped backend and model names it counts against.
    fn caps(&self) -> &[String];
    fn model(&self) -> Option<&str>;

    fn waiting(&self) -> bool {
        self.phase() == Phase::Pending && self.status() == TaskStatus::Pending
    }
}

impl Candidate for TaskSlot {
    fn id(&self) -> &str {
        &self.task.id
    }
    fn status(&self) -> TaskStatus {
        self.record.status
    }
    fn phase(&self) -> Phase {
        self.phase
    }
    fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
    fn needs(&self) -> &[Option<usize>] {
        &self.needs
    }
    fn caps(&self) -> &[String] {
        &self.caps
    }
    fn model(&self) -> Option<&str> {
        self.task.model.as_ref().map(|m| m.name.as_str())
    }
}

/// One decision of a pass, in schedule order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Launch(usize),
    /// It can never start: the reason.
    Skip(usize, String),
}

/// What limits a pass.
pub(super) struct Limits<'a> {
    pub concurrency: usize,
    /// Worker slots held now (running, or making a worktree).
    pub busy: usize,
    pub caps: &'a indexmap::IndexMap<String, u32>,
    /// Models whose budget is spent: no new task on them starts.
    pub model_spent: &'a HashMap<String, String>,
    pub now: Instant,
}

/// The scheduler's own state: where the next pass starts.
#[derive(Debug, Default)]
pub(super) struct Scheduler {
    /// Every task before this index has left `pending` for good (a retry
    /// moves it back, see [`Scheduler::rewind`]), so a pass starts here: in
    /// a large sweep most passes would otherwise walk past finished tasks.
    scan_from: usize,
}

impl Scheduler {
    /// A task before `scan_from` waits again (a retry).
    pub(super) fn rewind(&mut self, index: usize) {
        self.scan_from = self.scan_from.min(index);
    }

    pub(super) fn pass<C: Candidate>(&mut self, slots: &[C], limits: &Limits<'_>) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut busy = limits.busy;
        if busy >= limits.concurrency {
            // Full: nothing can start. Skips wait for a free slot (at the
            // latest when every worker has ended).
            return decisions;
        }
        while self.scan_from < slots.len() && slots[self.scan_from].status() != TaskStatus::Pending
        {
            self.scan_from += 1;
        }
        let mut in_use = cap_usage(slots, limits.caps);
        // Skipped in this pass: what needs them is skipped in it too.
        let mut skipped: Vec<usize> = Vec::new();
        let status_of = |n: usize, skipped: &[usize]| {
            if skipped.contains(&n) {
                TaskStatus::Skipped
            } else {
                slots[n].status()
            }
        };
        for (index, slot) in slots.iter().enumerate().skip(self.scan_from) {
            if !slot.waiting()
                || slot
                    .model()
                    .is_some_and(|m| limits.model_spent.contains_key(m))
            {
                continue;
            }
            let blocked = slot.needs().iter().flatten().find_map(|&n| {
                let status = status_of(n, &skipped);
                (status.is_final() && status != TaskStatus::Complete)
                    .then(|| format!("needs {}, which ended {}", slots[n].id(), status.label()))
            });
            if let Some(reason) = blocked {
                skipped.push(index);
                decisions.push(Decision::Skip(index, reason));
                continue;
            }
            // A need's branch must be settled too: a stage that starts
            // from it must see the commit dispatch makes for it.
            let ready = slot.needs().iter().all(|need| {
                need.is_some_and(|n| {
                    status_of(n, &skipped) == TaskStatus::Complete
                        && slots[n].phase() != Phase::Settling
                })
            });
            let backing_off = slot.retry_at().is_some_and(|at| at > limits.now);
            let capped = slot.caps().iter().any(|name| {
                limits
                    .caps
                    .get(name)
                    .is_some_and(|&cap| in_use.get(name).copied().unwrap_or(0) >= cap as usize)
            });
            if !ready || backing_off || capped {
                continue;
            }
            for name in slot.caps() {
                *in_use.entry(name.clone()).or_default() += 1;
            }
            decisions.push(Decision::Launch(index));
            busy += 1;
            if busy >= limits.concurrency {
                // Full: the rest of the schedule waits for a free slot.
                // Looking on would make every pass walk every pending
                // task, which is quadratic in the sweep's size.
                break;
            }
        }
        decisions
    }
}

/// When the earliest back-off among waiting tasks ends.
pub(super) fn next_retry<C: Candidate>(slots: &[C]) -> Option<Instant> {
    slots
        .iter()
        .filter(|s| s.status() == TaskStatus::Pending)
        .filter_map(Candidate::retry_at)
        .min()
}

/// The capped backend and model names a task counts against.
pub(super) fn cap_names(task: &PlannedTask, caps: &indexmap::IndexMap<String, u32>) -> Vec<String> {
    [
        Some(&*task.backend),
        task.model.as_ref().map(|m| m.name.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter(|name| caps.contains_key(*name))
    .map(str::to_owned)
    .collect()
}

/// How many workers hold a slot per capped name, counted once per pass
/// rather than once per task.
fn cap_usage<C: Candidate>(
    slots: &[C],
    caps: &indexmap::IndexMap<String, u32>,
) -> HashMap<String, usize> {
    let mut in_use = HashMap::new();
    if caps.is_empty() {
        return in_use;
    }
    for slot in slots.iter().filter(|s| s.phase().busy()) {
        for name in slot.caps() {
            *in_use.entry(name.clone()).or_default() += 1;
        }
    }
    in_use
}

impl Sweep {
    /// Start ready tasks in schedule order while there is room; skip those
    /// whose needs can no longer complete.
    pub(super) fn start_ready(&mut self, workers: &mut super::launch::Workers) {
        if self.interrupted > 0 || self.spent.sweep.is_some() || self.halted.is_some() {
            // Nothing starts, and nothing is skipped: what never ran is
            // cancelled when the run concludes.
            return;
        }
        let limits = Limits {
            concurrency: self.plan.concurrency.max(1) as usize,
            busy: workers.len() + self.preparing,
            caps: &self.plan.caps,
            model_spent: &self.spent.models,
            now: Instant::now(),
        };
        for decision in self.scheduler.pass(&self.slots, &limits) {
            match decision {
                Decision::Launch(index) => self.launch_in_order(index, workers),
                Decision::Skip(index, reason) => self.skip(index, reason),
            }
        }
    }

    pub(super) fn skip(&mut self, index: usize, reason: String) {
        let slot = &mut self.slots[index];
        slot.record.status = TaskStatus::Skipped;
        slot.record.reason = Some(reason.clone());
        slot.record.ended_at = Some(clock::now());
        self.set_phase(index, Phase::Ended);
        self.save(index);
        self.emit(Event::TaskSkipped {
            task: self.slots[index].task.id.clone(),
            reason,
        });
        self.escalate_end(index, TaskStatus::Skipped);
    }

    /// Move a task to `phase`, keeping count of those preparing and settling.
    pub(super) fn set_phase(&mut self, index: usize, phase: Phase) {
        let slot = &mut self.slots[index];
        for (count, which) in [
            (&mut self.preparing, Phase::Preparing),
            (&mut self.settling, Phase::Settling),
        ] {
            if slot.phase == which {
                *count -= 1;
            }
            if phase == which {
                *count += 1;
            }
        }
        slot.phase = phase;
        if phase == Phase::Ended {
            self.plans.forget(index);
        }
        if phase == Phase::Running {
            self.running.insert(index);
        } else {
            self.running.remove(&index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Fake {
        id: String,
        status: TaskStatus,
        phase: Phase,
        retry_at: Option<Instant>,
        needs: Vec<Option<usize>>,
        caps: Vec<String>,
        model: Option<String>,
    }

    impl Candidate for Fake {
        fn id(&self) -> &str {
            &self.id
        }
        fn status(&self) -> TaskStatus {
            self.status
        }
        fn phase(&self) -> Phase {
            self.phase
        }
        fn retry_at(&self) -> Option<Instant> {
            self.retry_at
        }
        fn needs(&self) -> &[Option<usize>] {
            &self.needs
        }
        fn caps(&self) -> &[String] {
            &self.caps
        }
        fn model(&self) -> Option<&str> {
            self.model.as_deref()
        }
    }

    fn task(id: &str) -> Fake {
        Fake {
            id: id.to_owned(),
            status: TaskStatus::Pending,
            phase: Phase::Pending,
            retry_at: None,
            needs: Vec::new(),
            caps: Vec::new(),
            model: None,
        }
    }

    fn ended(id: &str, status: TaskStatus) -> Fake {
        Fake {
            status,
            phase: Phase::Ended,
            ..task(id)
        }
    }

    fn pass(slots: &[Fake], concurrency: usize, caps: &[(&str, u32)]) -> Vec<Decision> {
        let caps = caps.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        let busy = slots.iter().filter(|s| s.phase.busy()).count();
        Scheduler::default().pass(
            slots,
            &Limits {
                concurrency,
                busy,
                caps: &caps,
                model_spent: &HashMap::new(),
                now: Instant::now(),
            },
        )
    }

    #[test]
    fn launches_in_order_up_to_the_concurrency() {
        let slots = [task("a"), task("b"), task("c")];
        assert_eq!(
            pass(&slots, 2, &[]),
            [Decision::Launch(0), Decision::Launch(1)]
        );
        let mut busy = [task("a"), task("b")];
        busy[0].phase = Phase::Running;
        busy[0].status = TaskStatus::Running;
        assert_eq!(pass(&busy, 1, &[]), [], "a full run starts nothing");
    }

    #[test]
    fn a_need_must_complete_and_settle_first() {
        let mut need = task("build");
        need.phase = Phase::Running;
        need.status = TaskStatus::Running;
        let mut test = task("test");
        test.needs = vec![Some(0)];
        assert_eq!(pass(&[need, test], 4, &[]), [], "its need still runs");

        let mut settling = ended("build", TaskStatus::Complete);
        settling.phase = Phase::Settling;
        let mut test = task("test");
        test.needs = vec![Some(0)];
        assert_eq!(
            pass(&[settling, test], 4, &[]),
            [],
            "its need's branch is not settled"
        );

        let mut test = task("test");
        test.needs = vec![Some(0)];
        assert_eq!(
            pass(&[ended("build", TaskStatus::Complete), test], 4, &[]),
            [Decision::Launch(1)]
        );

        let mut orphan = task("orphan");
        orphan.needs = vec![None];
        assert_eq!(pass(&[orphan], 4, &[]), [], "a need not in the run");
    }

    #[test]
    fn a_failed_need_skips_its_dependents_in_the_same_pass() {
        let mut second = task("second");
        second.needs = vec![Some(0)];
        let mut third = task("third");
        third.needs = vec![Some(1)];
        let decisions = pass(&[ended("first", TaskStatus::Failed), second, third], 4, &[]);
        assert_eq!(
            decisions,
            [
                Decision::Skip(1, "needs first, which ended failed".to_owned()),
                Decision::Skip(2, "needs second, which ended skipped".to_owned()),
            ]
        );
    }

    #[test]
    fn caps_back_offs_and_spent_models_hold_a_task_back_but_not_the_next() {
        let mut capped = [task("a"), task("b"), task("c")];
        capped[0].phase = Phase::Preparing;
        for slot in &mut capped[..2] {
            slot.caps = vec!["claude".to_owned()];
        }
        assert_eq!(
            pass(&capped, 4, &[("claude", 1)]),
            [Decision::Launch(2)],
            "a worktree being made counts against its cap"
        );

        let mut later = [task("a"), task("b")];
        later[0].retry_at = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(pass(&later, 4, &[]), [Decision::Launch(1)]);
        assert_eq!(next_retry(&later), later[0].retry_at);

        let mut spent = [task("a"), task("b")];
        spent[0].model = Some("opus".to_owned());
        let models = HashMap::from([("opus".to_owned(), "spent $5".to_owned())]);
        let decisions = Scheduler::default().pass(
            &spent,
            &Limits {
                concurrency: 4,
                busy: 0,
                caps: &Default::default(),
                model_spent: &models,
                now: Instant::now(),
            },
        );
        assert_eq!(decisions, [Decision::Launch(1)]);
    }

    #[test]
    fn a_pass_starts_past_finished_tasks_until_a_retry_rewinds_it() {
        let mut slots = vec![
            ended("a", TaskStatus::Complete),
            ended("b", TaskStatus::Complete),
            task("c"),
        ];
        let mut scheduler = Scheduler::default();
        let limits = |busy| Limits {
            concurrency: 1,
            busy,
            caps: Box::leak(Box::default()),
            model_spent: Box::leak(Box::default()),
            now: Instant::now(),
        };
        assert_eq!(scheduler.pass(&slots, &limits(0)), [Decision::Launch(2)]);
        assert_eq!(scheduler.scan_from, 2);
        slots[0] = task("a");
        assert_eq!(
            scheduler.pass(&slots, &limits(0)),
            [Decision::Launch(2)],
            "not looked at before the rewind"
        );
        scheduler.rewind(0);
        assert_eq!(scheduler.pass(&slots, &limits(0)), [Decision::Launch(0)]);
    }
}
