//! The run's side of worktree isolation: checks before anything launches,
//! a worktree made (off the event loop) before a task's worker starts, and
//! its branch reviewed and its folder kept or removed after the worker ends.

use std::path::Path;
use std::time::Instant;

use tokio::sync::mpsc;

use super::carry::Fate;
use super::slot::Phase;
use super::Sweep;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::isolation::merge_check::{self, MergeReadiness};
use crate::isolation::review::{self, BranchRecord, FolderState};
use crate::isolation::setup;
use crate::isolation::worktree::{Created, Repo, Spec, WorktreeError};
use crate::manifest::types::{CommitPolicy, KeepPolicy};
use crate::manifest::{Invalid, LoadedManifest};
use crate::plan::{PlannedTask, SweepPlan, WorktreePlan};

/// A worktree made (or not) for a task, handed back to the event loop.
pub(super) struct Prepared {
    pub index: usize,
    pub made: Result<Created, WorktreeError>,
    pub took_ms: u64,
}

/// A worktree task's branch settled (or not) after its worker, handed back
/// to the event loop.
pub(super) struct Settled {
    pub index: usize,
    /// `None` when the branch could not be reviewed (the warnings say why).
    pub record: Option<BranchRecord>,
    pub warnings: Vec<String>,
}

/// The git side of settling a worktree, off the event loop: the automatic
/// commit, the review, and the folder kept or removed.
fn settle_blocking(
    root: &Path,
    plan: &WorktreePlan,
    made: &Created,
    status: TaskStatus,
    message: &str,
    warnings: &mut Vec<String>,
) -> Option<BranchRecord> {
    let ignored: Vec<String> = plan
        .setup
        .as_ref()
        .map(|s| s.copy.clone())
        .unwrap_or_default();
    let mut auto_commit = None;
    if plan.commit == CommitPolicy::Auto && made.path.exists() {
        match review::commit_all(&made.path, message, &ignored) {
            Ok(commit) => auto_commit = commit,
            Err(e) => warnings.push(format!("could not commit the worktree's changes: {e}")),
        }
    }
    let reviewed = Repo::open(root).and_then(|repo| {
        let record = repo.review(made, &plan.base, &ignored)?;
        Ok((repo, record))
    });
    let (repo, mut record) = match reviewed {
        Ok(reviewed) => reviewed,
        Err(e) => {
            warnings.push(format!("cannot review its branch: {e}"));
            return None;
        }
    };
    record.auto_commit = auto_commit;
    if record.folder == FolderState::Missing {
        warnings.push(format!(
            "its worktree {} was deleted while the task ran; its branch {} keeps what was committed",
            made.path.display(),
            made.branch
        ));
        let _ = repo.prune_stale(made.path.parent().unwrap_or(&made.path));
    } else if removes_folder(plan.keep, status) {
        match repo.remove(&made.path, false, &ignored) {
            Ok(state) => record.folder = state,
            Err(e) => warnings.push(format!("could not remove its worktree: {e}")),
        }
    }
    Some(record)
}

fn spec(worktree: &WorktreePlan, reuse: bool) -> Spec<'_> {
    Spec {
        path: Path::new(&worktree.path),
        branch: &worktree.branch,
        base: &worktree.base,
        reuse: reuse || worktree.reuse,
    }
}

/// Check every worktree task before anything launches: a repository that
/// can have worktrees, bases that exist, no branch or folder left from an
/// earlier run (unless `reuse`). Each problem points at the task's
/// `worktree:` in the manifest. Returns what the run should warn about
/// (uncommitted changes the worktrees will not see, submodules).
pub(super) fn preflight(
    loaded: &LoadedManifest,
    plan: &SweepPlan,
    root: &Path,
    fates: &[Fate],
) -> Result<Vec<String>, Invalid> {
    // A carried task makes no worktree; a rerun one takes up its own.
    let tasks: Vec<(&PlannedTask, bool)> = plan
        .tasks
        .iter()
        .zip(fates)
        .filter(|(t, fate)| t.worktree.is_some() && fate.runs())
        .map(|(t, fate)| (&**t, fate.reuses_worktree()))
        .collect();
    let Some((first, _)) = tasks.first() else {
        return Ok(Vec::new());
    };
    let at = |task: &PlannedTask, e: &WorktreeError| {
        loaded
            .error_at(
                &["tasks", &*task.source_id, "worktree"],
                format!("task `{}` cannot get its worktree: {e}", task.id),
            )
            .with_help(e.help())
    };
    let repo = Repo::open(root).map_err(|e| Invalid(vec![at(first, &e)]))?;
    let branches_of_run: Vec<&str> = tasks
        .iter()
        .filter_map(|(t, _)| t.worktree.as_ref().map(|w| w.branch.as_str()))
        .collect();
    let mut problems = Vec::new();
    for (task, reuse) in &tasks {
        let Some(worktree) = &task.worktree else {
            continue;
        };
        let made_by_run = branches_of_run.contains(&worktree.base.as_str());
        let spec = spec(worktree, *reuse);
        // What an earlier run left is cleared once the run holds its lock
        // (`make_way`); here only whether it can be, without losing work.
        let fresh = !spec.reuse;
        let checked = match fresh {
            true => repo
                .leftover_blocks(&spec, &copied(worktree))
                .and_then(|()| {
                    repo.check(
                        &Spec {
                            reuse: true,
                            ..spec
                        },
                        made_by_run,
                    )
                }),
            false => repo.check(&spec, made_by_run),
        };
        if let Err(e) = checked {
            problems.push(at(task, &e));
        }
    }
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let mut notes = Vec::new();
    let head = repo.head_label();
    match repo.uncommitted_in_main() {
        Ok(0) => {}
        Ok(n) => notes.push(format!(
            "{n} uncommitted file{} in the main checkout will not be in the worktrees: they start from the commit ({head}); commit first to include {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        )),
        Err(e) => notes.push(format!("cannot tell whether the main checkout has uncommitted changes: {e}")),
    }
    if head.starts_with("a detached") {
        notes.push(format!(
            "worktrees start from {head}; their branches are new, so nothing is lost"
        ));
    }
    if repo.has_submodules() {
        notes.push("the repository has submodules, which worktrees get as empty folders; initialise them in the task if it needs them".to_owned());
    }
    Ok(notes)
}

/// The setup's copied paths, which are never the worker's uncommitted work.
fn copied(worktree: &WorktreePlan) -> Vec<String> {
    worktree
        .setup
        .as_ref()
        .map(|s| s.copy.clone())
        .unwrap_or_default()
}

/// Clear the branches and folders earlier runs left under the names of the
/// tasks this run starts afresh (`isolation::rerun` has the rule). Called
/// with the run's lock held, after `preflight` found nothing in the way.
pub(super) fn make_way(
    loaded: &LoadedManifest,
    plan: &SweepPlan,
    root: &Path,
    fates: &[Fate],
) -> Result<Vec<String>, Invalid> {
    let fresh: Vec<(&PlannedTask, &WorktreePlan)> = plan
        .tasks
        .iter()
        .zip(fates)
        .filter(|(_, fate)| fate.runs() && !fate.reuses_worktree())
        .filter_map(|(t, _)| t.worktree.as_deref().map(|w| (&**t, w)))
        .filter(|(_, w)| !w.reuse)
        .collect();
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let at = |task: &PlannedTask, e: &WorktreeError| {
        loaded
            .error_at(
                &["tasks", &*task.source_id, "worktree"],
                format!("task `{}` cannot get its worktree: {e}", task.id),
            )
            .with_help(e.help())
    };
    let repo = Repo::open(root).map_err(|e| Invalid(vec![at(fresh[0].0, &e)]))?;
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    for (task, worktree) in fresh {
        match repo.clear_leftovers(&spec(worktree, false), &copied(worktree)) {
            Ok(said) => notes.extend(said),
            Err(e) => problems.push(at(task, &e)),
        }
    }
    if problems.is_empty() {
        Ok(notes)
    } else {
        Err(Invalid(problems))
    }
}

impl Sweep {
    /// Make a task's worktree on a blocking thread; the worker launches
    /// when it is ready (see `worktree_prepared`). A retry finds its
    /// worktree made already, or makes it again if it was deleted.
    pub(super) fn needs_worktree(&self, index: usize) -> bool {
        self.slots[index].task.worktree.is_some()
            && self.slots[index]
                .worktree
                .as_ref()
                .is_none_or(|made| !made.path.exists())
    }

    pub(super) fn prepare_worktree(
        &mut self,
        index: usize,
        ready: &mpsc::UnboundedSender<Prepared>,
    ) {
        let Some(plan) = self.slots[index].task.worktree.clone() else {
            return;
        };
        self.set_phase(index, Phase::Preparing);
        // A second attempt takes up what the first one made, and a task
        // rerun from an earlier run what that run made.
        let reuse =
            self.slots[index].worktree.is_some() || self.slots[index].earlier.reuse_worktree;
        let root = self.state.root.clone();
        let checkout = self.checkout.clone();
        let ready = ready.clone();
        let task = &self.slots[index].task;
        let env = self.worker_env(task, Vec::new());
        let log = Path::new(task.paths.task_dir()).join("worker.log");
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let made = Repo::open(&root)
                .and_then(|repo| repo.create(&spec(&plan, reuse), &checkout))
                .and_then(|made| match &plan.setup {
                    Some(how) if made.fresh => {
                        match setup::apply(how, &root, &made.path, &env, &log) {
                            Ok(()) => Ok(made),
                            Err(e) => {
                                // Nothing of the worker's is in it yet: take it
                                // away, so a fixed setup can run again at once.
                                if let Ok(repo) = Repo::open(&root) {
                                    let _ = repo.remove(&made.path, true, &[]);
                                    if !made.reused {
                                        let _ = repo.delete_branch(&made.branch);
                                    }
                                }
                                Err(e.into())
                            }
                        }
                    }
                    _ => Ok(made),
                });
            let _ = ready.send(Prepared {
                index,
                made,
                took_ms: started.elapsed().as_millis() as u64,
            });
        });
    }

    /// A worktree is ready, or could not be made. Returns whether the task
    /// may launch now.
    pub(super) fn worktree_prepared(&mut self, prepared: Prepared) -> bool {
        let index = prepared.index;
        self.set_phase(index, Phase::Pending);
        let task = self.slots[index].task.clone();
        let Some(plan) = &task.worktree else {
            return false;
        };
        match prepared.made {
            Ok(made) => {
                self.emit(Event::WorktreeReady {
                    task: task.id.clone(),
                    path: made.path.display().to_string(),
                    branch: made.branch.clone(),
                    base_commit: made.base_commit.clone(),
                    reused: made.reused,
                    duration_ms: prepared.took_ms,
                });
                self.slots[index].record.branch = Some(Box::new(BranchRecord {
                    name: made.branch.clone(),
                    path: made.path.display().to_string(),
                    base: plan.base.clone(),
                    base_commit: made.base_commit.clone(),
                    reused: made.reused,
                    ..BranchRecord::default()
                }));
                self.slots[index].worktree = Some(Box::new(made));
                self.save(index);
                if super::cancel::requested(Path::new(&task.paths.ipc())) {
                    // `dispatch cancel --task` came while it was being made.
                    self.end_unlaunched(
                        index,
                        TaskStatus::Cancelled,
                        "cancelled by `dispatch cancel`".to_owned(),
                    );
                    return false;
                }
                self.interrupted == 0 && self.halted.is_none()
            }
            Err(e) => {
                // Never a silent fallback to the main checkout.
                let reason = match &e {
                    WorktreeError::Setup(_) => format!(
                        "its worktree setup failed, so the worker did not start: {e}\n{}",
                        e.help()
                    ),
                    _ => format!(
                        "its worktree could not be made, so it did not run (and not in the main checkout instead): {e}; {}",
                        e.help()
                    ),
                };
                self.fail_unlaunched(index, reason);
                self.escalate_end(index, TaskStatus::Failed);
                false
            }
        }
    }

    /// After a worktree task's last attempt: commit what the worker left
    /// (with `commit: auto`), record its branch for review, and keep or
    /// remove the folder as the keep policy says. A folder with uncommitted
    /// work is never removed. The git work (a commit, a diff, deleting a
    /// checkout) takes seconds in a large repository, so it runs on a
    /// blocking thread; the runner's one thread goes on supervising the
    /// other workers, and tasks that need this one wait until its branch
    /// is settled (see `settled`).
    pub(super) fn settle_worktree(&mut self, index: usize, status: TaskStatus) {
        let task = &self.slots[index].task;
        let (Some(plan), Some(made)) = (task.worktree.clone(), self.slots[index].worktree.clone())
        else {
            return;
        };
        let message = format!(
            "dispatch: {} — {}\n\nWhat the worker left uncommitted, committed by dispatch (run {}, task {}).",
            task.id, task.title, self.run_id, task.id
        );
        let root = self.state.root.clone();
        let done = self.settled_tx.clone();
        self.set_phase(index, Phase::Settling);
        tokio::task::spawn_blocking(move || {
            let mut warnings = Vec::new();
            let record = settle_blocking(&root, &plan, &made, status, &message, &mut warnings);
            let _ = done.send(Settled {
                index,
                record,
                warnings,
            });
        });
    }

    /// A worktree task's branch is settled: say what happened and record it.
    pub(super) fn settled(&mut self, settled: Settled) {
        let index = settled.index;
        self.set_phase(index, Phase::Ended);
        let id = self.slots[index].task.id.clone();
        for warning in settled.warnings {
            self.warn(&id, warning);
        }
        let Some(record) = settled.record else {
            return;
        };
        if record.folder == FolderState::Removed {
            self.slots[index].worktree = None;
        }
        self.emit(Event::BranchReviewed {
            task: id,
            branch: record.name.clone(),
            ahead: record.ahead,
            files_changed: record.files_changed,
            insertions: record.insertions,
            deletions: record.deletions,
            uncommitted: record.uncommitted,
            folder: record.folder,
            path: record.path.clone(),
        });
        self.slots[index].record.branch = Some(Box::new(record));
        self.save(index);
    }

    /// How the run's branches merge, once every task ended; `None` when no
    /// task has a branch.
    pub(super) fn merge_readiness(&mut self) -> Option<MergeReadiness> {
        let branches: Vec<(String, BranchRecord)> = self
            .slots
            .iter()
            .map(|s| &s.record)
            .filter_map(|r| r.branch.as_deref().map(|b| (r.id.clone(), b.clone())))
            .filter(|(_, b)| b.head.is_some())
            .collect();
        if branches.is_empty() {
            return None;
        }
        match merge_check::assess(&self.state.root, &branches) {
            Ok(readiness) => {
                for conflict in &readiness.conflicts {
                    self.emit(Event::Warning {
                        task: None,
                        message: format!(
                            "branches {} and {} conflict in {}",
                            conflict.branch,
                            conflict.other_branch,
                            conflict.files.join(", ")
                        ),
                    });
                }
                Some(readiness)
            }
            Err(e) => {
                self.emit(Event::Warning {
                    task: None,
                    message: format!("cannot check how the branches merge: {e}"),
                });
                None
            }
        }
    }

    fn warn(&mut self, task: &str, message: String) {
        self.emit(Event::Warning {
            task: Some(task.to_owned()),
            message,
        });
    }
}

/// Whether the keep policy removes a worktree folder after a task that
/// ended `status` (if it holds no uncommitted work). A task that can be
/// resumed (blocked on a question, cancelled) keeps its folder.
pub fn removes_folder(keep: Option<KeepPolicy>, status: TaskStatus) -> bool {
    if matches!(status, TaskStatus::Blocked | TaskStatus::Cancelled) {
        return false;
    }
    match keep {
        Some(KeepPolicy::Always) => false,
        Some(KeepPolicy::OnFailure) => status == TaskStatus::Complete,
        Some(KeepPolicy::Never) | None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_policies() {
        assert!(removes_folder(None, TaskStatus::Complete));
        assert!(removes_folder(None, TaskStatus::Failed));
        assert!(!removes_folder(
            Some(KeepPolicy::Always),
            TaskStatus::Complete
        ));
        assert!(removes_folder(
            Some(KeepPolicy::OnFailure),
            TaskStatus::Complete
        ));
        assert!(!removes_folder(
            Some(KeepPolicy::OnFailure),
            TaskStatus::Failed
        ));
        assert!(!removes_folder(
            Some(KeepPolicy::Never),
            TaskStatus::Blocked
        ));
    }
}
