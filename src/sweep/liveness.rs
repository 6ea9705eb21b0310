//! Whether a running worker is alive: stall detection and the API retries
//! its CLI reports.
//!
//! A worker that neither ends nor spends (an API call that never returns,
//! a tool waiting for input) would hold its slot until its `timeout`, or
//! for hours without one. Every sign of life touches the task's activity
//! clock (`supervise/activity.rs`): output on its pipes, a change to its
//! plan, an API retry its CLI reports. The regular tick stops a worker
//! quiet for its `idle_timeout` the way a budget stops one, with a
//! graceful stop that takes its whole process group, so the runner's
//! thread never waits on it; its task ends `stalled`, with its last sign
//! of life in the record and the reports.

use std::time::{Instant, SystemTime};

use super::Sweep;
use crate::agents::evidence::ApiRetry;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::supervise::activity::{ActivityKind, LastActivity};
use crate::supervise::process::Stop;
use crate::util::clock;

/// The verdict, overruled when the CLI's claim of success is refuted
/// (`refuted`, from its CLI's rule in `agents/`): the task fails with the
/// reason whatever its exit code and plan say. A worker that was stopped
/// or ran out of time ended for that reason, not for its claim, and a
/// task that failed already keeps its own reason.
pub(super) fn overrule(
    verdict: (TaskStatus, String),
    finished: &crate::supervise::process::Finished,
    refuted: Option<String>,
) -> (TaskStatus, String) {
    match refuted {
        Some(why)
            if !finished.stopped && !finished.timed_out && verdict.0 != TaskStatus::Failed =>
        {
            (TaskStatus::Failed, why)
        }
        _ => verdict,
    }
}

impl Sweep {
    /// Stop the workers that have been quiet past their idle timeout.
    pub(super) fn stop_stalled(&mut self) {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let (Some(activity), Some(stop)) = (&slot.activity, &slot.stop) else {
                continue;
            };
            // Already being stopped for another reason.
            if slot.ended_by.is_some() || slot.over_budget.is_some() {
                continue;
            }
            let Some(limit) = slot.task.idle_limit() else {
                continue;
            };
            let quiet = activity.quiet_for(now);
            if quiet < limit {
                continue;
            }
            let (what, _) = activity.last();
            let _ = stop.send(Stop::Graceful);
            let at = SystemTime::now()
                .checked_sub(quiet)
                .map(clock::rfc3339)
                .unwrap_or_default();
            let reason = format!(
                "no output, plan change or CLI event for {} (its idle_timeout is {}); its last sign of life was {} at {at}",
                clock::human(quiet),
                clock::human(limit),
                what.describe()
            );
            slot.ended_by = Some((TaskStatus::Stalled, reason.clone()));
            slot.record.last_activity = Some(Box::new(LastActivity {
                what,
                at,
                quiet_ms: u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX),
            }));
            slot.unsaved = true;
            let task = slot.task.id.clone();
            self.emit(Event::Warning {
                task: Some(task),
                message: format!("stalled: {reason}; stopping the worker"),
            });
        }
    }

    /// A sign of life the runner saw itself (a plan change).
    pub(super) fn touch(&self, index: usize, kind: ActivityKind) {
        if let Some(activity) = &self.slots[index].activity {
            activity.touch(kind);
        }
    }

    /// The worker's CLI reported an API retry (shown, and kept in its
    /// record for `dispatch status` until the model answers); or its usage
    /// grew, which means the model answered.
    pub(super) fn retry_seen(&mut self, index: usize, retry: Option<ApiRetry>) {
        // Without a retry, an update means the usage grew: the model
        // answered.
        let Some(retry) = retry else {
            let slot = &mut self.slots[index];
            if slot.record.api_retry.is_some() {
                slot.record.api_retry = None;
                slot.unsaved = true;
            }
            return;
        };
        self.touch(index, ActivityKind::ApiRetry);
        let slot = &mut self.slots[index];
        slot.record.api_retry = Some(Box::new(retry.clone()));
        slot.unsaved = true;
        let task = slot.task.id.clone();
        self.emit(Event::ApiRetry {
            task,
            summary: retry.describe(),
            error: retry.error,
            attempt: retry.attempt,
            max: retry.max,
        });
    }
}
