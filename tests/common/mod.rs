//! Helpers shared by the integration tests that run `dispatch run` with the
//! scripted test agent.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The test agent, built by `cargo test` as an example target (and built
/// here when a filtered test run did not build it).
pub fn agent() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test binary path");
            let target = exe.parent().and_then(Path::parent).expect("target dir");
            let agent = target.join("examples").join("test-agent");
            // A filtered run (`cargo test --test NAME`) builds no examples:
            // an agent older than its source would lack new steps.
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent/test_agent.rs");
            let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified(&agent).is_none() || modified(&agent) < modified(&source) {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "--example", "test-agent"])
                    .status()
                    .expect("cargo builds the test agent");
                assert!(status.success());
            }
            agent
        })
        .clone()
}

pub struct Project {
    dir: tempfile::TempDir,
    /// `dir`'s path without symbolic links, as dispatch (which
    /// canonicalizes its root) reports it: macOS's temporary folders are
    /// under `/var`, a link to `/private/var`.
    path: PathBuf,
}

impl Project {
    pub fn new() -> Self {
        Self::in_dir(tempfile::tempdir().expect("tempdir"))
    }

    fn in_dir(dir: tempfile::TempDir) -> Self {
        let path = std::fs::canonicalize(dir.path()).expect("canonical tempdir");
        Self { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `sweep.yaml`; `AGENT` in the text is replaced by the agent's path.
    pub fn manifest(&self, text: &str) -> PathBuf {
        let path = self.path().join("sweep.yaml");
        let text = text.replace("AGENT", &agent().display().to_string());
        std::fs::write(&path, text).expect("write manifest");
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dispatch"));
        command
            .args(args)
            .arg("--root")
            .arg(self.path())
            .current_dir(self.path())
            .env("HOME", self.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CI");
        command
    }

    /// `dispatch run sweep.yaml --json` and its events.
    pub fn run(&self, extra: &[&str]) -> (Output, Vec<Value>) {
        let mut args = vec![
            "run",
            "sweep.yaml",
            "--json",
            "--grace",
            "300ms",
            "--retry-delay",
            "50ms",
        ];
        args.extend_from_slice(extra);
        let output = self.command(&args).output().expect("dispatch runs");
        let events = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (output, events)
    }

    pub fn task_file(&self, id: &str, name: &str) -> String {
        std::fs::read_to_string(self.path().join(".dispatch/tasks").join(id).join(name))
            .unwrap_or_default()
    }

    pub fn task_json(&self, id: &str) -> Value {
        serde_json::from_str(&self.task_file(id, "task.json")).expect("task.json")
    }
}

/// A project whose folder name starts with `prefix` (for paths with spaces
/// or non-ASCII characters).
pub fn project_named(prefix: &str) -> Project {
    Project::in_dir(
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir"),
    )
}

/// `git` in `dir`, with a fixed identity and neither the user's nor the
/// system's configuration.
pub fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "dispatch tests")
        .env("GIT_AUTHOR_EMAIL", "tests@example.invalid")
        .env("GIT_COMMITTER_NAME", "dispatch tests")
        .env("GIT_COMMITTER_EMAIL", "tests@example.invalid")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_CEILING_DIRECTORIES");
    command
}

/// Run `git ARGS` in `dir`, which must succeed; its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir).args(args).output().expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

/// `git init -b main` in `dir` and a first commit of everything there (plus
/// a one-line `README.md`).
pub fn init_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# project\n").expect("write README");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "first commit"]);
}

/// Whether `pid` is a live process; a zombie (dead, not yet reaped) is not.
/// `/proc` on Linux, `ps` elsewhere (macOS).
pub fn alive(pid: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        !stat.is_empty() && !stat.contains(") Z ")
    }
    #[cfg(not(target_os = "linux"))]
    {
        let Ok(output) = Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
        else {
            return false;
        };
        let state = String::from_utf8_lossy(&output.stdout);
        let state = state.trim();
        !state.is_empty() && !state.starts_with('Z')
    }
}

pub mod browser;
pub mod real_cli;
pub mod tier;
