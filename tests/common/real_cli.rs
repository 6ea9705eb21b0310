//! What the real-CLI tests (`tests/real_cli*.rs`) share: finding an
//! installed agent CLI (or saying why the tier skips), the scripted
//! endpoint, running `dispatch run` with a CLI's own environment under a
//! deadline, and small helpers over the events and processes a run leaves.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Project;

/// How long one `dispatch run` may take before the test gives up on it.
pub const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// The CLI to test: `local` under the repository (where
/// `scripts/install-agent-clis.sh` puts it), else `program` on PATH. `None`,
/// after saying why on stderr, when the tier cannot run here (no CLI, or no
/// python3 for the scripted endpoint).
pub fn find_cli(program: &str, local: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = dispatch::workers::find_program(&format!("./{local}"), repo)
        .or_else(|| dispatch::workers::find_program(program, repo));
    let Some(cli) = found else {
        eprintln!(
            "real-cli tier skipped: {program} not installed (scripts/install-agent-clis.sh installs it)"
        );
        return None;
    };
    let python = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !python.is_ok_and(|s| s.success()) {
        eprintln!("real-cli tier skipped: python3 (for the scripted endpoint) not found");
        return None;
    }
    Some(cli)
}

/// What `dispatch run` left behind.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
}

/// `dispatch run sweep.yaml --json --grace 2s` in `project`, with `cli`'s
/// folder first on PATH, every inherited variable whose upper-cased name
/// `scrub` picks removed (so nothing of the machine's own setup for the CLI
/// leaks in), and `env` set; its output goes to `dispatch.stdout` and
/// `dispatch.stderr` in the project. Stopped (SIGTERM, then SIGKILL) if it
/// outlives [`RUN_DEADLINE`]; the panic then shows `task`'s worker log.
pub fn run_sweep(
    project: &Project,
    cli: &Path,
    task: &str,
    scrub: impl Fn(&str) -> bool,
    env: &[(&str, OsString)],
) -> Run {
    let cli_dir = cli.parent().expect("the CLI's folder");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(cli_dir.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .expect("PATH");
    let out_path = project.path().join("dispatch.stdout");
    let err_path = project.path().join("dispatch.stderr");

    let mut command = project.command(&["run", "sweep.yaml", "--json", "--grace", "2s"]);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if scrub(&name.to_ascii_uppercase()) {
            command.env_remove(name.as_ref());
        }
    }
    command.env("PATH", path);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"));
    let mut child = command.spawn().expect("dispatch starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for dispatch") {
            break status;
        }
        if started.elapsed() > RUN_DEADLINE {
            // SIGTERM lets dispatch stop its workers; then make sure.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dispatch run took longer than {RUN_DEADLINE:?}; stderr:\n{}\nworker log:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default(),
                project.task_file(task, "worker.log")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Run {
        status,
        stdout,
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        events,
    }
}

/// Everything a failed assertion about `task` should show.
pub fn context(project: &Project, run: &Run, endpoint: &Endpoint, task: &str) -> String {
    format!(
        "exit: {:?}\nstderr:\n{}\nstdout:\n{}\nplan:\n{}\nworker.log (tail):\n{}\nrequests: {}",
        run.status.code(),
        run.stderr,
        run.stdout,
        project.task_file(task, "plan.md"),
        tail(&project.task_file(task, "worker.log"), 4000),
        endpoint.requests().len()
    )
}

/// Assert that the sweep exited 0 with `task` complete and all `items` of
/// its plan ticked; the task's record, for further checks. `why` is the
/// [`context`] a failure shows.
pub fn assert_all_ticked(
    project: &Project,
    run: &Run,
    task: &str,
    items: usize,
    why: &str,
) -> Value {
    assert_eq!(run.status.code(), Some(0), "{why}");
    let record = project.task_json(task);
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    let plan = project.task_file(task, "plan.md");
    assert_eq!(plan.matches("- [x] ").count(), items, "{plan}");
    assert!(!plan.contains("- [ ] "), "{plan}");
    record
}

/// `sweep.yaml`, as given (`Project::manifest` would build the scripted
/// test agent, which these tests do not use).
pub fn write_manifest(project: &Project, text: &str) {
    std::fs::write(project.path().join("sweep.yaml"), text).expect("write manifest");
}

/// The events of one kind from `dispatch run --json`.
pub fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// At most the last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Whether a process is alive (signal 0 only checks).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 sends nothing; it only asks whether `pid` exists.
    pid > 1 && unsafe { libc::kill(pid, 0) } == 0
}

pub fn u64_of(value: &Value) -> u64 {
    value.as_u64().unwrap_or_default()
}

/// A scripted model endpoint (`tests/endpoint/SCRIPT`) on 127.0.0.1,
/// logging every request to a file; killed when dropped, also when a test
/// panics.
pub struct Endpoint {
    child: std::process::Child,
    pub port: u16,
    log: PathBuf,
}

impl Endpoint {
    /// Start `tests/endpoint/<script>` in `mode`, logging to
    /// `dir/requests.jsonl`; it prints its port as its first line.
    pub fn start(script: &str, dir: &Path, mode: &str) -> Endpoint {
        use std::io::{BufRead, BufReader};
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/endpoint")
            .join(script);
        let log = dir.join("requests.jsonl");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&log)
            .args(["--mode", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts the endpoint");
        let stdout = child.stdout.take().expect("endpoint stdout");
        let mut first = String::new();
        let read = BufReader::new(stdout).read_line(&mut first);
        let port = match (read, first.trim().parse::<u16>()) {
            (Ok(_), Ok(port)) => port,
            (read, _) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the endpoint printed no port ({read:?}, {first:?})");
            }
        };
        Endpoint { child, port, log }
    }

    /// The logged requests, one JSON value each.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
