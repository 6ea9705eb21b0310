//! When a worker last showed a sign of life, for stall detection.
//!
//! A hung worker (an API call that never returns, a tool waiting for input
//! nobody gives) looks alive to a process supervisor: it neither exits nor
//! uses its budget. What tells it apart is silence: no output on its
//! pipes, no change to its plan, no event from its CLI. Each of those
//! touches the task's [`Activity`]; the runner's regular tick compares it
//! with the task's `idle_timeout`. The pipes touch it on every read, so it
//! is an atomic, not a message: a flood of output costs a store per read,
//! not a wake-up of the runner.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the last sign of life was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActivityKind {
    /// The worker was started and has shown nothing since.
    Started,
    /// Output on its stdout or stderr.
    Output,
    /// A change to its plan.
    PlanChange,
    /// Its CLI said it is retrying an API call.
    ApiRetry,
}

impl ActivityKind {
    /// How a report names it.
    pub fn describe(self) -> &'static str {
        match self {
            ActivityKind::Started => "its start",
            ActivityKind::Output => "output on its pipes",
            ActivityKind::PlanChange => "a change to its plan",
            ActivityKind::ApiRetry => "an API retry by its CLI",
        }
    }

    fn from_u8(value: u8) -> ActivityKind {
        match value {
            1 => ActivityKind::Output,
            2 => ActivityKind::PlanChange,
            3 => ActivityKind::ApiRetry,
            _ => ActivityKind::Started,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            ActivityKind::Started => 0,
            ActivityKind::Output => 1,
            ActivityKind::PlanChange => 2,
            ActivityKind::ApiRetry => 3,
        }
    }
}

/// A stalled task's last sign of life, as `task.json` and the reports
/// keep it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LastActivity {
    /// What it was.
    pub what: ActivityKind,
    /// When (RFC 3339).
    pub at: String,
    /// How long the worker had been quiet when it was stopped, in
    /// milliseconds.
    pub quiet_ms: u64,
}

/// A worker's last sign of life: shared by its pipe readers (which touch
/// it) and the runner (which reads it).
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    /// Milliseconds after `origin`.
    last_ms: AtomicU64,
    kind: AtomicU8,
}

impl Activity {
    /// A clock started now, its last activity the start.
    pub fn start() -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            kind: AtomicU8::new(ActivityKind::Started.to_u8()),
        })
    }

    /// A sign of life now.
    pub fn touch(&self, kind: ActivityKind) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Relaxed: the two stores need not be seen together; a reader that
        // pairs a new time with the previous kind names the wrong one of
        // two signs of life a moment apart, and is right about the time.
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
        self.kind.store(kind.to_u8(), Ordering::Relaxed);
    }

    /// What the last sign of life was and when.
    pub fn last(&self) -> (ActivityKind, Instant) {
        let ms = self.last_ms.load(Ordering::Relaxed);
        let kind = ActivityKind::from_u8(self.kind.load(Ordering::Relaxed));
        (kind, self.origin + Duration::from_millis(ms))
    }

    /// How long the worker has been quiet at `now`.
    pub fn quiet_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last().1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_restarts_the_quiet_time_and_names_what_it_was() {
        let activity = Activity::start();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(activity.quiet_for(later) >= Duration::from_secs(59));
        assert_eq!(activity.last().0, ActivityKind::Started);
        std::thread::sleep(Duration::from_millis(20));
        activity.touch(ActivityKind::PlanChange);
        let (kind, at) = activity.last();
        assert_eq!(kind, ActivityKind::PlanChange);
        assert!(at >= activity.origin + Duration::from_millis(20));
        assert!(activity.quiet_for(at) == Duration::ZERO);
        // Time never goes back, even when touches race.
        activity.last_ms.store(u64::MAX / 2, Ordering::Relaxed);
        activity.touch(ActivityKind::Output);
        assert_eq!(activity.last_ms.load(Ordering::Relaxed), u64::MAX / 2);
    }
}
