//! The bubblewrap sandbox (`sandbox: true`): the command line that wraps a
//! worker's command so that it sees the machine read-only, except its
//! worktree (or folder), its task folder (plan, output, `ipc/`, private CLI
//! config folder) and a private `/tmp`; its home hidden but for its CLI's
//! login file; other tasks' folders absent; and, with `network: none` or
//! `allow`, a network namespace of its own. What is enforced and what is
//! not is in `docs/isolation.md`.
//!
//! Mounts are laid in order of depth (a parent before what is inside it),
//! so a read-only state folder inside a writable project root, or a
//! writable worktree inside the read-only state folder, each end up as
//! meant whichever is nested in which.
//!
//! Supervision still holds: bwrap stays in the worker's process group
//! (no `--new-session` at bwrap's level), `--die-with-parent` and a pid
//! namespace of its own mean nothing in it outlives bwrap, and the
//! stray scan reads the same `/proc`. bwrap itself is started with SIGTERM
//! ignored (it would otherwise die at once and take the worker down with
//! SIGKILL, losing the grace period); inside, `dispatch worker sandboxed`
//! starts the worker in a session of its own (so it has no terminal to
//! inject input into) with SIGTERM at its default and passes a stop on.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use crate::manifest::confine::{loopback_endpoint, NetworkPlan};

/// The program, found on `PATH`.
pub const BWRAP: &str = "bwrap";
/// The folder in a task folder that holds the sockets of forwarded
/// endpoints (`network: { allow: [...] }`).
pub const NET_FOLDER: &str = "net";
/// Longest path a Unix socket may have (`sun_path` less its final NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Why a sandbox cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("bubblewrap (`bwrap`) is not on PATH")]
    Missing,
    #[error("bubblewrap cannot make a sandbox here: {0}")]
    Unusable(String),
    #[error("the sandbox cannot find the worktree's git folder: {0}")]
    Git(String),
    #[error("the socket path {0} is too long for a forwarded endpoint; use a shorter project path or `network: full`")]
    SocketPath(String),
}

impl SandboxError {
    /// What the user can do about it.
    pub fn help(&self) -> &'static str {
        match self {
            SandboxError::Missing => "install bubblewrap (Debian and Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`), or remove `sandbox:` from the task",
            SandboxError::Unusable(_) => "bubblewrap needs unprivileged user namespaces: check `sysctl kernel.unprivileged_userns_clone` and, on Ubuntu 24.04 and later, `kernel.apparmor_restrict_unprivileged_userns`; in a container, run it with user namespaces allowed; or remove `sandbox:` from the task",
            SandboxError::Git(_) => "the worktree's `.git` file must name a folder under the project's `.git/worktrees/`; remove the worktree and run again",
            SandboxError::SocketPath(_) => "move the project to a shorter path",
        }
    }
}

/// Everything the sandbox of one launch is made from (absolute paths).
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub bwrap: PathBuf,
    /// The dispatch binary, which runs inside as `worker sandboxed`.
    pub helper: PathBuf,
    /// The project root (the main checkout).
    pub root: PathBuf,
    /// `ROOT/.dispatch`.
    pub state: PathBuf,
    pub task_dir: PathBuf,
    pub workdir: PathBuf,
    /// The task folders of the tasks it needs: visible, read-only.
    pub needs: Vec<PathBuf>,
    /// The user's home folder, hidden.
    pub home: Option<PathBuf>,
    /// The CLI's login file, shown read-only in the hidden home.
    pub login_file: Option<PathBuf>,
    /// The worker's program, as found on `PATH`.
    pub program: Option<PathBuf>,
    /// The `PATH` the worker gets: its folders under the home are shown.
    pub path: Option<String>,
    /// The worktree's branch, when the task has a worktree.
    pub branch: Option<String>,
    pub network: Option<NetworkPlan>,
}

/// A loopback endpoint forwarded into the sandbox: the worker connects to
/// `address` inside, which reaches `socket`, where dispatch listens and
/// connects on to `address` outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub address: SocketAddr,
    pub socket: PathBuf,
}

/// A worker's command, wrapped.
#[derive(Clone, Debug, Default)]
pub struct Wrapped {
    pub argv: Vec<String>,
    /// Variables the sandbox sets for the worker.
    pub env: Vec<(String, String)>,
    pub forwards: Vec<Forward>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mount {
    ReadOnly,
    Writable,
    Empty,
}

/// The mounts, each path once (the last word on a path wins), parents
/// first.
#[derive(Default)]
struct Mounts(Vec<(PathBuf, Mount)>);

impl Mounts {
    fn add(&mut self, path: &Path, how: Mount) {
        self.0.retain(|(p, _)| p != path);
        self.0.push((path.to_path_buf(), how));
    }

    fn args(mut self) -> Vec<String> {
        // A stable sort: at one depth, the order they were added in.
        self.0.sort_by_key(|(p, _)| p.components().count());
        let mut args = Vec::new();
        for (path, how) in self.0 {
            let path = path.display().to_string();
            match how {
                Mount::ReadOnly => args.extend(["--ro-bind".into(), path.clone(), path]),
                Mount::Writable => args.extend(["--bind".into(), path.clone(), path]),
                Mount::Empty => args.extend(["--tmpfs".into(), path]),
            }
        }
        args
    }
}

/// Whether `path` is `folder` or inside it.
fn under(path: &Path, folder: &Path) -> bool {
    path.starts_with(folder)
}

/// Wrap `argv` in the sandbox `spec` describes.
pub fn wrap(spec: &Spec, argv: &[String]) -> Result<Wrapped, SandboxError> {
    let mut mounts = Mounts::default();
    mounts.add(Path::new("/tmp"), Mount::Empty);
    let home = spec
        .home
        .as_ref()
        .filter(|h| h.is_absolute() && h.components().count() > 1 && h.is_dir());
    if let Some(home) = home {
        mounts.add(home, Mount::Empty);
        // What the worker runs must still be there: its PATH's folders,
        // its program's own folder and dispatch's (for `dispatch worker`).
        let mut shown: Vec<PathBuf> = spec.path.iter().flat_map(std::env::split_paths).collect();
        for program in spec.program.iter().chain([&spec.helper]) {
            shown.push(program.clone());
            if let Ok(real) = std::fs::canonicalize(program) {
                shown.push(real);
            }
        }
        for path in shown {
            let folder = if path.is_dir() {
                Some(path.as_path())
            } else {
                path.parent()
            };
            if let Some(folder) = folder.filter(|f| under(f, home) && f != home && f.is_dir()) {
                mounts.add(folder, Mount::ReadOnly);
            }
        }
        if let Some(login) = spec.login_file.as_ref().filter(|f| f.is_file()) {
            mounts.add(login, Mount::ReadOnly);
        }
    }
    mounts.add(&spec.root, Mount::ReadOnly);
    mounts.add(&spec.state, Mount::ReadOnly);
    let tasks = spec.task_dir.parent().unwrap_or(&spec.task_dir);
    if under(tasks, &spec.state) && tasks != spec.state {
        mounts.add(tasks, Mount::Empty);
    }
    for needed in &spec.needs {
        if needed.is_dir() {
            mounts.add(needed, Mount::ReadOnly);
        }
    }
    mounts.add(&spec.task_dir, Mount::Writable);
    mounts.add(&spec.workdir, Mount::Writable);
    if spec.workdir == spec.root {
        // A task without a worktree writes its project, repository
        // included, but not what would run code of its choosing later in
        // the user's own git: the configuration and the hooks.
        for name in ["config", "hooks"] {
            let path = spec.root.join(".git").join(name);
            if path.exists() {
                mounts.add(&path, Mount::ReadOnly);
            }
        }
    }
    let mut env = vec![("TMPDIR".to_owned(), "/tmp".to_owned())];
    if let Some(branch) = &spec.branch {
        for (path, how) in git_mounts(spec, branch)? {
            mounts.add(&path, how);
        }
        // A commit must not start a garbage collection or maintenance,
        // which would write the shared packs and refs.
        env.extend(git_config(&[
            ("gc.auto", "0"),
            ("maintenance.auto", "false"),
        ]));
    }
    let mut args: Vec<String> = vec![spec.bwrap.display().to_string()];
    args.extend(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"].map(String::from));
    args.extend(mounts.args());
    args.extend(
        [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
        ]
        .map(String::from),
    );
    let mut forwards = Vec::new();
    match &spec.network {
        None | Some(NetworkPlan::Full) => {}
        Some(NetworkPlan::None) => args.push("--unshare-net".into()),
        Some(NetworkPlan::Allow(allowed)) => {
            args.push("--unshare-net".into());
            for (i, entry) in allowed.iter().enumerate() {
                let Some(address) = loopback_endpoint(entry) else {
                    continue;
                };
                let socket = spec.task_dir.join(NET_FOLDER).join(format!("{i}.sock"));
                if socket.as_os_str().len() > MAX_SOCKET_PATH {
                    return Err(SandboxError::SocketPath(socket.display().to_string()));
                }
                forwards.push(Forward { address, socket });
            }
        }
    }
    args.extend(["--chdir".into(), spec.workdir.display().to_string()]);
    args.extend([
        "--".into(),
        spec.helper.display().to_string(),
        "worker".into(),
        "sandboxed".into(),
    ]);
    for forward in &forwards {
        args.extend([
            "--forward".into(),
            format!("{}={}", forward.address, forward.socket.display()),
        ]);
    }
    args.push("--".into());
    args.extend(argv.iter().cloned());
    Ok(Wrapped {
        argv: args,
        env,
        forwards,
    })
}

/// Git configuration given through the environment, which every git the
/// worker runs reads and no file it can write overrides.
fn git_config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("GIT_CONFIG_COUNT".to_owned(), pairs.len().to_string())];
    for (i, (key, value)) in pairs.iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), (*key).to_owned()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), (*value).to_owned()));
    }
    env
}

/// What a commit in the worktree writes outside it: the worktree's own
/// admin folder (`.git/worktrees/NAME`: HEAD, index, its reflog), the
/// object store, and the folder of its branch's ref and that ref's log.
/// Git also takes `.git/packed-refs.lock` when a commit clears a pseudo
/// ref, so the common `.git` folder is an empty one of the sandbox's own
/// with each of its entries shown read-only (a lock made there is gone
/// with the sandbox; `config` and `hooks` stay as they are). The admin
/// folder is found from the worktree's `.git` file, which an earlier
/// attempt of the worker could have rewritten: it must name a folder
/// directly under the project's `.git/worktrees/`.
fn git_mounts(spec: &Spec, branch: &str) -> Result<Vec<(PathBuf, Mount)>, SandboxError> {
    let dot_git = spec.workdir.join(".git");
    let meta = std::fs::symlink_metadata(&dot_git)
        .map_err(|e| SandboxError::Git(format!("{}: {e}", dot_git.display())))?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(SandboxError::Git(format!(
            "{} is not a worktree's `.git` file",
            dot_git.display()
        )));
    }
    let text = std::fs::read_to_string(&dot_git)
        .map_err(|e| SandboxError::Git(format!("{}: {e}", dot_git.display())))?;
    let named = text
        .trim()
        .strip_prefix("gitdir:")
        .map(|p| spec.workdir.join(p.trim()))
        .ok_or_else(|| SandboxError::Git(format!("{} names no gitdir", dot_git.display())))?;
    let common = std::fs::canonicalize(spec.root.join(".git"))
        .map_err(|e| SandboxError::Git(format!("{}: {e}", spec.root.join(".git").display())))?;
    let admin = std::fs::canonicalize(&named)
        .map_err(|e| SandboxError::Git(format!("{}: {e}", named.display())))?;
    if admin.parent() != Some(common.join("worktrees").as_path()) || !admin.is_dir() {
        return Err(SandboxError::Git(format!(
            "{} is not under {}",
            admin.display(),
            common.join("worktrees").display()
        )));
    }
    let relative = Path::new(branch);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(SandboxError::Git(format!("the branch name `{branch}`")));
    }
    let mut mounts = vec![(common.clone(), Mount::Empty)];
    let entries = std::fs::read_dir(&common)
        .map_err(|e| SandboxError::Git(format!("{}: {e}", common.display())))?;
    for entry in entries.flatten() {
        mounts.push((entry.path(), Mount::ReadOnly));
    }
    mounts.push((admin, Mount::Writable));
    mounts.push((common.join("objects"), Mount::Writable));
    // The ref's folder: `refs/heads/dispatch` for `dispatch/ID`, so the
    // branches of other tasks are writable too, but not `main`.
    let parent = relative.parent().unwrap_or(Path::new(""));
    for base in ["refs/heads", "logs/refs/heads"] {
        let folder = common.join(base).join(parent);
        if folder.is_dir() {
            mounts.push((folder, Mount::Writable));
        }
    }
    Ok(mounts)
}

/// Whether bubblewrap can make a sandbox here, tried with the namespaces a
/// task uses: `Err` says why not.
pub fn probe() -> Result<PathBuf, SandboxError> {
    let bwrap = crate::agents::find_program(BWRAP, Path::new("/")).ok_or(SandboxError::Missing)?;
    let output = std::process::Command::new(&bwrap)
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--unshare-pid",
            "--unshare-net",
            "--die-with-parent",
            "--",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SandboxError::Unusable(e.to_string()))?;
    if output.status.success() {
        return Ok(bwrap);
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim();
    Err(SandboxError::Unusable(if said.is_empty() {
        format!("`bwrap` ended with {}", output.status)
    } else {
        said.chars().take(300).collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> Spec {
        Spec {
            bwrap: "/usr/bin/bwrap".into(),
            helper: "/opt/dispatch".into(),
            root: dir.join("proj"),
            state: dir.join("proj/.dispatch"),
            task_dir: dir.join("proj/.dispatch/tasks/a"),
            workdir: dir.join("proj"),
            ..Spec::default()
        }
    }

    fn mounts_of(argv: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < argv.len() {
            match argv[i].as_str() {
                "--ro-bind" | "--bind" => {
                    out.push(format!("{} {}", argv[i], argv[i + 2]));
                    i += 3;
                }
                "--tmpfs" => {
                    out.push(format!("--tmpfs {}", argv[i + 1]));
                    i += 2;
                }
                "--" => break,
                _ => i += 1,
            }
        }
        out
    }

    /// A task without a worktree writes its project, but not the state
    /// folder in it, sees no other task's folder, and writes its own.
    #[test]
    fn a_folder_task_writes_its_folder_but_not_the_state_in_it() {
        let dir = Path::new("/x");
        let wrapped = wrap(&spec(dir), &["agent".into()]).expect("wraps");
        assert_eq!(
            mounts_of(&wrapped.argv),
            [
                "--ro-bind /",
                "--tmpfs /tmp",
                "--bind /x/proj",
                "--ro-bind /x/proj/.dispatch",
                "--tmpfs /x/proj/.dispatch/tasks",
                "--bind /x/proj/.dispatch/tasks/a",
            ]
        );
        let tail: Vec<&str> = wrapped
            .argv
            .iter()
            .map(String::as_str)
            .rev()
            .take(5)
            .collect();
        assert_eq!(
            tail,
            ["agent", "--", "sandboxed", "worker", "/opt/dispatch"]
        );
    }

    #[test]
    fn no_network_is_a_namespace_of_its_own_and_allow_forwards_each_endpoint() {
        let dir = Path::new("/x");
        let mut s = spec(dir);
        s.network = Some(NetworkPlan::None);
        let argv = wrap(&s, &["agent".into()]).expect("wraps").argv;
        assert!(argv.contains(&"--unshare-net".to_owned()));
        s.network = Some(NetworkPlan::Allow(vec!["localhost:8080".into()]));
        let wrapped = wrap(&s, &["agent".into()]).expect("wraps");
        assert!(wrapped.argv.contains(&"--unshare-net".to_owned()));
        assert!(wrapped
            .argv
            .contains(&"127.0.0.1:8080=/x/proj/.dispatch/tasks/a/net/0.sock".to_owned()));
        s.network = Some(NetworkPlan::Full);
        let argv = wrap(&s, &["agent".into()]).expect("wraps").argv;
        assert!(!argv.contains(&"--unshare-net".to_owned()));
    }

    /// A task without a worktree writes its project, but not the git
    /// configuration or hooks, which would run its code in the user's git.
    #[test]
    fn a_folder_task_cannot_rewrite_the_repositorys_config_or_hooks() {
        let temp = tempfile::tempdir().expect("temp");
        let git = temp.path().join("proj/.git");
        std::fs::create_dir_all(git.join("hooks")).expect("dirs");
        std::fs::write(git.join("config"), "[core]\n").expect("config");
        let mounts = mounts_of(
            &wrap(&spec(temp.path()), &["agent".into()])
                .expect("wraps")
                .argv,
        );
        let at = |m: &str| mounts.iter().position(|x| x == m);
        let project = at(&format!("--bind {}", temp.path().join("proj").display()));
        for name in ["config", "hooks"] {
            let ro = at(&format!("--ro-bind {}", git.join(name).display()));
            assert!(ro.is_some() && ro > project, "{name}: {mounts:?}");
        }
    }

    /// The home folder is an empty one but for the CLI's login file.
    #[test]
    fn the_home_is_hidden_but_for_the_login_file() {
        let temp = tempfile::tempdir().expect("temp");
        let home = temp.path().join("home");
        let login = home.join(".claude/.credentials.json");
        std::fs::create_dir_all(home.join(".ssh")).expect("dirs");
        std::fs::create_dir_all(login.parent().expect("parent")).expect("dirs");
        std::fs::write(&login, "{}").expect("login");
        let mut s = spec(temp.path());
        s.home = Some(home.clone());
        s.login_file = Some(login.clone());
        let mounts = mounts_of(&wrap(&s, &["agent".into()]).expect("wraps").argv);
        let hidden = mounts
            .iter()
            .position(|m| *m == format!("--tmpfs {}", home.display()));
        let shown = mounts
            .iter()
            .position(|m| *m == format!("--ro-bind {}", login.display()));
        assert!(hidden.is_some() && shown > hidden, "{mounts:?}");
        assert!(!mounts.iter().any(|m| m.contains(".ssh")), "{mounts:?}");
    }

    /// A worktree's `.git` file rewritten to name another folder (an
    /// earlier attempt of a hostile worker) is refused, not bound writable.
    #[test]
    fn a_planted_gitdir_is_refused() {
        let temp = tempfile::tempdir().expect("temp");
        let root = temp.path().join("proj");
        let work = root.join(".dispatch/worktrees/a");
        std::fs::create_dir_all(root.join(".git/worktrees/a")).expect("dirs");
        std::fs::create_dir_all(&work).expect("dirs");
        let mut s = spec(temp.path());
        s.workdir = work.clone();
        s.branch = Some("dispatch/a".into());
        std::fs::write(
            work.join(".git"),
            format!("gitdir: {}\n", root.join(".git/worktrees/a").display()),
        )
        .expect("write");
        let wrapped = wrap(&s, &["agent".into()]).expect("a real worktree wraps");
        assert!(mounts_of(&wrapped.argv).contains(&format!(
            "--bind {}",
            root.join(".git/worktrees/a")
                .canonicalize()
                .expect("c")
                .display()
        )));
        std::fs::write(work.join(".git"), "gitdir: /\n").expect("write");
        assert!(matches!(
            wrap(&s, &["agent".into()]),
            Err(SandboxError::Git(_))
        ));
    }
}
