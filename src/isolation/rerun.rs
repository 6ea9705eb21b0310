//! A rerun of a worktree sweep: what a fresh run does with the branch and
//! folder an earlier run of the same manifest left under the same names.
//!
//! The rule (docs/worktrees.md, "Running again"): nothing an earlier run
//! committed or left uncommitted is ever lost, and nothing the user has
//! checked out is moved.
//!
//! - A worktree folder of the task's branch with no uncommitted work is
//!   removed: its commits are on the branch. One with uncommitted work, or
//!   a folder that is not that branch's worktree, still stops the run.
//! - A branch whose commits another ref also holds (no commits, or merged)
//!   is deleted and made again at the base: it has nothing of its own.
//! - A branch with commits of its own is renamed `BRANCH@COMMIT` (its tip's
//!   short id), and the run says so; the new run starts the name afresh.
//! - A branch checked out anywhere but the task's own folder stops the run.
//!
//! Checks ([`Repo::leftover_blocks`]) change nothing and run before the
//! run's lock is taken; the changes ([`Repo::clear_leftovers`]) only once
//! the lock is held, so a run in progress never loses its worktrees to a
//! second `dispatch run`.

use std::path::Path;

use git2::{BranchType, Repository};

use super::review::{changed_files, open_worktree, FolderState};
use super::worktree::{short, Repo, Spec, WorktreeError};

/// What an earlier run left under a task's names.
struct Leftover {
    /// The folder is a clean worktree of the task's branch.
    clean_folder: bool,
    branch: bool,
}

impl Repo {
    /// Whether a branch or folder an earlier run left under `spec`'s names
    /// stops a fresh run (an error saying why), or can be cleared without
    /// losing anything. Changes nothing. `ignored` are the setup's copied
    /// paths, which never count as uncommitted work.
    pub fn leftover_blocks(
        &self,
        spec: &Spec<'_>,
        ignored: &[String],
    ) -> Result<(), WorktreeError> {
        self.leftover(spec, ignored).map(|_| ())
    }

    /// Clear what an earlier run left under `spec`'s names, as the module
    /// says; returns what the run should tell the user.
    pub fn clear_leftovers(
        &self,
        spec: &Spec<'_>,
        ignored: &[String],
    ) -> Result<Vec<String>, WorktreeError> {
        let leftover = self.leftover(spec, ignored)?;
        let mut notes = Vec::new();
        if leftover.clean_folder
            && self.remove(spec.path, false, ignored)? == FolderState::KeptWithChanges
        {
            return Err(self.folder_has_work(spec, ignored));
        }
        if leftover.branch {
            notes.extend(self.move_branch_aside(spec.branch)?);
        }
        Ok(notes)
    }

    fn leftover(&self, spec: &Spec<'_>, ignored: &[String]) -> Result<Leftover, WorktreeError> {
        let mut clean_folder = false;
        if spec.path.exists() {
            if !self.worktree_has_branch(spec.path, spec.branch) {
                return Err(WorktreeError::FolderExists {
                    path: spec.path.to_path_buf(),
                });
            }
            let worktree = open_worktree(spec.path, ignored)?;
            if changed_files(&worktree)? > 0 {
                return Err(self.folder_has_work(spec, ignored));
            }
            clean_folder = true;
        }
        let branch = self.branch_tip(spec.branch).is_some();
        if branch {
            if let Some(place) = self.checked_out_elsewhere(spec.branch, spec.path) {
                return Err(WorktreeError::BranchCheckedOut {
                    branch: spec.branch.to_owned(),
                    place,
                });
            }
        }
        Ok(Leftover {
            clean_folder,
            branch,
        })
    }

    fn folder_has_work(&self, spec: &Spec<'_>, ignored: &[String]) -> WorktreeError {
        let files = open_worktree(spec.path, ignored)
            .and_then(|w| changed_files(&w))
            .unwrap_or(0);
        WorktreeError::FolderHasWork {
            path: spec.path.to_path_buf(),
            branch: spec.branch.to_owned(),
            files,
        }
    }

    /// Whether the folder is a worktree of this repository with `branch`
    /// checked out.
    fn worktree_has_branch(&self, path: &Path, branch: &str) -> bool {
        Repository::open(path)
            .ok()
            .filter(|r| r.is_worktree() && same_path(r.commondir(), self.repo.path()))
            .and_then(|r| {
                r.head()
                    .ok()
                    .and_then(|h| h.shorthand().ok().map(str::to_owned))
            })
            .is_some_and(|head| head == branch)
    }

    /// Where `branch` is checked out, other than in `own` (the task's
    /// folder): the main checkout or another worktree.
    fn checked_out_elsewhere(&self, branch: &str, own: &Path) -> Option<String> {
        if let Ok(head) = self.repo.head() {
            if head.is_branch() && head.shorthand().ok() == Some(branch) {
                return Some("the main checkout".to_owned());
            }
        }
        let names = self.repo.worktrees().ok()?;
        for name in names.iter().flatten().flatten() {
            let Ok(worktree) = self.repo.find_worktree(name) else {
                continue;
            };
            let path = worktree.path();
            if same_path(path, own) || !path.exists() {
                continue;
            }
            if self.worktree_has_branch(path, branch) {
                return Some(format!("the worktree {}", path.display()));
            }
        }
        None
    }

    /// Delete a branch whose commits another ref holds, or rename one with
    /// commits of its own to `BRANCH@COMMIT`. A note for the latter.
    fn move_branch_aside(&self, branch: &str) -> Result<Option<String>, WorktreeError> {
        let Some(tip) = self.branch_tip(branch) else {
            return Ok(None);
        };
        if self.is_merged_elsewhere(branch, &[branch.to_owned()]) {
            self.delete_branch(branch)?;
            return Ok(None);
        }
        // A copy under the aside name (an interrupted earlier move) holds
        // the tip, so it was deleted above; a name taken by another
        // commit is numbered.
        let aside = self.free_aside_name(branch, tip);
        let mut found = self.repo.find_branch(branch, BranchType::Local)?;
        found.rename(&aside, false)?;
        Ok(Some(format!(
            "the branch `{branch}` of an earlier run has commits of its own: they are kept on `{aside}`, and `{branch}` starts again from the base"
        )))
    }

    /// The branches earlier reruns set `branch`'s commits aside on
    /// (`BRANCH@COMMIT`, perhaps numbered), which `dispatch clean
    /// --branches` deletes with the branch, by the same rule.
    pub fn set_aside_branches(&self, branch: &str) -> Vec<String> {
        let prefix = format!("{branch}@");
        let Ok(branches) = self.repo.branches(Some(BranchType::Local)) else {
            return Vec::new();
        };
        let mut found: Vec<String> = branches
            .flatten()
            .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_owned))
            .filter(|name| {
                name.strip_prefix(&prefix).is_some_and(|rest| {
                    let id = rest.split_once('-').map_or(rest, |(id, _)| id);
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())
                })
            })
            .collect();
        found.sort();
        found
    }

    /// `BRANCH@COMMIT`, numbered in the unlikely case that name holds
    /// another commit.
    fn free_aside_name(&self, branch: &str, tip: git2::Oid) -> String {
        let first = format!("{branch}@{}", short(tip));
        let mut name = first.clone();
        let mut n = 2;
        while self.branch_tip(&name).is_some() {
            name = format!("{first}-{n}");
            n += 1;
        }
        name
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A repository on `main` and a branch `dispatch/t` one commit ahead.
    fn repository() -> tempfile::TempDir {
        let temp = tempfile::tempdir().expect("tempdir");
        git(temp.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(temp.path().join("a.txt"), "a\n").expect("write");
        git(temp.path(), &["add", "."]);
        git(temp.path(), &["commit", "-q", "-m", "first"]);
        git(temp.path(), &["checkout", "-q", "-b", "dispatch/t"]);
        std::fs::write(temp.path().join("b.txt"), "b\n").expect("write");
        git(temp.path(), &["add", "."]);
        git(temp.path(), &["commit", "-q", "-m", "work"]);
        git(temp.path(), &["checkout", "-q", "main"]);
        temp
    }

    fn spec(path: &Path) -> Spec<'_> {
        Spec {
            path,
            branch: "dispatch/t",
            base: "HEAD",
            reuse: false,
        }
    }

    #[test]
    fn a_name_already_holding_another_commit_is_not_overwritten() {
        let temp = repository();
        let tip = git(temp.path(), &["rev-parse", "dispatch/t"]);
        let taken = format!("dispatch/t@{}", &tip[..8]);
        // Someone's branch under the name the move would take.
        git(temp.path(), &["branch", &taken, "main"]);
        let repo = Repo::open(temp.path()).expect("open");
        let path = temp.path().join(".dispatch/worktrees/t");
        let notes = repo.clear_leftovers(&spec(&path), &[]).expect("cleared");
        assert_eq!(git(temp.path(), &["rev-parse", &format!("{taken}-2")]), tip);
        assert_eq!(
            git(temp.path(), &["rev-parse", &taken]),
            git(temp.path(), &["rev-parse", "main"]),
            "the other branch is untouched"
        );
        assert!(notes[0].contains(&format!("`{taken}-2`")), "{notes:?}");
        assert!(repo.branch_tip("dispatch/t").is_none());
    }

    #[test]
    fn a_move_interrupted_after_the_copy_finishes_without_a_second_copy() {
        let temp = repository();
        let tip = git(temp.path(), &["rev-parse", "dispatch/t"]);
        let aside = format!("dispatch/t@{}", &tip[..8]);
        git(temp.path(), &["branch", &aside, "dispatch/t"]);
        let repo = Repo::open(temp.path()).expect("open");
        let path = temp.path().join(".dispatch/worktrees/t");
        repo.clear_leftovers(&spec(&path), &[]).expect("cleared");
        // The tip is held by `aside` (another ref), so the branch is
        // simply made again; the copy stays.
        assert_eq!(git(temp.path(), &["rev-parse", &aside]), tip);
        assert!(repo.branch_tip("dispatch/t").is_none());
        assert!(repo.branch_tip(&format!("{aside}-2")).is_none());
    }
}
