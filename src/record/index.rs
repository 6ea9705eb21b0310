//! `runs/<run>/index.json`: one line's worth of every task of a finished
//! run (its id, status, whether it needs a person's look, its worktree),
//! written when the run ends.
//!
//! Why: `dispatch status` on a finished 50,000-task run would otherwise read
//! and parse 50,000 `task.json` files to print three lines of counts and the
//! few tasks that need attention. With the index it reads one file, then the
//! folders of the tasks it shows. The index is only believed for the end it
//! was written at (the run's `ended_at`, and how often it was resumed): a
//! run that is live, was killed before it concluded, or was resumed since
//! is read from its folders as before.

use serde::{Deserialize, Serialize};

use super::{RunRecord, TaskRecord};
use crate::domain::status::TaskStatus;
use crate::state::{layout, read_bounded, StateDir};

/// The index of a run, as of its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunIndex {
    pub run_id: String,
    /// The run's `ended_at` when the index was written: the index speaks
    /// for that end only.
    pub ended_at: String,
    /// How many times the run had been resumed (`resumed_at`'s length).
    pub resumed: usize,
    /// Every task, in the order of `run.json`'s `tasks`.
    pub tasks: Vec<IndexEntry>,
}

/// A task as the index remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub status: TaskStatus,
    /// `events::attention` said it needs a person's look.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attention: bool,
    /// A worktree task's checkout (so `status` can tell other runs'
    /// worktrees from this one's without reading every record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
}

impl IndexEntry {
    /// The entry of `record`, which needs attention or not (as
    /// `events::attention` decides: that layer sits above this one).
    pub fn of(record: &TaskRecord, attention: bool) -> IndexEntry {
        IndexEntry {
            id: record.id.clone(),
            status: record.status,
            attention,
            worktree: record.branch.as_ref().map(|b| b.path.clone()),
        }
    }
}

/// The most an index may weigh when read back (a 50,000-task run's is a
/// few MB).
const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;

impl RunIndex {
    /// The index of `run`, which has ended, with its tasks' entries in the
    /// order of its `tasks`. None for a run that has not ended.
    pub fn of(run: &RunRecord, tasks: Vec<IndexEntry>) -> Option<RunIndex> {
        Some(RunIndex {
            run_id: run.run_id.clone(),
            ended_at: run.ended_at.clone()?,
            resumed: run.resumed_at.len(),
            tasks,
        })
    }

    /// Where the index of run `run_id` is.
    pub fn path(state: &StateDir, run_id: &str) -> std::path::PathBuf {
        state.run_dir(run_id).join(layout::RUN_INDEX)
    }

    /// The index of `run`, if it has one written at the end `run.json`
    /// records, listing exactly the run's tasks; None otherwise (the
    /// caller then reads the task folders).
    pub fn read_current(state: &StateDir, run: &RunRecord) -> Option<RunIndex> {
        let ended_at = run.ended_at.as_deref()?;
        let text = read_bounded(&Self::path(state, &run.run_id), MAX_INDEX_BYTES).ok()?;
        let index: RunIndex = serde_json::from_str(&text).ok()?;
        let current = index.run_id == run.run_id
            && index.ended_at == ended_at
            && index.resumed == run.resumed_at.len()
            && index.tasks.len() == run.tasks.len()
            && index
                .tasks
                .iter()
                .zip(&run.tasks)
                .all(|(e, id)| &e.id == id);
        current.then_some(index)
    }
}
