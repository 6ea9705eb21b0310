//! Running part of a manifest: `--only`, `--skip`, `--tag` and `--shard`.
//! The selected tasks must be closed under `needs` (or, when part of an
//! earlier run is rerun, need only tasks carried over complete), so a
//! partial run never waits on a task it will not run.

use super::SweepPlan;
use crate::manifest::diagnostic::{did_you_mean, list_names};

/// Which tasks of the plan to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub tags: Vec<String>,
    /// `--shard K/N`: the tasks the partition gives this job.
    pub shard: Option<crate::plan::shard::Shard>,
    /// `--durations REPORT.json`: balance the shards by these.
    pub durations: Option<crate::plan::balance::Durations>,
}

/// A selection that names no task, or leaves a need out.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("`{name}` is not a task of this manifest{hint}")]
    Unknown { name: String, hint: String },
    #[error("no task has the tag `{tag}` (tags: {known})")]
    UnknownTag { tag: String, known: String },
    #[error("task `{task}` needs `{need}`, which is not selected")]
    NeedLeftOut { task: String, need: String },
    #[error("the selection leaves no task to run")]
    Empty,
}

impl SelectError {
    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            SelectError::Unknown { .. } => "`dispatch plan FILE` lists the task ids".to_owned(),
            SelectError::UnknownTag { .. } => {
                "name a tag the manifest gives its tasks (`tags: [...]`); --tag is repeatable and selects the tasks with any of them".to_owned()
            }
            SelectError::NeedLeftOut { need, .. } => format!(
                "select it too (`--only {need}`), or rerun on top of a run where it completed (`--retry-failed RUN`)"
            ),
            SelectError::Empty => "check the ids and tags given to --only, --skip and --tag".to_owned(),
        }
    }
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.skip.is_empty() && self.tags.is_empty() && self.shard.is_none()
    }

    /// Which tasks of `plan` are selected, in plan order. A name matches a
    /// task's id or, for matrix tasks, the id they were expanded from.
    pub fn choose(&self, plan: &SweepPlan) -> Result<Vec<bool>, SelectError> {
        for name in self.only.iter().chain(&self.skip) {
            let known = plan
                .tasks
                .iter()
                .any(|t| &t.id == name || *t.source_id == **name);
            if !known {
                let hint = did_you_mean(name, plan.tasks.iter().map(|t| t.id.as_str()))
                    .map(|close| format!("; did you mean `{close}`?"))
                    .unwrap_or_default();
                return Err(SelectError::Unknown {
                    name: name.clone(),
                    hint,
                });
            }
        }
        // Several tags select the tasks with any of them, so one misspelt
        // tag would be lost among the others without this.
        for tag in &self.tags {
            if !plan.tasks.iter().any(|t| t.tags.contains(tag)) {
                let mut all: Vec<&str> = Vec::new();
                for t in plan.tasks.iter().flat_map(|t| &t.tags) {
                    if !all.contains(&t.as_str()) {
                        all.push(t);
                    }
                }
                let known = match did_you_mean(tag, all.iter().copied()) {
                    Some(close) => format!(
                        "{}; did you mean `{close}`?",
                        list_names(all.iter().copied(), 10)
                    ),
                    None => list_names(all.iter().copied(), 10),
                };
                return Err(SelectError::UnknownTag {
                    tag: tag.clone(),
                    known,
                });
            }
        }
        let in_shard = self
            .shard
            .as_ref()
            .map(|shard| crate::plan::shard::select(plan, shard, self.durations.as_ref()));
        let names = |t: &super::PlannedTask, list: &[String]| {
            list.iter().any(|n| *n == t.id || **n == *t.source_id)
        };
        let chosen: Vec<bool> = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (self.only.is_empty() || names(t, &self.only))
                    && !names(t, &self.skip)
                    && (self.tags.is_empty() || t.tags.iter().any(|g| self.tags.contains(g)))
                    && in_shard
                        .as_ref()
                        .is_none_or(|s| s.get(i).copied().unwrap_or(false))
            })
            .collect();
        // A shard may be empty (more shards than groups of tasks): it
        // runs nothing and reports so. A selection by name or tag that
        // matches nothing is a mistake.
        let by_shard_alone = self.only.is_empty() && self.skip.is_empty() && self.tags.is_empty();
        if !chosen.contains(&true) && !by_shard_alone {
            return Err(SelectError::Empty);
        }
        Ok(chosen)
    }
}

/// The first selected task that needs one left out (`available` says
/// which tasks can satisfy a need without running: selected ones, or ones
/// carried over complete).
pub fn check_needs(
    plan: &SweepPlan,
    available: &[bool],
    chosen: &[bool],
) -> Result<(), SelectError> {
    for (i, task) in plan.tasks.iter().enumerate() {
        if !chosen[i] {
            continue;
        }
        for need in &task.needs {
            let ok = plan
                .tasks
                .iter()
                .position(|t| &t.id == need)
                .is_some_and(|n| available[n]);
            if !ok {
                return Err(SelectError::NeedLeftOut {
                    task: task.id.clone(),
                    need: need.clone(),
                });
            }
        }
    }
    Ok(())
}
