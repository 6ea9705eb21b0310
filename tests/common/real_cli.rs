//! What the real-CLI tests (`tests/real_cli*.rs`) share: finding an
//! installed agent CLI (or saying why the tier cannot run), their `main`, the scripted
//! endpoint, running `dispatch run` with a CLI's own environment under a
//! deadline, and small helpers over the events and processes a run leaves.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{tier, Project};

/// How long one `dispatch run` may take before the test gives up on it:
/// longer than any task's timeout in these tests, which are generous for a
/// loaded machine; a run that passes never waits for it.
pub const RUN_DEADLINE: Duration = Duration::from_secs(240);

/// The task timeout of a test where the timeout is what is tested: long
/// enough for the CLI to start and run its tool on this machine as loaded
/// as it is now, short enough that the suite does not wait a minute for
/// each. It scales with the CLI's own start-up (`--version`), measured
/// here, times `factor` (how much longer the CLI takes to make its first
/// model call than to print its version): 15 s on a quiet machine, up to
/// 60 s on a loaded one.
///
/// The second of two `--version` calls is timed: the first reads the CLI's
/// files from disk, which the run that follows finds cached, and made a
/// quiet machine's timeout the 60 s ceiling for a CLI as large as opencode.
pub fn stop_timeout(program: &Path, factor: f64) -> String {
    let version = || {
        let started = Instant::now();
        let _ = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        started.elapsed()
    };
    version();
    let seconds = (8.0 + factor * version().as_secs_f64()).clamp(15.0, 60.0);
    format!("{}s", seconds.ceil())
}

/// An agent CLI a tier file drives: `program` on PATH, or `local` under
/// the prefix `scripts/install-agent-clis.sh` installs into
/// (`AGENT_CLIS_PREFIX`, else `.agent-clis` in the repository), which wins.
pub struct Cli {
    pub program: &'static str,
    pub local: &'static str,
}

impl Cli {
    /// Where the CLI is; `Err(why)` when the tier cannot run here (no CLI,
    /// or no python3 for the scripted endpoint).
    pub fn find(&self) -> Result<PathBuf, String> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let prefix = std::env::var_os("AGENT_CLIS_PREFIX")
            .filter(|p| !p.is_empty())
            .map_or_else(|| repo.join(".agent-clis"), PathBuf::from);
        let local = prefix.join(self.local);
        let found = dispatch::agents::find_program(&local.to_string_lossy(), repo)
            .or_else(|| dispatch::agents::find_program(self.program, repo));
        let Some(cli) = found else {
            return Err(format!(
                "{} is not installed: scripts/install-agent-clis.sh installs it",
                self.program
            ));
        };
        let python = Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !python.is_ok_and(|s| s.success()) {
            return Err("python3 (for the scripted endpoint) not found".to_owned());
        }
        Ok(cli)
    }

    /// The CLI, for a test body: [`main`] runs one only once [`Cli::find`]
    /// succeeded.
    pub fn path(&self) -> PathBuf {
        self.find().unwrap_or_else(|why| panic!("{why}"))
    }
}

/// The `main` of a real-CLI test file: `tests`, ignored where `cli` cannot
/// run, failed instead under `DISPATCH_REQUIRE_REAL_CLIS=1` (see
/// [`super::tier`]). `source` is the file's own text.
pub fn main(cli: &'static Cli, source: &str, tests: Vec<tier::Test>) -> ExitCode {
    tier::main(&tier::REAL_CLIS, || cli.find().map(drop), source, tests)
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

/// The answer the whole-task manifest's rule gives to "Which region?"; each
/// CLI's test looks for it in what the CLI sent back to the model.
pub const REGION_ANSWER: &str = "eu-central-7 (answered by the dispatch rule)";

/// The sweep every CLI's whole-task test runs, so that each CLI is held to
/// the same protocol: one task, `task` on `model`, whose worker ticks four
/// items with the CLI's `tool`, reports a high finding (which the
/// `high-findings` rule escalates: exit code 3), asks which region (a rule
/// answers with [`REGION_ANSWER`]) and writes its output. `hook` is the
/// rule's `run:` command, if any; `top` holds more top-level keys
/// (`defaults:`, `models:`), each line ending in a newline.
pub fn whole_task_manifest(
    name: &str,
    top: &str,
    hook: Option<&str>,
    task: &str,
    model: &str,
    tool: &str,
) -> String {
    let hook = hook
        .map(|run| format!("    run: {run}\n"))
        .unwrap_or_default();
    format!(
        "version: 1
name: {name}
questions:
  timeout: 30s
  on_unanswered: fail
  answers:
    - match: region
      answer: '{REGION_ANSWER}'
escalation:
  - name: high-findings
    when: {{ severity: high }}
    action: notify
{hook}    exit_code: 3
{top}tasks:
  {task}:
    model: {model}
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your {tool} tool.
    plan: [Mark the first item, Report a finding, Ask which region, Write the output]
"
    )
}

/// Assert what a whole-task worker (see [`whole_task_manifest`]) did
/// reached dispatch: every item ticked, the output written, the finding as
/// an event and in `record` (the task's `task.json`), its escalation, and
/// the question with the rule's answer. How the answer got back to the
/// model is each CLI's own and stays in its test.
pub fn assert_whole_task_reached_dispatch(
    project: &Project,
    run: &Run,
    task: &str,
    record: &Value,
    why: &str,
) {
    let plan = project.task_file(task, "plan.md");
    assert_eq!(plan.matches("- [x] ").count(), 4, "{plan}");
    assert!(!plan.contains("- [ ] "), "{plan}");
    assert_eq!(
        project.task_file(task, "output.md"),
        "Real CLI worker output\n"
    );

    let findings = events_of(&run.events, "finding");
    assert_eq!(findings.len(), 1, "{why}");
    assert_eq!(findings[0]["severity"], "high");
    assert_eq!(findings[0]["title"], "Real CLI finding");
    assert_eq!(findings[0]["location"], "src/lib.rs:1");
    assert_eq!(record["findings"][0]["title"], "Real CLI finding");
    let escalations = events_of(&run.events, "escalation");
    assert_eq!(escalations.len(), 1, "{why}");
    assert_eq!(escalations[0]["rule"], "high-findings");

    let questions = events_of(&run.events, "question");
    assert_eq!(questions.len(), 1, "{why}");
    assert_eq!(questions[0]["text"], "Which region?");
    let answered = events_of(&run.events, "answered");
    assert_eq!(answered[0]["answer"], REGION_ANSWER);
    assert!(answered[0]["by"]
        .as_str()
        .unwrap_or_default()
        .contains("manifest rule"));
}

/// Assert the run's `report.json` and `report.md` give `task` the `usage`
/// its `task.json` has, and the whole-task finding.
pub fn assert_reports_agree(project: &Project, run: &Run, task: &str, usage: &Value) {
    let run_id = run.events[0]["run_id"].as_str().expect("run id");
    let run_dir = project.path().join(".dispatch/runs").join(run_id);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("report.json")).expect("report.json"),
    )
    .expect("report json");
    let entry = report["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["id"] == task))
        .expect("task in report");
    assert_eq!(entry["usage"]["input_tokens"], usage["input_tokens"]);
    assert_eq!(entry["usage"]["turns"], usage["turns"]);
    assert_eq!(entry["findings"][0]["title"], "Real CLI finding");
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    let turns = usage["turns"].as_u64().unwrap_or(0);
    let line = format!(
        "Usage: {turns} turn{}, {} input and {} output tokens",
        if turns == 1 { "" } else { "s" },
        usage["input_tokens"],
        usage["output_tokens"]
    );
    assert!(markdown.contains(&line), "{line} not in\n{markdown}");
    assert!(markdown.contains("Real CLI finding"), "{markdown}");
}

/// Assert the worktree task `task` left `edited.txt` (holding `content`)
/// committed as `subject` on its branch, `dispatch/TASK`, and nowhere else:
/// the main checkout has no such file and `main` no new commit. The project
/// is a repository made by [`super::init_repo`].
pub fn assert_edited_only_in_its_worktree(
    project: &Project,
    run: &Run,
    task: &str,
    (content, subject): (&str, &str),
    why: &str,
) {
    let git = |args: &[&str]| super::git(project.path(), args);
    assert_eq!(run.status.code(), Some(0), "{why}");
    assert!(
        !project.path().join("edited.txt").exists(),
        "the main checkout is untouched\n{why}"
    );
    assert_eq!(
        git(&["show", &format!("dispatch/{task}:edited.txt")]),
        content
    );
    let branch = &project.task_json(task)["branch"];
    assert_eq!(branch["ahead"], 1, "{branch}\n{why}");
    assert_eq!(branch["commits"][0]["subject"], subject);
    let status = git(&["status", "--porcelain"]);
    assert!(
        !status.contains("edited"),
        "not in the main checkout: {status}"
    );
    assert_eq!(git(&["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(
        git(&["rev-list", "--count", "main"]),
        "1",
        "main has no new commit"
    );
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

/// The worker's pid in its task record; 0 when it has none.
pub fn worker_pid(record: &Value) -> i32 {
    record["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0)
}

/// Waits up to 30 s for every one of `pids` to end (dispatch stops them
/// at once; the wait is for a loaded machine) and says whether they did.
pub fn all_end(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    !pids.iter().any(|&p| alive(p))
}

/// A stopped task's CLI and the job its shell tool started, which wrote
/// its pid to `grandchild.pid` in the task folder (0 if it never did).
pub struct CliAndJob {
    pub worker: i32,
    pub job: i32,
    /// Whether each was still alive after the wait: (worker, job).
    pub left: (bool, bool),
}

/// Waits for `task`'s CLI and its shell job to end, then kills whatever
/// is left, so a failing test leaves nothing behind: the job's process
/// group too (read before the wait, while the job surely lives), since
/// several CLIs start their shell tool detached, in a group of its own.
pub fn stop_cli_and_job(project: &Project, task: &str, record: &Value) -> CliAndJob {
    let worker = worker_pid(record);
    let job = project
        .task_file(task, "grandchild.pid")
        .trim()
        .parse()
        .unwrap_or(0);
    // SAFETY: getpgid only reads; a pid that is gone gives ESRCH (-1).
    let group = if alive(job) {
        unsafe { libc::getpgid(job) }
    } else {
        -1
    };
    all_end(&[worker, job]);
    let left = (alive(worker), alive(job));
    // SAFETY: getpgrp only reads this process's own group.
    let own_group = unsafe { libc::getpgrp() };
    if group > 1 && group != own_group {
        // SAFETY: the group the job's shell made, never the test's own.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
    }
    for pid in [job, worker] {
        if alive(pid) {
            // SAFETY: a positive pid that this test's run started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    CliAndJob { worker, job, left }
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
