//! Making a fresh worktree a place a real project can work in, before its
//! worker starts: files git ignores (`.env`) copied in, heavy folders
//! (`node_modules`, `target`) linked, and a setup command run. A failure
//! here fails the task before any tokens are spent.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::manifest::types::WorktreeSetup;

/// How long a setup command may run when the manifest does not say.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of a failed command's output goes into the task's reason.
const OUTPUT_TAIL_BYTES: usize = 2000;

/// Why a worktree could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("setup: `{0}` does not exist in the main checkout, so it cannot be copied or linked")]
    Missing(String),
    #[error("setup: `{0}` must be a path inside the project (relative, without `..`)")]
    Outside(String),
    #[error("setup: `{path}` is already in the worktree (git tracks it), so it cannot be linked")]
    Tracked { path: String },
    #[error("setup: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("setup command `{command}` {how}; its output ends:\n{tail}")]
    Command {
        command: String,
        how: String,
        tail: String,
    },
}

/// Whether `path` names something inside the project: relative and
/// without `..`. (Checked again here, since it reaches the file system.)
pub fn is_inside(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Copy, link, then run, in that order. The command's output is appended
/// to `log` (the task's `worker.log`).
pub fn apply(
    setup: &WorktreeSetup,
    main: &Path,
    worktree: &Path,
    env: &[(String, String)],
    log: &Path,
) -> Result<(), SetupError> {
    for path in &setup.copy {
        copy(main, worktree, path)?;
    }
    for path in &setup.link {
        link(main, worktree, path)?;
    }
    if let Some(command) = &setup.run {
        let timeout = setup
            .timeout
            .as_deref()
            .and_then(crate::manifest::duration::parse)
            .unwrap_or(DEFAULT_SETUP_TIMEOUT);
        run(command, worktree, env, log, timeout)?;
    }
    Ok(())
}

fn checked(main: &Path, path: &str) -> Result<std::path::PathBuf, SetupError> {
    if !is_inside(path) {
        return Err(SetupError::Outside(path.to_owned()));
    }
    let source = main.join(path);
    if std::fs::symlink_metadata(&source).is_err() {
        return Err(SetupError::Missing(path.to_owned()));
    }
    Ok(source)
}

fn copy(main: &Path, worktree: &Path, path: &str) -> Result<(), SetupError> {
    let source = checked(main, path)?;
    let target = worktree.join(path);
    let io = |what: &str, source| SetupError::Io {
        what: format!("{what} `{path}`"),
        source,
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("copying", e))?;
    }
    copy_tree(&source, &target).map_err(|e| io("copying", e))
}

/// Copy a file, a link (as a link) or a folder with what it holds.
fn copy_tree(source: &Path, target: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(source)?;
    if meta.file_type().is_symlink() {
        let _ = std::fs::remove_file(target);
        std::os::unix::fs::symlink(std::fs::read_link(source)?, target)
    } else if meta.is_dir() {
        std::fs::create_dir_all(target)?;
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &target.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(source, target).map(|_| ())
    }
}

fn link(main: &Path, worktree: &Path, path: &str) -> Result<(), SetupError> {
    let source = checked(main, path)?;
    let target = worktree.join(path);
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(SetupError::Tracked {
            path: path.to_owned(),
        });
    }
    let io = |source| SetupError::Io {
        what: format!("linking `{path}`"),
        source,
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::os::unix::fs::symlink(&source, &target).map_err(io)
}

fn run(
    command: &str,
    worktree: &Path,
    env: &[(String, String)],
    log: &Path,
    timeout: Duration,
) -> Result<(), SetupError> {
    let io = |source| SetupError::Io {
        what: format!("running `{command}`"),
        source,
    };
    let output_path = log.with_file_name("setup.log");
    let output = std::fs::File::create(&output_path).map_err(io)?;
    let errors = output.try_clone().map_err(io)?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(worktree)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        .spawn()
        .map_err(io)?;
    let started = Instant::now();
    let how = loop {
        match child.try_wait().map_err(io)? {
            Some(status) if status.success() => break None,
            Some(status) => break Some(format!("failed ({status})")),
            None if started.elapsed() >= timeout => {
                // The whole group (the child leads it): a setup script's
                // children go too. A group already gone is fine.
                let group = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.wait();
                break Some(format!(
                    "did not finish within {}",
                    crate::util::clock::human(timeout)
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let text = std::fs::read_to_string(&output_path).unwrap_or_default();
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(log, "--- worktree setup: {command}\n{text}--- end of setup");
    }
    match how {
        None => Ok(()),
        Some(how) => {
            let start = text
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| text.len() - i <= OUTPUT_TAIL_BYTES)
                .unwrap_or(text.len());
            Err(SetupError::Command {
                command: command.to_owned(),
                how,
                tail: text[start..].trim_end().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_project() {
        assert!(is_inside(".env"));
        assert!(is_inside("config/local.toml"));
        assert!(!is_inside("../secrets"));
        assert!(!is_inside("/etc/passwd"));
        assert!(!is_inside("a/../../b"));
        assert!(!is_inside(""));
    }

    /// Past its timeout the command's whole process group is killed: a job
    /// it started in the background never gets to write its file.
    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_background_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("worker.log");
        let command = "(sleep 2; touch survived) & touch started; sleep 4";
        let error = run(command, dir.path(), &[], &log, Duration::from_millis(500))
            .expect_err("the command outlives its timeout");
        assert!(
            error.to_string().contains("did not finish within"),
            "{error}"
        );
        assert!(dir.path().join("started").exists(), "the job started");
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            !dir.path().join("survived").exists(),
            "the background job outlived the timeout"
        );
    }
}
