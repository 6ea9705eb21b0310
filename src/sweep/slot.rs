//! One task of a run in progress: everything the runner keeps about it in
//! one place, instead of a dozen vectors indexed alike.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::start::Earlier;
use crate::domain::checklist::Checklist;
use crate::domain::status::TaskStatus;
use crate::ipc::findings::FindingsReader;
use crate::isolation::worktree::Created;
use crate::plan::PlannedTask;
use crate::record::TaskRecord;
use crate::supervise::activity::Activity;
use crate::supervise::process::Stop;

/// Where a task is in its life in this run. The record's status is what
/// is written down; the phase is what the runner is doing with the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for its turn (or for a retry's back-off).
    Pending,
    /// Holding a worker slot while its worktree or its launch files are
    /// made.
    Preparing,
    /// Its worker runs (or has just ended and is being looked at).
    Running,
    /// Ended; its branch is being committed and reviewed on a blocking
    /// thread, and what needs it waits.
    Settling,
    /// Done with in this run (also: carried over or kept, never run).
    Ended,
}

impl Phase {
    /// Holds one of the `concurrency` worker slots.
    pub(super) fn busy(self) -> bool {
        matches!(self, Phase::Preparing | Phase::Running)
    }
}

/// One per task for the whole run: what only some tasks have (a resumed
/// task's findings reader, a worktree) is boxed, so the rest pay a pointer.
pub(super) struct TaskSlot {
    pub(super) task: Arc<PlannedTask>,
    /// Boxed: the slots of a large sweep are one allocation, and records
    /// made one by one move in without a second copy of them all.
    pub(super) record: Box<TaskRecord>,
    pub(super) phase: Phase,
    /// The worker's program, found on `PATH` once before the run (one
    /// path shared by every task that runs it).
    pub(super) program: Option<Arc<Path>>,
    /// Its needs, as slot indexes (`None`: not in this run).
    pub(super) needs: Vec<Option<usize>>,
    /// The capped backend and model names it counts against.
    pub(super) caps: Vec<String>,
    /// Asks the running worker to stop; `Some` exactly while it runs.
    pub(super) stop: Option<watch::Sender<Stop>>,
    /// Its worker's last sign of life, while it runs (see `liveness.rs`).
    pub(super) activity: Option<Arc<Activity>>,
    pub(super) retry_at: Option<Instant>,
    /// Its plan as last read (for the reports); the planned one for a task
    /// that never ran.
    pub(super) final_plan: Option<Checklist>,
    /// A resumed task's findings reader, past what is on record; handed
    /// to the reading thread at its first launch.
    pub(super) findings: Option<Box<FindingsReader>>,
    /// The record changed since it was last written, and when that was.
    pub(super) unsaved: bool,
    pub(super) saved_at: Instant,
    /// Why its worker was stopped for its budget.
    pub(super) over_budget: Option<String>,
    /// A status the runner decided for a worker it stopped (an unanswered
    /// question, an escalation's cancel, `dispatch cancel`).
    pub(super) ended_by: Option<(TaskStatus, String)>,
    /// Its worktree, once made.
    pub(super) worktree: Option<Box<Created>>,
    /// Its launch files, written and waiting for its launch (`stage.rs`).
    pub(super) staged: Option<Box<super::stage::LaunchFiles>>,
    /// What an earlier run of it brings (attempts, usage).
    pub(super) earlier: Earlier,
}

impl TaskSlot {
    pub(super) fn new(
        task: Arc<PlannedTask>,
        record: Box<TaskRecord>,
        program: Option<Arc<Path>>,
        final_plan: Option<Checklist>,
    ) -> Self {
        let phase = if record.status.is_final() {
            Phase::Ended
        } else {
            Phase::Pending
        };
        TaskSlot {
            task,
            record,
            phase,
            program,
            needs: Vec::new(),
            caps: Vec::new(),
            stop: None,
            activity: None,
            retry_at: None,
            final_plan,
            findings: None,
            unsaved: false,
            saved_at: Instant::now(),
            over_budget: None,
            ended_by: None,
            worktree: None,
            staged: None,
            earlier: Earlier::default(),
        }
    }

    /// Waiting for its turn: a scheduling pass may start or skip it.
    pub(super) fn waiting(&self) -> bool {
        self.phase == Phase::Pending && self.record.status == TaskStatus::Pending
    }
}
