//! What a worktree task left for review: its branch (commits ahead of the
//! base, the diff stat, what was left uncommitted), the commit dispatch
//! makes of uncommitted work (`commit: auto`), and what became of the
//! folder.

use std::path::Path;

use git2::{Oid, Repository, StatusOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::worktree::{short, Created, Repo, WorktreeError, MAX_LISTED_COMMITS};

/// What happened to a worktree's folder after its task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FolderState {
    /// Still there (the task runs, or the keep policy kept it).
    #[default]
    Present,
    /// Removed after the task, as the keep policy says.
    Removed,
    /// Kept although the policy would remove it: it holds uncommitted work.
    KeptWithChanges,
    /// Gone: deleted by hand while the task ran.
    Missing,
}

/// One commit on a task's branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommitLine {
    /// The abbreviated commit id.
    pub id: String,
    /// The first line of its message.
    pub subject: String,
}

/// A worktree task's branch, ready for review: what `task.json`, `dispatch
/// status` and the reports say about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BranchRecord {
    /// The branch name.
    pub name: String,
    /// The worktree folder.
    pub path: String,
    /// The base as the manifest gave it.
    pub base: String,
    /// The commit the branch started from.
    pub base_commit: String,
    /// The branch's head commit, once the task ended.
    pub head: Option<String>,
    /// Commits on the branch that the base does not have.
    pub ahead: usize,
    /// Those commits, newest first (at most 20).
    pub commits: Vec<CommitLine>,
    /// Files changed by those commits.
    pub files_changed: usize,
    /// Lines they add.
    pub insertions: usize,
    /// Lines they delete.
    pub deletions: usize,
    /// Files the worker left changed but not committed.
    pub uncommitted: usize,
    /// The commit dispatch made of the worker's uncommitted changes
    /// (`commit: auto`).
    pub auto_commit: Option<String>,
    /// What became of the folder.
    pub folder: FolderState,
    /// Whether an existing branch or folder was taken up.
    #[serde(default)]
    pub reused: bool,
}

impl BranchRecord {
    /// `2 commits, 3 files +40 -2, 1 uncommitted file`, for status lines.
    pub fn summary(&self) -> String {
        change_summary(
            self.ahead,
            self.files_changed,
            self.insertions,
            self.deletions,
            self.uncommitted,
        )
    }
}

/// What a branch holds, in a few words (see `BranchRecord::summary`).
pub fn change_summary(
    ahead: usize,
    files: usize,
    insertions: usize,
    deletions: usize,
    uncommitted: usize,
) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut parts = vec![if ahead == 0 {
        "no commits".to_owned()
    } else {
        format!(
            "{}, {} +{insertions} -{deletions}",
            plural(ahead, "commit"),
            plural(files, "file")
        )
    }];
    if uncommitted > 0 {
        parts.push(format!("{} uncommitted", plural(uncommitted, "file")));
    }
    parts.join(", ")
}

impl FolderState {
    /// What became of the folder, for people.
    pub fn describe(self) -> &'static str {
        match self {
            FolderState::Present => "worktree kept",
            FolderState::Removed => "worktree removed",
            FolderState::KeptWithChanges => "worktree kept: it has uncommitted changes",
            FolderState::Missing => "worktree folder was deleted while the task ran",
        }
    }
}

impl Repo {
    /// What the task left on its branch, for review.
    /// `ignored`: paths the worktree's setup copied in, which are not the
    /// worker's changes.
    pub fn review(
        &self,
        created: &Created,
        base: &str,
        ignored: &[String],
    ) -> Result<BranchRecord, WorktreeError> {
        let base_commit = Oid::from_str(&created.base_commit)?;
        let mut record = BranchRecord {
            name: created.branch.clone(),
            path: created.path.display().to_string(),
            base: base.to_owned(),
            base_commit: created.base_commit.clone(),
            reused: created.reused,
            ..BranchRecord::default()
        };
        if created.path.exists() {
            let worktree = open_worktree(&created.path, ignored)?;
            record.uncommitted = changed_files(&worktree)?;
        } else {
            record.folder = FolderState::Missing;
        }
        let Some(head) = self.branch_tip(&created.branch) else {
            return Ok(record);
        };
        record.head = Some(head.to_string());
        let (ahead, _) = self.repo.graph_ahead_behind(head, base_commit)?;
        record.ahead = ahead;
        let mut walk = self.repo.revwalk()?;
        walk.push(head)?;
        walk.hide(base_commit)?;
        for oid in walk.take(MAX_LISTED_COMMITS).flatten() {
            let commit = self.repo.find_commit(oid)?;
            record.commits.push(CommitLine {
                id: short(oid),
                subject: commit
                    .summary()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        let from = self
            .repo
            .merge_base(base_commit, head)
            .unwrap_or(base_commit);
        let old = self.repo.find_commit(from)?.tree()?;
        let new = self.repo.find_commit(head)?.tree()?;
        let diff = self.repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
        let stats = diff.stats()?;
        record.files_changed = stats.files_changed();
        record.insertions = stats.insertions();
        record.deletions = stats.deletions();
        Ok(record)
    }
}

/// Commit everything the worker left in its worktree (respecting
/// `.gitignore`); `None` when there was nothing to commit.
pub fn commit_all(
    path: &Path,
    message: &str,
    ignored: &[String],
) -> Result<Option<String>, WorktreeError> {
    let repo = open_worktree(path, ignored)?;
    if changed_files(&repo)? == 0 {
        return Ok(None);
    }
    let mut index = repo.index()?;
    let workdir = path.to_path_buf();
    let mut skip_setup_links =
        |entry: &Path, _: &[u8]| -> i32 { i32::from(is_link_out_of(&workdir, entry)) };
    index.add_all(
        ["*"],
        git2::IndexAddOption::DEFAULT,
        Some(&mut skip_setup_links),
    )?;
    index.update_all(["*"], None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parent = repo.head()?.peel_to_commit()?;
    let signature = repo
        .signature()
        .or_else(|_| git2::Signature::now("dispatch", "dispatch@localhost"))?;
    let oid = repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &[&parent],
    )?;
    Ok(Some(oid.to_string()))
}

/// Caches agent CLIs write into a checkout's root, never the worker's work:
/// aider's repository map (`.aider.tags.cache.v4/`), made when aider runs
/// with git (a backend a manifest overrode; the built-in one runs it
/// without). A worktree holding only one is not kept as uncommitted, and
/// `commit: auto` leaves it out.
const CLI_CACHES: &str = "/.aider.tags.cache.v*/";

/// A worktree, with `ignored` paths (what its setup copied in) and
/// [`CLI_CACHES`] ignored for this look only.
pub fn open_worktree(path: &Path, ignored: &[String]) -> Result<Repository, WorktreeError> {
    let repo = Repository::open(path)?;
    repo.add_ignore_rule(CLI_CACHES)?;
    if !ignored.is_empty() {
        let rules: Vec<String> = ignored
            .iter()
            .map(|p| format!("/{}", p.trim_start_matches("./").trim_end_matches('/')))
            .collect();
        repo.add_ignore_rule(&rules.join("\n"))?;
    }
    Ok(repo)
}

/// Whether `relative` in `workdir` is a symbolic link to somewhere outside
/// it: what `worktree.setup.link` makes, never the worker's work.
fn is_link_out_of(workdir: &Path, relative: &Path) -> bool {
    let path = workdir.join(relative);
    std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::read_link(&path)
            .is_ok_and(|target| target.is_absolute() && !target.starts_with(workdir))
}

/// Changed, staged and untracked files (not ignored ones, links setup made,
/// nor the state folder).
pub fn changed_files(repo: &Repository) -> Result<usize, WorktreeError> {
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(false)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses
        .iter()
        .filter(|entry| {
            let Ok(path) = entry.path() else {
                return true;
            };
            // The state folder lives in the main checkout; it is never
            // the user's uncommitted work.
            let setup_link = entry.status().is_wt_new()
                && repo
                    .workdir()
                    .is_some_and(|w| is_link_out_of(w, Path::new(path)));
            !path.starts_with(crate::state::DIR_NAME) && !setup_link
        })
        .count())
}
