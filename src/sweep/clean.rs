//! `dispatch clean`: remove the worktrees and branches runs left, without
//! ever losing work. A worktree with uncommitted changes and a branch with
//! commits that no other ref holds are kept unless the user says `--force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::isolation::review::{self, FolderState};
use crate::isolation::worktree::{self, Repo, WorktreeError};
use crate::record::snapshot;
use crate::state::lock::{Holder, Lock};
use crate::state::{StateDir, StateError};

/// What to clean.
#[derive(Clone, Debug, Default)]
pub struct CleanOptions {
    pub worktrees: bool,
    pub branches: bool,
    /// Only this run's (default: every run's).
    pub run: Option<String>,
    /// Remove uncommitted work and delete unmerged branches too.
    pub force: bool,
    /// Say what would go, change nothing.
    pub dry_run: bool,
}

/// Why a clean could not start.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Worktree(#[from] WorktreeError),
    #[error("no run `{0}` under .dispatch/runs")]
    NoSuchRun(String),
}

/// One thing clean did, would do, or left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    RemovedWorktree { path: PathBuf, bytes: u64 },
    KeptWorktree { path: PathBuf, why: String },
    DeletedBranch { name: String },
    KeptBranch { name: String, why: String },
    Failed { what: String, error: String },
}

impl Outcome {
    /// A line for the terminal (`dry_run` says "would").
    pub fn line(&self, dry_run: bool) -> String {
        let (removed, deleted) = if dry_run {
            ("would remove", "would delete")
        } else {
            ("removed", "deleted")
        };
        match self {
            Outcome::RemovedWorktree { path, bytes } => {
                format!(
                    "{removed} worktree {} ({})",
                    path.display(),
                    human_bytes(*bytes)
                )
            }
            Outcome::KeptWorktree { path, why } => {
                format!("kept worktree {}: {why}", path.display())
            }
            Outcome::DeletedBranch { name } => format!("{deleted} branch {name}"),
            Outcome::KeptBranch { name, why } => format!("kept branch {name}: {why}"),
            Outcome::Failed { what, error } => format!("could not clean {what}: {error}"),
        }
    }
}

/// What a clean did, in order, and the disk it freed.
#[derive(Debug, Default)]
pub struct CleanReport {
    pub outcomes: Vec<Outcome>,
    pub pruned_records: usize,
}

impl CleanReport {
    pub fn freed_bytes(&self) -> u64 {
        self.outcomes
            .iter()
            .map(|o| match o {
                Outcome::RemovedWorktree { bytes, .. } => *bytes,
                _ => 0,
            })
            .sum()
    }

    pub fn failed(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Failed { .. }))
    }
}

/// A worktree some run made, as its task record says.
#[derive(Clone, Debug)]
struct Left {
    path: PathBuf,
    branch: String,
}

/// Clean what the runs under `state` left. Takes the state folder's lock,
/// so nothing is removed from under a run in progress.
pub fn clean(state: &StateDir, options: &CleanOptions) -> Result<CleanReport, CleanError> {
    let _lock = Lock::acquire(
        state,
        &Holder {
            pid: std::process::id(),
            run_id: "dispatch clean".to_owned(),
            started_at: crate::util::clock::now(),
        },
    )?;
    let repo = Repo::open(&state.root)?;
    let left = left_by_runs(state, options.run.as_deref())?;
    let mut report = CleanReport::default();
    let worktrees = options.worktrees || !options.branches;
    if worktrees {
        for item in left.values() {
            if item.path.exists() {
                report
                    .outcomes
                    .push(remove_worktree(&repo, &item.path, options));
            }
        }
    }
    if options.branches {
        delete_branches(&repo, &left, options, &mut report);
    }
    if !options.dry_run {
        report.pruned_records = repo.prune_stale(&state.dir)?;
    }
    Ok(report)
}

/// Every worktree the selected runs made, by folder (the newest record of
/// a folder wins), plus folders under `.dispatch/worktrees/` that no record
/// names (a run killed before it wrote one) when no run is selected.
fn left_by_runs(
    state: &StateDir,
    only: Option<&str>,
) -> Result<BTreeMap<PathBuf, Left>, CleanError> {
    let mut runs: Vec<String> = std::fs::read_dir(state.runs_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    if let Some(only) = only {
        if !runs.iter().any(|r| r == only) {
            return Err(CleanError::NoSuchRun(only.to_owned()));
        }
        runs.retain(|r| r == only);
    }
    let mut left = BTreeMap::new();
    for run in &runs {
        let Ok(snapshot) = snapshot::load(state, Some(run)) else {
            continue;
        };
        for task in snapshot.tasks {
            if let Some(branch) = task.record.branch {
                let path = PathBuf::from(&branch.path);
                left.insert(
                    path.clone(),
                    Left {
                        path,
                        branch: branch.name,
                    },
                );
            }
        }
    }
    if only.is_none() {
        for entry in std::fs::read_dir(state.dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if !left.contains_key(&path) && path.join(".git").is_file() {
                let branch = branch_checked_out(&path).unwrap_or_default();
                left.insert(path.clone(), Left { path, branch });
            }
        }
    }
    Ok(left)
}

fn branch_checked_out(path: &Path) -> Option<String> {
    let repo = git2::Repository::open(path).ok()?;
    let head = repo.head().ok()?;
    head.shorthand().ok().map(str::to_owned)
}

fn remove_worktree(repo: &Repo, path: &Path, options: &CleanOptions) -> Outcome {
    let bytes = worktree::disk_usage(path);
    let changes = git2::Repository::open(path)
        .ok()
        .and_then(|r| review::changed_files(&r).ok())
        .unwrap_or(0);
    if changes > 0 && !options.force {
        return Outcome::KeptWorktree {
            path: path.to_path_buf(),
            why: format!(
                "{changes} file{} with uncommitted changes; commit them, or pass --force to discard them",
                if changes == 1 { "" } else { "s" }
            ),
        };
    }
    if options.dry_run {
        return Outcome::RemovedWorktree {
            path: path.to_path_buf(),
            bytes,
        };
    }
    match repo.remove(path, options.force, &[]) {
        Ok(FolderState::Removed | FolderState::Missing) => Outcome::RemovedWorktree {
            path: path.to_path_buf(),
            bytes,
        },
        Ok(_) => Outcome::KeptWorktree {
            path: path.to_path_buf(),
            why: "it has uncommitted changes; pass --force to discard them".to_owned(),
        },
        Err(e) => Outcome::Failed {
            what: path.display().to_string(),
            error: e.to_string(),
        },
    }
}

/// Delete the runs' branches whose commits another ref holds (a branch
/// they were merged into, a remote, a tag, or a branch kept here); keep
/// the others unless `--force`.
fn delete_branches(
    repo: &Repo,
    left: &BTreeMap<PathBuf, Left>,
    options: &CleanOptions,
    report: &mut CleanReport,
) {
    let mut leaving: Vec<String> = Vec::new();
    for item in left.values() {
        if item.branch.is_empty() || leaving.contains(&item.branch) {
            continue;
        }
        if repo.branch_tip(&item.branch).is_none() {
            continue;
        }
        let gone = report
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::RemovedWorktree { path, .. } if *path == item.path));
        if item.path.exists() && !gone {
            report.outcomes.push(Outcome::KeptBranch {
                name: item.branch.clone(),
                why: format!(
                    "its worktree {} is still there (clean it first, or add --worktrees)",
                    item.path.display()
                ),
            });
            continue;
        }
        leaving.push(item.branch.clone());
    }
    // What reruns set aside from these branches goes by the same rule;
    // nothing checks them out.
    let aside: Vec<String> = left
        .values()
        .filter(|item| !item.branch.is_empty())
        .flat_map(|item| repo.set_aside_branches(&item.branch))
        .collect();
    for name in aside {
        if !leaving.contains(&name) {
            leaving.push(name);
        }
    }
    // A branch is safe to delete when something that stays holds its
    // commits; keeping one branch can make another safe, so settle the
    // set before deleting anything.
    if !options.force {
        loop {
            let unmerged: Vec<&String> = leaving
                .iter()
                .filter(|b| !repo.is_merged_elsewhere(b, &leaving))
                .collect();
            // Keep a branch no other branch contains first: keeping it
            // may make the ones it contains safe to delete.
            let Some(name) = unmerged
                .iter()
                .find(|b| !repo.is_merged_elsewhere(b, std::slice::from_ref(b)))
                .or(unmerged.first())
                .map(|b| (*b).clone())
            else {
                break;
            };
            leaving.retain(|b| *b != name);
            report.outcomes.push(Outcome::KeptBranch {
                why: "it has commits that are not merged anywhere; merge them, or pass --force to delete it".to_owned(),
                name,
            });
        }
    }
    for name in leaving {
        if options.dry_run {
            report.outcomes.push(Outcome::DeletedBranch { name });
            continue;
        }
        match repo.delete_branch(&name) {
            Ok(()) => report.outcomes.push(Outcome::DeletedBranch { name }),
            Err(e) => report.outcomes.push(Outcome::Failed {
                what: format!("branch {name}"),
                error: e.to_string(),
            }),
        }
    }
}

/// `12.3 MB`, for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
