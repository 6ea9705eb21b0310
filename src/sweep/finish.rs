//! A worker ended: its last questions and findings, its plan, the verdict,
//! and whether it gets another attempt. Also the ends of tasks that never
//! launched, and plan changes while a worker runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::launch::WorkerEnd;
use super::plans::{PlanChange, Read};
use super::slot::Phase;
use super::{budget, check_verdict, verdict, Sweep};
use crate::agents::cli_home;
use crate::domain::checklist::Checklist;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::util::clock;

/// Whether a task that ended `status` on `attempt` (its `attempts_before`
/// earlier ones were in earlier runs) is tried again: only a failure or a
/// timeout the runner did not cause, while the sweep goes on, and while
/// its retries last.
pub(super) fn retries(
    status: TaskStatus,
    stopped_by_runner: bool,
    sweep_goes_on: bool,
    attempt: u32,
    attempts_before: u32,
    retries: u32,
) -> bool {
    !stopped_by_runner
        && sweep_goes_on
        && matches!(
            status,
            TaskStatus::Failed | TaskStatus::TimedOut | TaskStatus::CheckFailed
        )
        && attempt - attempts_before <= retries
}

/// The back-off before attempt `attempt + 1`: `first`, doubled for each
/// further attempt, up to 32 times `first`.
pub(super) fn backoff(first: Duration, attempt: u32) -> Duration {
    first.saturating_mul(1 << attempt.saturating_sub(1).min(5))
}

impl Sweep {
    pub(super) fn finish(&mut self, mut end: WorkerEnd) {
        let index = end.index;
        let task = self.slots[index].task.clone();
        if let Ok(finished) = &end.finished {
            self.note_strays(index, &finished.strays);
        }
        self.ipc_read(std::mem::take(&mut end.look.ipc));
        self.slots[index].stop = None;
        self.slots[index].activity = None;
        self.slots[index].record.api_retry = None;
        // Looked at just above; a retry watches again when it launches.
        let ipc = PathBuf::from(task.paths.ipc());
        if let Some(folder_watch) = self.folder_watch.as_mut() {
            folder_watch.unwatch(&ipc);
        }
        // Its folder's late changes are ignored either way: kept, the map
        // would hold a path for every task a wide sweep ever ran.
        self.folders.remove(&ipc);
        if let Some(home) = &task.cli_home {
            cli_home::release(&task.backend, Path::new(home));
        }

        // Its questions can no longer be answered usefully.
        self.pending.retain(|p| p.index != index);
        if self.prompted.is_some_and(|(i, _)| i == index) {
            self.prompted = None;
        }
        let look = end.look;
        if let Some((before, now)) = look.change {
            self.plan_changed(index, &before, &now);
        }
        let plan = look.plan;
        self.slots[index].final_plan = plan.clone();
        let (status, reason, finished) = match &end.finished {
            Ok(finished) => {
                let (status, reason) = verdict::decide(&verdict::Evidence {
                    finished,
                    plan: plan.as_ref(),
                    written: Some(&crate::domain::checklist::parse(&task.plan)),
                    done_marker: look.done_marker,
                    outcome: end.tracker.outcome.as_ref(),
                    events: task.events,
                });
                // The CLI's claim of success, checked by its own rule.
                let clean = finished.exit == crate::supervise::process::Exit::Code(0);
                let (status, reason) = super::liveness::overrule(
                    (status, reason),
                    finished,
                    end.tracker.refuted(clean),
                );
                let (status, reason) = if end.checks.stopped {
                    (
                        TaskStatus::Cancelled,
                        "stopped on request while its checks ran".to_owned(),
                    )
                } else {
                    check_verdict::judge(status, reason, &end.checks.records)
                };
                let reason = if finished.leaked {
                    format!("{reason} (a process it started held its output open and was killed)")
                } else {
                    reason
                };
                (status, reason, Some(finished.clone()))
            }
            Err(e) => (TaskStatus::Failed, e.to_string(), None),
        };
        let slot = &mut self.slots[index];
        let decided_by_runner = slot.ended_by.take();
        let stopped_by_runner = decided_by_runner.is_some();
        let (status, reason) = match (slot.over_budget.clone(), decided_by_runner) {
            (Some(why), _) => (TaskStatus::BudgetExceeded, why),
            (None, Some((status, why))) if self.interrupted == 0 => (status, why),
            _ => (status, reason),
        };
        let retrying = retries(
            status,
            stopped_by_runner,
            self.halted.is_none() && self.interrupted == 0,
            end.attempt,
            slot.earlier.attempts,
            task.retries,
        );
        let duration = finished.as_ref().map_or(Duration::ZERO, |f| f.duration);
        let record = &mut slot.record;
        if let Some(plan) = &plan {
            record.items = plan.counts();
            record.current_item = plan.current().map(|i| i.text.clone());
        }
        record.usage = budget::total([&slot.earlier.usage, &end.tracker.usage]);
        record.outcome = end.tracker.outcome.clone().map(Box::new);
        record.exit = finished.as_ref().map(|f| f.exit);
        record.reason = Some(reason.clone());
        let ended = clock::now();
        if let Some(attempt) = record.attempts.last_mut() {
            attempt.ended_at = Some(ended.clone());
            attempt.exit = record.exit;
            attempt.status = Some(status);
            attempt.reason = Some(reason.clone());
            attempt.duration_ms = Some(duration.as_millis() as u64);
            attempt.checks = end.checks.records;
        }
        let checks_failed = status == TaskStatus::CheckFailed;
        if retrying {
            record.status = TaskStatus::Pending;
            slot.retry_at = Some(Instant::now() + backoff(self.retry_delay, end.attempt));
            self.scheduler.rewind(index);
            self.set_phase(index, Phase::Pending);
        } else {
            record.status = status;
            record.ended_at = Some(ended);
            record.duration_ms = Some(record.attempts.iter().filter_map(|a| a.duration_ms).sum());
            self.set_phase(index, Phase::Ended);
        }
        self.note_gaps(index, status, plan.as_ref());
        self.report_checks(index, end.attempt);
        if retrying && checks_failed {
            self.reopen_plan(index);
        }
        let counts = self.slots[index].record.items;
        self.save(index);
        self.emit(Event::TaskEnded {
            task: task.id.clone(),
            status,
            reason,
            done: counts.done,
            total: counts.total,
            duration_ms: duration.as_millis() as u64,
            attempt: end.attempt,
            retrying,
        });
        if !retrying {
            self.settle_worktree(index, status);
            self.escalate_end(index, status);
        }
    }

    /// One event per check of the attempt that just ended, for the live
    /// view, CI lines and `events.jsonl`.
    fn report_checks(&mut self, index: usize, attempt: u32) {
        let slot = &self.slots[index];
        let task = slot.task.id.clone();
        let events: Vec<Event> = slot
            .record
            .attempts
            .last()
            .map(|a| a.checks.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|check| Event::CheckEnded {
                task: task.clone(),
                attempt,
                name: check.name.clone(),
                passed: check.passed,
                how: check.how(),
                duration_ms: check.duration_ms,
                log: check.log.clone(),
            })
            .collect();
        for event in events {
            self.emit(event);
        }
    }

    /// A retry after failed checks starts from a reopened plan.
    fn reopen_plan(&mut self, index: usize) {
        let slot = &self.slots[index];
        let Some(attempt) = slot.record.attempts.last() else {
            return;
        };
        let task = &slot.task;
        let reopened = check_verdict::reopen(
            Path::new(&task.paths.plan()),
            Path::new(&task.paths.ipc()),
            attempt,
        );
        if let Err(message) = reopened {
            let task = Some(task.id.clone());
            self.emit(Event::Warning { task, message });
        }
    }

    /// End a task that could not be launched at all.
    pub(super) fn fail_unlaunched(&mut self, index: usize, reason: String) {
        self.end_unlaunched(index, TaskStatus::Failed, reason);
    }

    /// End a task that never launched, as `status`.
    pub(super) fn end_unlaunched(&mut self, index: usize, status: TaskStatus, reason: String) {
        self.set_phase(index, Phase::Ended);
        let record = &mut self.slots[index].record;
        record.status = status;
        record.reason = Some(reason.clone());
        record.ended_at = Some(clock::now());
        let counts = record.items;
        self.save(index);
        self.emit(Event::TaskEnded {
            task: self.slots[index].task.id.clone(),
            status,
            reason,
            done: counts.done,
            total: counts.total,
            duration_ms: 0,
            attempt: 0,
            retrying: false,
        });
    }

    /// The regular look at running tasks' questions and findings, for what
    /// file-system events missed.
    pub(super) fn poll_running(&mut self) {
        self.plans.read_ipc(None);
    }

    /// What the reading thread found.
    pub(super) fn files_read(&mut self, read: Read) {
        match read {
            Read::Plan(change) => self.plan_read(change),
            Read::Ipc(news) => self.ipc_read(news),
            Read::Cancelled(tasks) => self.cancelled(tasks),
        }
    }

    /// The plan reader saw a running task's plan change.
    fn plan_read(&mut self, change: PlanChange) {
        if self.slots[change.index].stop.is_some() {
            self.touch(
                change.index,
                crate::supervise::activity::ActivityKind::PlanChange,
            );
            self.plan_changed(change.index, &change.before, &change.now);
        }
    }

    fn plan_changed(&mut self, index: usize, before: &Checklist, now: &Checklist) {
        let counts = now.counts();
        let current = now.current().map(|i| i.text.clone());
        let task = self.slots[index].task.id.clone();
        let changed: Vec<Event> = now
            .progress_since(before)
            .into_iter()
            .map(|(i, item, done)| Event::Item {
                task: task.clone(),
                index: i,
                text: item.text.clone(),
                state: item.state,
                note: item.note.clone(),
                done,
                total: counts.total,
                current: current.clone(),
            })
            .collect();
        let slot = &mut self.slots[index];
        slot.record.items = counts;
        slot.record.current_item = current;
        slot.unsaved = true;
        for event in changed {
            self.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_the_runner_did_not_cause_are_retried_while_retries_last() {
        let failed = TaskStatus::Failed;
        assert!(retries(failed, false, true, 1, 0, 1));
        assert!(retries(TaskStatus::TimedOut, false, true, 2, 0, 2));
        assert!(!retries(failed, false, true, 2, 0, 1), "retries used up");
        assert!(
            retries(failed, false, true, 3, 2, 1),
            "attempts of earlier runs do not count"
        );
        assert!(
            !retries(failed, true, true, 1, 0, 1),
            "stopped by the runner"
        );
        assert!(
            !retries(failed, false, false, 1, 0, 1),
            "halted or interrupted"
        );
        for status in [
            TaskStatus::Complete,
            TaskStatus::Blocked,
            TaskStatus::Incomplete,
            TaskStatus::Cancelled,
            TaskStatus::BudgetExceeded,
        ] {
            assert!(!retries(status, false, true, 1, 0, 3), "{status:?}");
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_thirty_two_times() {
        let first = Duration::from_millis(100);
        assert_eq!(backoff(first, 1), first);
        assert_eq!(backoff(first, 2), first * 2);
        assert_eq!(backoff(first, 4), first * 8);
        assert_eq!(backoff(first, 30), first * 32);
        assert_eq!(backoff(first, 0), first);
    }
}
