//! Git worktrees: one per task, on its own branch, so workers never touch
//! the main checkout or each other, and what each one committed can be
//! reviewed as a branch.
//!
//! git2 does what it does well in-process: opening the repository,
//! resolving the base, creating and checking branches, commits ahead, diff
//! stats, dirty state, auto-commits and pruning. The checkout itself goes
//! through `git worktree add` when `git` is on `PATH`: it was measured faster
//! than libgit2's checkout (see `benches/worktrees.rs`), and it runs the
//! repository's post-checkout hooks and LFS filters, which libgit2 does not.
//! Without `git`, libgit2 checks out, and a repository that needs LFS
//! filters is refused rather than given pointer files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::review::{changed_files, open_worktree, FolderState};

use git2::{BranchType, Oid, Repository};

/// How many commits of a branch a record lists by subject.
pub const MAX_LISTED_COMMITS: usize = 20;

/// Branch creation and worktree records touch files shared by every task
/// (`.git/refs`, `.git/worktrees`); tasks starting at once take turns for
/// those steps, and only the checkout itself runs in parallel.
static GIT_ADMIN: Mutex<()> = Mutex::new(());

/// Something a worktree could not be made, inspected or removed for, with
/// what to do about it (`help`).
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    #[error("{} is not inside a git repository, so a task cannot get a worktree", root.display())]
    NotARepository { root: PathBuf },
    #[error("{} is a bare repository: it has no checkout to branch from", root.display())]
    Bare { root: PathBuf },
    #[error("the repository has no commit yet, and a worktree starts from a commit")]
    Unborn,
    #[error("the base `{base}` is not a commit, branch or tag of this repository")]
    BaseNotFound {
        base: String,
        suggestions: Vec<String>,
    },
    #[error("the branch `{branch}` already exists (at {head})")]
    BranchExists { branch: String, head: String },
    #[error("`{branch}` is not a valid branch name")]
    BadBranchName { branch: String },
    #[error("the folder {} already exists", path.display())]
    FolderExists { path: PathBuf },
    #[error("an earlier run left uncommitted work in {} ({files} file(s) on branch `{branch}`)", path.display())]
    FolderHasWork {
        path: PathBuf,
        branch: String,
        files: usize,
    },
    #[error("the branch `{branch}` of an earlier run is checked out in {place}")]
    BranchCheckedOut { branch: String, place: String },
    #[error("the repository uses Git LFS, whose files libgit2 cannot check out, and `git` is not on PATH")]
    NeedsGitForLfs,
    #[error("`{command}` failed: {stderr}")]
    GitCommand { command: String, stderr: String },
    #[error("{0}")]
    Setup(#[from] crate::isolation::setup::SetupError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WorktreeError {
    /// What the user can do about it.
    pub fn help(&self) -> String {
        match self {
            WorktreeError::NotARepository { .. } => {
                "run `git init` and commit, run dispatch inside the repository, or remove `worktree:` from the manifest".to_owned()
            }
            WorktreeError::Bare { .. } => {
                "run dispatch in a clone with a work tree (`git clone` the bare repository), or remove `worktree:`".to_owned()
            }
            WorktreeError::Unborn => "make a first commit (`git commit --allow-empty -m init`), then run again".to_owned(),
            WorktreeError::BaseNotFound { suggestions, .. } => match suggestions.as_slice() {
                [] => "set `worktree.base` to an existing branch, tag or commit, or leave it out to start from HEAD".to_owned(),
                found => format!("did you mean {}?", found.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")),
            },
            WorktreeError::BranchExists { .. } => {
                "an earlier run left it: review and delete it (`dispatch clean --branches`), set `worktree.reuse: true` to continue on it, or name branches per run with `worktree.branch: \"dispatch/{{ run.id }}/{{ task.id }}\"`".to_owned()
            }
            WorktreeError::BadBranchName { .. } => "change `worktree.branch` to a name git accepts (no spaces, `..`, `~`, `^`, `:` or trailing `/`)".to_owned(),
            WorktreeError::FolderExists { .. } => {
                "it is not a worktree of this task's branch: `dispatch clean` removes an earlier run's worktree that holds no work; otherwise move it away, or set `worktree.path` to another folder".to_owned()
            }
            WorktreeError::FolderHasWork { path, branch, .. } => format!(
                "`dispatch resume` continues that run in it; otherwise commit it (`git -C {} commit -am ...` keeps it on `{branch}`), discard it with `dispatch clean --force`, or set `worktree.reuse: true` to continue in it",
                path.display()
            ),
            WorktreeError::BranchCheckedOut { .. } => {
                "check out another branch there (or remove that worktree), then run again; dispatch never moves a branch someone has checked out".to_owned()
            }
            WorktreeError::NeedsGitForLfs => "install git (with git-lfs), so worktrees get the real files".to_owned(),
            WorktreeError::GitCommand { .. } => "fix what git says above, or run `git worktree prune` if a stale worktree is in the way".to_owned(),
            WorktreeError::Setup(_) => "fix `worktree.setup` in the manifest; the command's whole output is in the task's setup.log".to_owned(),
            WorktreeError::Git(_) | WorktreeError::Io { .. } => {
                "check that the repository is readable and writable, and that `git status` works in it".to_owned()
            }
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        WorktreeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How a worktree's files are checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checkout {
    /// `git worktree add` with this `git` (hooks and LFS filters run).
    GitCommand(PathBuf),
    /// libgit2, in-process, for machines without `git`.
    Libgit2,
}

impl Checkout {
    /// `git` when it is on `PATH`, else libgit2.
    pub fn detect() -> Checkout {
        crate::agents::find_program("git", Path::new("."))
            .map_or(Checkout::Libgit2, Checkout::GitCommand)
    }
}

/// What a task's worktree should be.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    pub path: &'a Path,
    pub branch: &'a str,
    /// A commit, branch or tag (`HEAD` by default).
    pub base: &'a str,
    /// Continue on an existing branch and folder instead of refusing them.
    pub reuse: bool,
}

/// A worktree ready for its worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub path: PathBuf,
    pub branch: String,
    /// The full id of the commit the branch started from (for a reused
    /// branch, the commit the base names now).
    pub base_commit: String,
    /// Whether an existing branch or folder was taken up.
    pub reused: bool,
    /// Whether the folder was checked out now (not an existing worktree
    /// taken up): only a fresh folder gets the setup.
    pub fresh: bool,
}

/// A repository that tasks get worktrees of.
pub struct Repo {
    pub(super) repo: Repository,
    workdir: PathBuf,
}

impl Repo {
    /// The repository the project root is in; refuses what no worktree can
    /// be made from.
    pub fn open(root: &Path) -> Result<Repo, WorktreeError> {
        let repo = Repository::discover(root).map_err(|e| match e.code() {
            git2::ErrorCode::NotFound => WorktreeError::NotARepository {
                root: root.to_path_buf(),
            },
            _ => WorktreeError::Git(e),
        })?;
        if repo.is_bare() {
            return Err(WorktreeError::Bare {
                root: repo.path().to_path_buf(),
            });
        }
        let workdir = repo
            .workdir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.to_path_buf());
        Ok(Repo { repo, workdir })
    }

    /// Whether HEAD names a branch with no commit yet (a fresh `git init`,
    /// whatever the default branch is called).
    fn is_unborn(&self) -> bool {
        matches!(self.repo.head(), Err(e) if e.code() == git2::ErrorCode::UnbornBranch)
    }

    /// The main checkout's top folder.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The commit `base` names. An unborn HEAD and a missing ref get their
    /// own errors, with the nearest branch names as suggestions.
    pub fn resolve(&self, base: &str) -> Result<Oid, WorktreeError> {
        if self.is_unborn() {
            return Err(WorktreeError::Unborn);
        }
        match self
            .repo
            .revparse_single(base)
            .and_then(|o| o.peel_to_commit())
        {
            Ok(commit) => Ok(commit.id()),
            Err(_) => Err(WorktreeError::BaseNotFound {
                base: base.to_owned(),
                suggestions: self.similar_refs(base),
            }),
        }
    }

    fn similar_refs(&self, wanted: &str) -> Vec<String> {
        let mut names: Vec<(f64, String)> = self
            .repo
            .branches(None)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_owned))
            .map(|name| (strsim::jaro_winkler(wanted, &name), name))
            .filter(|(score, _)| *score > 0.8)
            .collect();
        names.sort_by(|a, b| b.0.total_cmp(&a.0));
        names.into_iter().take(2).map(|(_, n)| n).collect()
    }

    /// `branch main`, or `a detached HEAD at 1a2b3c4`, for messages.
    pub fn head_label(&self) -> String {
        match self.repo.head() {
            Ok(head) if head.is_branch() => {
                format!("branch {}", head.shorthand().unwrap_or("HEAD"))
            }
            Ok(head) => format!(
                "a detached HEAD at {}",
                head.target().map(short).unwrap_or_default()
            ),
            Err(_) => "an unborn HEAD".to_owned(),
        }
    }

    /// How many files in the main checkout differ from HEAD (untracked ones
    /// included): work a worktree, which starts from the commit, will not
    /// see.
    pub fn uncommitted_in_main(&self) -> Result<usize, WorktreeError> {
        changed_files(&self.repo)
    }

    /// Whether the repository has submodules (a worktree gets them as empty
    /// folders).
    pub fn has_submodules(&self) -> bool {
        self.repo.submodules().is_ok_and(|s| !s.is_empty())
    }

    /// Where a local branch points, if it exists.
    pub fn branch_tip(&self, name: &str) -> Option<Oid> {
        self.repo
            .find_branch(name, BranchType::Local)
            .ok()
            .and_then(|b| b.get().target())
    }

    /// Check, without changing anything, that `spec` can be created: the
    /// base resolves (unless another task of the run makes it), the branch
    /// name is valid, and neither branch nor folder is left from before
    /// (unless `reuse`).
    pub fn check(&self, spec: &Spec<'_>, base_made_by_run: bool) -> Result<(), WorktreeError> {
        if !base_made_by_run {
            self.resolve(spec.base)?;
        } else if self.is_unborn() {
            return Err(WorktreeError::Unborn);
        }
        if !git2::Branch::name_is_valid(spec.branch).unwrap_or(false) {
            return Err(WorktreeError::BadBranchName {
                branch: spec.branch.to_owned(),
            });
        }
        if spec.reuse {
            return Ok(());
        }
        if let Some(tip) = self.branch_tip(spec.branch) {
            return Err(WorktreeError::BranchExists {
                branch: spec.branch.to_owned(),
                head: short(tip),
            });
        }
        if spec.path.exists() {
            return Err(WorktreeError::FolderExists {
                path: spec.path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Make the task's worktree: a new branch at the base, checked out in
    /// its own folder. With `reuse`, an existing branch is checked out
    /// again and an existing worktree of it is taken as it is.
    pub fn create(&self, spec: &Spec<'_>, checkout: &Checkout) -> Result<Created, WorktreeError> {
        let base = self.resolve(spec.base)?;
        let created = |reused, fresh| Created {
            path: spec.path.to_path_buf(),
            branch: spec.branch.to_owned(),
            base_commit: base.to_string(),
            reused,
            fresh,
        };
        let existing_branch;
        {
            let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
            self.prune_stale(spec.path.parent().unwrap_or(spec.path))?;
            existing_branch = self.branch_tip(spec.branch);
            if spec.reuse
                && existing_branch.is_some()
                && self.is_worktree_of(spec.path, spec.branch)
            {
                return Ok(created(true, false));
            }
            self.check(spec, false)?;
            if spec.path.exists() {
                return Err(WorktreeError::FolderExists {
                    path: spec.path.to_path_buf(),
                });
            }
            if existing_branch.is_none() {
                let commit = self.repo.find_commit(base)?;
                self.repo.branch(spec.branch, &commit, false)?;
            }
            if let Some(parent) = spec.path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| WorktreeError::io(parent, e))?;
            }
        }
        let made = match checkout {
            Checkout::GitCommand(git) => {
                // `git worktree add` reads every other worktree's record
                // and fails on one that another `git worktree add` is half
                // way through writing, so checkouts take turns.
                let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
                self.checkout_with_git(git, spec)
            }
            Checkout::Libgit2 => self.checkout_with_libgit2(spec),
        };
        match made {
            Ok(()) => Ok(created(existing_branch.is_some(), true)),
            Err(e) => {
                // A branch made for this worktree and never used is not
                // left behind to block the next run.
                let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
                if let Ok(mut branch) = self.repo.find_branch(spec.branch, BranchType::Local) {
                    if branch.get().target() == Some(base) && !spec.reuse {
                        let _ = branch.delete();
                    }
                }
                Err(e)
            }
        }
    }

    fn checkout_with_git(&self, git: &Path, spec: &Spec<'_>) -> Result<(), WorktreeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let output = Command::new(git)
                .current_dir(&self.workdir)
                .args(["worktree", "add", "--quiet"])
                .arg(spec.path)
                .arg(spec.branch)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| WorktreeError::io(git, e))?;
            if output.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            // Another git process holding a lock file is worth a short
            // wait; anything else is reported as git said it.
            if attempt < 5 && stderr.contains(".lock") {
                std::thread::sleep(Duration::from_millis(50 * attempt));
                continue;
            }
            return Err(WorktreeError::GitCommand {
                command: format!("git worktree add {} {}", spec.path.display(), spec.branch),
                stderr,
            });
        }
    }

    fn checkout_with_libgit2(&self, spec: &Spec<'_>) -> Result<(), WorktreeError> {
        if uses_lfs(&self.workdir) {
            return Err(WorktreeError::NeedsGitForLfs);
        }
        let branch = self.repo.find_branch(spec.branch, BranchType::Local)?;
        let reference = branch.into_reference();
        let mut options = git2::WorktreeAddOptions::new();
        options.reference(Some(&reference));
        let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
        let name = self.free_worktree_name(spec.path);
        self.repo.worktree(&name, spec.path, Some(&options))?;
        Ok(())
    }

    /// A name for git's record of the worktree (`.git/worktrees/NAME`): the
    /// folder's name, numbered when taken, as `git worktree add` does.
    fn free_worktree_name(&self, path: &Path) -> String {
        let stem: String = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".to_owned())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let taken = self.repo.worktrees().ok();
        let is_taken = |name: &str| {
            taken
                .as_ref()
                .is_some_and(|t| t.iter().flatten().flatten().any(|n| n == name))
                || self.repo.path().join("worktrees").join(name).exists()
        };
        let mut name = stem.clone();
        let mut n = 1;
        while is_taken(&name) {
            name = format!("{stem}{n}");
            n += 1;
        }
        name
    }

    fn is_worktree_of(&self, path: &Path, branch: &str) -> bool {
        Repository::open(path)
            .ok()
            .filter(|r| r.is_worktree())
            .and_then(|r| {
                r.head()
                    .ok()
                    .and_then(|h| h.shorthand().ok().map(str::to_owned))
            })
            .is_some_and(|head| head == branch)
    }

    /// Forget git's records of worktrees under `under` whose folder is gone
    /// (deleted by hand, or a killed run's half-made one), so neither the
    /// next run nor `git worktree list` trips over them.
    pub fn prune_stale(&self, under: &Path) -> Result<usize, WorktreeError> {
        let mut pruned = 0;
        for name in self.repo.worktrees()?.iter().flatten().flatten() {
            let Ok(worktree) = self.repo.find_worktree(name) else {
                continue;
            };
            if !worktree.path().starts_with(under) || worktree.path().exists() {
                continue;
            }
            let mut options = git2::WorktreePruneOptions::new();
            options.locked(true);
            if worktree.prune(Some(&mut options)).is_ok() {
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Remove a worktree's folder and git's record of it. A folder with
    /// uncommitted work is kept unless `force`.
    pub fn remove(
        &self,
        path: &Path,
        force: bool,
        ignored: &[String],
    ) -> Result<FolderState, WorktreeError> {
        if !path.exists() {
            let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
            self.prune_stale(path.parent().unwrap_or(path))?;
            return Ok(FolderState::Missing);
        }
        if !force {
            let worktree = open_worktree(path, ignored)?;
            if changed_files(&worktree)? > 0 {
                return Ok(FolderState::KeptWithChanges);
            }
        }
        std::fs::remove_dir_all(path).map_err(|e| WorktreeError::io(path, e))?;
        let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
        self.prune_stale(path.parent().unwrap_or(path))?;
        Ok(FolderState::Removed)
    }

    /// Delete a local branch (refused by git while a worktree has it out).
    pub fn delete_branch(&self, name: &str) -> Result<(), WorktreeError> {
        let _admin = GIT_ADMIN.lock().unwrap_or_else(|e| e.into_inner());
        let mut branch = self.repo.find_branch(name, BranchType::Local)?;
        branch.delete()?;
        Ok(())
    }
}

fn uses_lfs(workdir: &Path) -> bool {
    std::fs::read_to_string(workdir.join(".gitattributes"))
        .is_ok_and(|text| text.contains("filter=lfs"))
}

/// The abbreviated form of a commit id used in messages and reports.
pub fn short(oid: Oid) -> String {
    let mut text = oid.to_string();
    text.truncate(8);
    text
}

/// How much disk a folder holds (files only, links not followed).
pub fn disk_usage(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    fn repository() -> tempfile::TempDir {
        let temp = tempfile::tempdir().expect("tempdir");
        git(temp.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(temp.path().join("a.txt"), "one\ntwo\n").expect("write");
        git(temp.path(), &["add", "."]);
        git(temp.path(), &["commit", "-q", "-m", "first"]);
        temp
    }

    fn each_checkout() -> Vec<Checkout> {
        vec![Checkout::detect(), Checkout::Libgit2]
    }

    #[test]
    fn creates_reviews_and_removes_a_worktree_with_either_checkout() {
        for checkout in each_checkout() {
            let temp = repository();
            let repo = Repo::open(temp.path()).expect("open");
            let path = temp.path().join(".dispatch/worktrees/t1");
            let spec = Spec {
                path: &path,
                branch: "dispatch/t1",
                base: "HEAD",
                reuse: false,
            };
            let created = repo.create(&spec, &checkout).expect("create");
            assert_eq!(
                std::fs::read_to_string(path.join("a.txt")).expect("checked out"),
                "one\ntwo\n"
            );
            std::fs::write(path.join("b.txt"), "new\n").expect("write");
            git(&path, &["add", "b.txt"]);
            git(&path, &["commit", "-q", "-m", "add b"]);
            std::fs::write(path.join("a.txt"), "one\n").expect("write");
            let review = repo.review(&created, "HEAD", &[]).expect("review");
            assert_eq!(review.ahead, 1, "{checkout:?}");
            assert_eq!(review.commits[0].subject, "add b");
            assert_eq!((review.files_changed, review.insertions), (1, 1));
            assert_eq!(review.uncommitted, 1);
            assert_eq!(
                repo.remove(&path, false, &[]).expect("remove"),
                FolderState::KeptWithChanges
            );
            let commit =
                super::super::review::commit_all(&path, "dispatch: t1", &[]).expect("commit");
            assert!(commit.is_some());
            assert_eq!(repo.review(&created, "HEAD", &[]).expect("review").ahead, 2);
            assert_eq!(
                repo.remove(&path, false, &[]).expect("remove"),
                FolderState::Removed
            );
            assert!(!path.exists());
            assert!(repo.repo.worktrees().expect("list").is_empty());
            assert!(repo.branch_tip("dispatch/t1").is_some(), "the branch stays");
        }
    }

    #[test]
    fn an_aider_cache_is_not_uncommitted_work() {
        let temp = repository();
        let repo = Repo::open(temp.path()).expect("open");
        let path = temp.path().join(".dispatch/worktrees/t1");
        let spec = Spec {
            path: &path,
            branch: "dispatch/t1",
            base: "HEAD",
            reuse: false,
        };
        let created = repo.create(&spec, &Checkout::Libgit2).expect("create");
        let cache = path.join(".aider.tags.cache.v4");
        std::fs::create_dir_all(&cache).expect("mkdir");
        std::fs::write(cache.join("cache.db"), "tags").expect("write");
        assert_eq!(
            repo.review(&created, "HEAD", &[])
                .expect("review")
                .uncommitted,
            0
        );
        // `commit: auto` commits the work and leaves the cache out.
        std::fs::write(path.join("b.txt"), "new\n").expect("write");
        let commit = super::super::review::commit_all(&path, "dispatch: t1", &[]).expect("commit");
        assert!(commit.is_some());
        let head = repo.branch_tip("dispatch/t1").expect("branch");
        let tree = repo
            .repo
            .find_commit(head)
            .expect("commit")
            .tree()
            .expect("tree");
        assert!(tree.get_name("b.txt").is_some());
        assert!(tree.get_name(".aider.tags.cache.v4").is_none());
        assert_eq!(
            repo.remove(&path, false, &[]).expect("remove"),
            FolderState::Removed,
            "a worktree holding only the cache is not kept"
        );
    }

    #[test]
    fn refuses_a_branch_or_folder_left_from_before_unless_reused() {
        let temp = repository();
        let repo = Repo::open(temp.path()).expect("open");
        let path = temp.path().join(".dispatch/worktrees/t1");
        let mut spec = Spec {
            path: &path,
            branch: "dispatch/t1",
            base: "HEAD",
            reuse: false,
        };
        repo.create(&spec, &Checkout::detect()).expect("create");
        assert!(matches!(
            repo.create(&spec, &Checkout::detect()),
            Err(WorktreeError::BranchExists { .. })
        ));
        spec.reuse = true;
        let again = repo.create(&spec, &Checkout::detect()).expect("reuse");
        assert!(again.reused);
        std::fs::remove_dir_all(&path).expect("delete by hand");
        let again = repo
            .create(&spec, &Checkout::detect())
            .expect("reuse the branch");
        assert!(path.join("a.txt").exists());
        assert_eq!(again.branch, "dispatch/t1");
    }

    #[test]
    fn a_missing_base_suggests_a_near_branch() {
        let temp = repository();
        git(temp.path(), &["branch", "develop"]);
        let repo = Repo::open(temp.path()).expect("open");
        match repo.resolve("devlop") {
            Err(e @ WorktreeError::BaseNotFound { .. }) => {
                assert!(e.help().contains("`develop`"), "{}", e.help())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn merge_check_names_the_conflicting_files() {
        let temp = repository();
        for (branch, text) in [
            ("left", "one\nLEFT\n"),
            ("right", "one\nRIGHT\n"),
            ("other", "one\ntwo\n"),
        ] {
            git(temp.path(), &["checkout", "-q", "-b", branch, "main"]);
            std::fs::write(temp.path().join("a.txt"), text).expect("write");
            std::fs::write(temp.path().join(format!("{branch}.txt")), "x").expect("write");
            git(temp.path(), &["add", "."]);
            git(temp.path(), &["commit", "-q", "-m", branch]);
        }
        git(temp.path(), &["checkout", "-q", "main"]);
        let repo = Repo::open(temp.path()).expect("open");
        assert!(repo.merge_check("left", "main").expect("check").clean);
        assert_eq!(
            repo.conflicts_between("left", "right").expect("merge"),
            vec!["a.txt".to_owned()]
        );
        assert!(repo
            .conflicts_between("left", "other")
            .expect("merge")
            .is_empty());
        // main moves on and now conflicts with left.
        std::fs::write(temp.path().join("a.txt"), "one\nMAIN\n").expect("write");
        git(temp.path(), &["commit", "-q", "-am", "main moves"]);
        let check = repo.merge_check("left", "main").expect("check");
        assert!(!check.clean);
        assert_eq!(check.conflicts, vec!["a.txt".to_owned()]);
    }

    #[test]
    fn merged_branches_can_go_and_unmerged_ones_cannot() {
        let temp = repository();
        git(temp.path(), &["branch", "merged"]);
        git(temp.path(), &["checkout", "-q", "-b", "work"]);
        std::fs::write(temp.path().join("c.txt"), "c").expect("write");
        git(temp.path(), &["add", "."]);
        git(temp.path(), &["commit", "-q", "-m", "c"]);
        git(temp.path(), &["checkout", "-q", "main"]);
        let repo = Repo::open(temp.path()).expect("open");
        assert!(repo.is_merged_elsewhere("merged", &["merged".into()]));
        assert!(!repo.is_merged_elsewhere("work", &["work".into()]));
        git(temp.path(), &["branch", "keep", "work"]);
        assert!(repo.is_merged_elsewhere("work", &["work".into()]));
        assert!(!repo.is_merged_elsewhere("work", &["work".into(), "keep".into()]));
    }
}
