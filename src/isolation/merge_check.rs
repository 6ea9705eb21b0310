//! Merge readiness: whether each worktree task's branch merges cleanly into
//! its base, and which sibling branches of a run conflict with each other,
//! so a team knows what it can merge before it opens a pull request. Every
//! merge is made in memory; nothing in the repository changes.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use git2::Oid;

use crate::isolation::review::BranchRecord;
use crate::isolation::worktree::{Repo, WorktreeError};

/// Whether a branch merges cleanly into its base.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MergeCheck {
    /// What it was merged into (the base, as it is now).
    pub into: String,
    /// No conflicts.
    pub clean: bool,
    /// The files that conflict.
    pub conflicts: Vec<String>,
}

impl Repo {
    /// Whether a branch's commits are all reachable from some ref outside
    /// `leaving` (local branches, remote-tracking branches, tags, HEAD):
    /// deleting it then loses nothing.
    pub fn is_merged_elsewhere(&self, branch: &str, leaving: &[String]) -> bool {
        let Some(tip) = self.branch_tip(branch) else {
            return true;
        };
        let Ok(references) = self.repo.references() else {
            return false;
        };
        let mut others: Vec<Oid> = references
            .flatten()
            .filter(|r| {
                let short = r.shorthand().unwrap_or_default();
                !(r.is_branch() && leaving.iter().any(|l| l == short))
            })
            .filter_map(|r| r.resolve().ok().and_then(|r| r.target()))
            .collect();
        if let Ok(head) = self.repo.head() {
            if !(head.is_branch() && leaving.iter().any(|l| Ok(l.as_str()) == head.shorthand())) {
                others.extend(head.target());
            }
        }
        others
            .into_iter()
            .any(|other| other == tip || self.repo.graph_descendant_of(other, tip).unwrap_or(false))
    }

    /// Whether `branch` merges into `into` (a branch, tag or commit, as it
    /// is now) without conflicts, and which files conflict. Nothing is
    /// written: the merge is made in memory.
    pub fn merge_check(&self, branch: &str, into: &str) -> Result<MergeCheck, WorktreeError> {
        let theirs = self
            .branch_tip(branch)
            .ok_or_else(|| WorktreeError::BaseNotFound {
                base: branch.to_owned(),
                suggestions: Vec::new(),
            })?;
        let ours = self.resolve(into)?;
        let conflicts = self.conflicting_files(ours, theirs)?;
        Ok(MergeCheck {
            into: into.to_owned(),
            clean: conflicts.is_empty(),
            conflicts,
        })
    }

    /// The files that conflict when `a` and `b` are merged (in memory).
    pub fn conflicts_between(&self, a: &str, b: &str) -> Result<Vec<String>, WorktreeError> {
        let (Some(a), Some(b)) = (self.branch_tip(a), self.branch_tip(b)) else {
            return Ok(Vec::new());
        };
        self.conflicting_files(a, b)
    }

    fn conflicting_files(&self, ours: Oid, theirs: Oid) -> Result<Vec<String>, WorktreeError> {
        let ours = self.repo.find_commit(ours)?;
        let theirs = self.repo.find_commit(theirs)?;
        let index = self.repo.merge_commits(&ours, &theirs, None)?;
        if !index.has_conflicts() {
            return Ok(Vec::new());
        }
        let mut files: Vec<String> = index
            .conflicts()?
            .flatten()
            .filter_map(|c| c.our.or(c.their).or(c.ancestor))
            .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
            .collect();
        files.sort();
        files.dedup();
        Ok(files)
    }
}

/// Two branches of the same run that conflict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SiblingConflict {
    /// One task and its branch.
    pub task: String,
    pub branch: String,
    /// The other.
    pub other_task: String,
    pub other_branch: String,
    /// The files both changed in ways that do not merge.
    pub files: Vec<String>,
}

/// A task's branch and how it merges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BranchReadiness {
    pub task: String,
    pub branch: String,
    pub merge: MergeCheck,
}

/// What `dispatch merge-check` prints and the reports show.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MergeReadiness {
    pub branches: Vec<BranchReadiness>,
    pub conflicts: Vec<SiblingConflict>,
}

impl MergeReadiness {
    /// Every branch merges into its base and no two conflict.
    pub fn all_clean(&self) -> bool {
        self.conflicts.is_empty() && self.branches.iter().all(|b| b.merge.clean)
    }
}

/// Check the branches of a run's tasks (`(task id, branch)`) as the
/// repository at `root` is now. A branch that no longer exists is left out.
pub fn assess(
    root: &Path,
    tasks: &[(String, BranchRecord)],
) -> Result<MergeReadiness, WorktreeError> {
    let repo = Repo::open(root)?;
    let present: Vec<&(String, BranchRecord)> = tasks
        .iter()
        .filter(|(_, b)| repo.branch_tip(&b.name).is_some())
        .collect();
    let mut readiness = MergeReadiness::default();
    for (task, branch) in &present {
        // A base that is gone (a stage's branch deleted since) is checked
        // against the commit the branch started from.
        let merge = repo
            .merge_check(&branch.name, &branch.base)
            .or_else(|_| repo.merge_check(&branch.name, &branch.base_commit))?;
        readiness.branches.push(BranchReadiness {
            task: task.clone(),
            branch: branch.name.clone(),
            merge,
        });
    }
    for (i, (task, branch)) in present.iter().enumerate() {
        for (other_task, other) in &present[i + 1..] {
            let files = repo.conflicts_between(&branch.name, &other.name)?;
            if !files.is_empty() {
                readiness.conflicts.push(SiblingConflict {
                    task: task.clone(),
                    branch: branch.name.clone(),
                    other_task: other_task.clone(),
                    other_branch: other.name.clone(),
                    files,
                });
            }
        }
    }
    Ok(readiness)
}

/// The readiness as lines for the terminal.
pub fn render(readiness: &MergeReadiness) -> String {
    let mut out = String::new();
    if readiness.branches.is_empty() {
        out.push_str("no worktree branches to check\n");
        return out;
    }
    for branch in &readiness.branches {
        let verdict = if branch.merge.clean {
            "merges cleanly".to_owned()
        } else {
            format!("conflicts in {}", branch.merge.conflicts.join(", "))
        };
        out.push_str(&format!(
            "{} ({}) into {}: {verdict}\n",
            branch.branch, branch.task, branch.merge.into
        ));
    }
    for conflict in &readiness.conflicts {
        out.push_str(&format!(
            "{} and {} conflict in {}\n",
            conflict.branch,
            conflict.other_branch,
            conflict.files.join(", ")
        ));
    }
    if readiness.all_clean() {
        out.push_str("every branch merges cleanly, and no two conflict\n");
    }
    out
}
