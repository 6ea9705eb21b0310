//! The files a task changed, for checks that look only at those
//! (`changed_files`): what differs between the task's base and its folder,
//! committed or not, including new files git does not ignore.

use std::path::Path;

use git2::{Delta, DiffOptions, Repository};

/// The files in `workdir` that differ from `base` (a commit or a ref),
/// sorted; deleted files are left out, since there is nothing to check.
pub fn changed_files(workdir: &Path, base: &str) -> Result<Vec<String>, git2::Error> {
    let repo = Repository::open(workdir)?;
    let tree = repo.revparse_single(base)?.peel_to_tree()?;
    let mut options = DiffOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true);
    let diff = repo.diff_tree_to_workdir_with_index(Some(&tree), Some(&mut options))?;
    let mut files: Vec<String> = diff
        .deltas()
        .filter(|d| d.status() != Delta::Deleted)
        .filter_map(|d| {
            d.new_file()
                .path()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn committed_uncommitted_and_new_files_count_and_deleted_ones_do_not() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path();
        git(dir, &["init", "-q"]);
        for name in ["kept.txt", "edited.txt", "gone.txt", "committed.txt"] {
            std::fs::write(dir.join(name), "one\n").expect("write");
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "base"]);
        git(dir, &["tag", "base"]);
        std::fs::write(dir.join("committed.txt"), "two\n").expect("write");
        git(dir, &["commit", "-q", "-am", "work"]);
        std::fs::write(dir.join("edited.txt"), "two\n").expect("write");
        std::fs::remove_file(dir.join("gone.txt")).expect("remove");
        std::fs::write(dir.join("new file.txt"), "new\n").expect("write");
        assert_eq!(
            changed_files(dir, "base").expect("diff"),
            ["committed.txt", "edited.txt", "new file.txt"]
        );
    }
}
