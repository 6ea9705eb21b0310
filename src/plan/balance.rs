//! Balancing shards by what the tasks took last time (`--shard K/N
//! --durations REPORT.json`).
//!
//! The durations come from a file the user names, never from the local
//! `.dispatch/` folder: in CI each shard job's machine holds only its own
//! shard's records, so a split computed from local history would differ from
//! job to job and tasks would run twice or never. A report every job reads
//! (the last sweep's merged `report.json`, cached or checked in) gives every
//! job the same weights, and so the same partition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SweepPlan;

/// Each task's duration in milliseconds, by task id, as a report recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durations {
    by_id: BTreeMap<String, u64>,
}

/// Why a durations file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DurationsError {
    #[error("--durations {path}: cannot read it: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("--durations {path}: not a dispatch report.json: {reason}")]
    Format { path: PathBuf, reason: String },
}

impl DurationsError {
    /// What to do about it.
    pub fn help(&self) -> &'static str {
        "give the report.json of an earlier run of the sweep (a run's `.dispatch/runs/RUN/report.json`, or the one `dispatch merge` wrote), the same file to every shard"
    }
}

/// The part of a `report.json` read here: other fields are ignored, so a
/// run's report and a merged one both do.
#[derive(Deserialize)]
struct ReportTasks {
    tasks: Vec<TaskDuration>,
}

#[derive(Deserialize)]
struct TaskDuration {
    id: String,
    #[serde(default)]
    duration_ms: Option<u64>,
}

/// The most a report read for its durations may hold; a 50,000-task
/// `report.json` is far below it.
const MAX_REPORT_BYTES: u64 = 1 << 30;

impl Durations {
    /// The durations of the tasks a `report.json` records (tasks that never
    /// ran have none).
    pub fn read(path: &Path) -> Result<Durations, DurationsError> {
        let text = crate::state::read_bounded(path, MAX_REPORT_BYTES).map_err(|e| {
            DurationsError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Durations::parse(&text).map_err(|reason| DurationsError::Format {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// [`Durations::read`] from the text of a report.
    pub fn parse(text: &str) -> Result<Durations, String> {
        let report: ReportTasks = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Durations::from_pairs(
            report
                .tasks
                .into_iter()
                .filter_map(|t| t.duration_ms.map(|ms| (t.id, ms))),
        ))
    }

    /// From `(id, milliseconds)` pairs; a repeated id keeps its last value.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u64)>) -> Durations {
        Durations {
            by_id: pairs.into_iter().collect(),
        }
    }

    /// The median of the recorded durations (the lower middle value), at
    /// least 1; 1 when none is recorded.
    fn typical(&self) -> u64 {
        let mut all: Vec<u64> = self.by_id.values().copied().collect();
        all.sort_unstable();
        match all.len() {
            0 => 1,
            n => all[(n - 1) / 2].max(1),
        }
    }

    /// The weight of each task of `tasks` (ids with their `weight:`): its
    /// recorded duration (at least 1 ms); a task the report does not know
    /// (new since, or never started) counts as its `weight:` times the
    /// median recorded duration, so a new task is neither free nor huge.
    pub fn weights<'a>(&self, tasks: impl IntoIterator<Item = (&'a str, u32)>) -> Vec<u64> {
        let typical = self.typical();
        tasks
            .into_iter()
            .map(|(id, weight)| match self.by_id.get(id) {
                Some(ms) => (*ms).max(1),
                None => typical.saturating_mul(u64::from(weight.max(1))),
            })
            .collect()
    }

    /// The weight of each task of `plan`, in plan order.
    pub fn plan_weights(&self, plan: &SweepPlan) -> Vec<u64> {
        self.weights(plan.tasks.iter().map(|t| (t.id.as_str(), t.weight)))
    }

    /// How many of `plan`'s tasks the report gives a duration.
    pub fn known_in(&self, plan: &SweepPlan) -> usize {
        plan.tasks
            .iter()
            .filter(|t| self.by_id.contains_key(&t.id))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_durations_a_report_records() {
        let durations = Durations::parse(
            r#"{"format_version": 1, "run_id": "r", "tasks": [
                {"id": "a", "duration_ms": 5000, "status": "complete"},
                {"id": "b", "duration_ms": null},
                {"id": "c", "duration_ms": 0},
                {"id": "d", "duration_ms": 200}
            ]}"#,
        )
        .expect("a report");
        // b never ran: unknown. c took no time: at least 1. e is new: the
        // median of 5000, 0, 200 (200) times its weight.
        assert_eq!(
            durations.weights([("a", 1), ("b", 1), ("c", 1), ("e", 3)]),
            vec![5000, 200, 1, 600]
        );
    }

    #[test]
    fn a_file_that_is_no_report_says_so() {
        let error = Durations::parse(r#"{"shard": ["1/2"]}"#).expect_err("no tasks");
        assert!(error.contains("missing field `tasks`"), "{error}");
        let temp = tempfile::tempdir().expect("tempdir");
        let missing = temp.path().join("report.json");
        let error = Durations::read(&missing).expect_err("no file").to_string();
        assert!(error.starts_with("--durations "), "{error}");
        assert!(error.contains("cannot read it"), "{error}");
    }

    #[test]
    fn without_any_duration_every_task_weighs_its_weight() {
        let none = Durations::default();
        assert_eq!(none.weights([("a", 1), ("b", 4)]), vec![1, 4]);
    }
}
