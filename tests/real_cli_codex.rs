//! The real-CLI tier for Codex: the built-in `codex` backend driving the
//! real OpenAI Codex CLI, offline, against a scripted OpenAI Responses
//! endpoint on 127.0.0.1 (`tests/endpoint/openai_responses_endpoint.py`).
//! The endpoint plays a worker that uses Codex's shell tool to tick the
//! plan, report a finding, ask a question through `dispatch worker ask` and
//! finish.
//!
//! Codex ignores `OPENAI_BASE_URL`; the endpoint is given to it as a model
//! provider in `config.toml` in a `CODEX_HOME` of the test's, so the
//! built-in backend runs unchanged. A private config folder (`cli_config:
//! private`, dispatch's default) carries only the user's login over, not
//! their providers, so these sweeps say `cli_config: user`, as a team
//! whose Codex needs a provider of its own would.
//!
//! When `codex` cannot run here (not installed, or no python3 for the
//! endpoint), each test shows as ignored, and fails instead under
//! `DISPATCH_REQUIRE_REAL_CLIS=1`: this is a `harness = false` target whose
//! `main` lists its tests (see `tests/common/tier.rs`). See `docs/real-clis-codex.md`.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::real_cli::{
    self, alive, assert_all_ticked, assert_edited_only_in_its_worktree, assert_reports_agree,
    assert_whole_task_reached_dispatch, events_of, tail, u64_of, whole_task_manifest,
    write_manifest, Cli, Endpoint, Run, REGION_ANSWER,
};
use common::Project;

/// The message of the endpoint's `--mode error` answer.
const API_ERROR_TEXT: &str = "scripted endpoint refuses this request";

/// The error message of the endpoint's `--mode failed` stream.
const FAILED_TEXT: &str = "scripted endpoint failed this response";

/// Per main-loop response, what the endpoint reports (see the endpoint).
const MAIN_INPUT_TOKENS: u64 = 1000;
const MAIN_CACHED_TOKENS: u64 = 200;
const MAIN_OUTPUT_TOKENS: u64 = 50;

/// The `codex` this file drives: see [`Cli`].
const CODEX: Cli = Cli {
    program: "codex",
    local: "bin/codex",
};

fn codex() -> PathBuf {
    CODEX.path()
}

impl Endpoint {
    /// The base URL Codex's provider entry is given (it appends `/responses`).
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The `POST /v1/responses` requests.
    fn responses_calls(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/v1/responses")
            .collect()
    }

    /// The text of every tool output Codex sent back to the model (the last
    /// request holds the whole conversation, earlier ones a prefix of it).
    fn tool_outputs(&self) -> Vec<String> {
        let mut texts: Vec<String> = Vec::new();
        for request in self.responses_calls() {
            let Some(items) = request["body"]["input"].as_array() else {
                continue;
            };
            for item in items.iter().filter(|i| i["type"] == "function_call_output") {
                let text = match &item["output"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if !texts.contains(&text) {
                    texts.push(text);
                }
            }
        }
        texts
    }
}

/// A private `CODEX_HOME` whose `config.toml` makes the endpoint the model
/// provider: Codex ignores `OPENAI_BASE_URL`, and a provider entry is the
/// way to point it elsewhere. No request retries (an HTTP error fails the
/// turn at once), `stream_retries` retries of a failed stream, no
/// websockets (the endpoint speaks HTTP and SSE only), no update check and
/// no analytics.
///
/// The folder is under cargo's target folder, not the project's temporary
/// one: Codex (0.16x) will not make its sandbox helper under a temporary
/// folder, and without it every shell command fails with `bwrap: execvp
/// codex-linux-sandbox`. Its name is the project's, so tests in parallel
/// get one each.
fn codex_home(project: &Project, endpoint: &Endpoint, stream_retries: u32, extra: &str) -> PathBuf {
    let home = codex_home_dir(project);
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("CODEX_HOME");
    let mut config = format!(
        r#"model_provider = "scripted"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.scripted]
name = "scripted endpoint"
base_url = "{}"
wire_api = "responses"
env_key = "OPENAI_API_KEY"
supports_websockets = false
request_max_retries = 0
stream_max_retries = {}
stream_idle_timeout_ms = 20000
"#,
        endpoint.url(),
        stream_retries
    );
    config.push_str(extra);
    std::fs::write(home.join("config.toml"), config).expect("config.toml");
    home
}

/// Where [`codex_home`] puts the CODEX_HOME of `project`'s run.
fn codex_home_dir(project: &Project) -> PathBuf {
    let name = project
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("codex-home{name}"))
}

/// `dispatch run sweep.yaml --json` with the real `codex` first on PATH,
/// the endpoint as its model provider and a private `CODEX_HOME`; stopped
/// (SIGTERM, then SIGKILL) if it outlives [`real_cli::RUN_DEADLINE`].
fn run_sweep(project: &Project, codex: &Path, endpoint: &Endpoint, stream_retries: u32) -> Run {
    run_sweep_with(project, codex, endpoint, stream_retries, "")
}

/// [`run_sweep`] with `extra` appended to Codex's `config.toml`.
fn run_sweep_with(
    project: &Project,
    codex: &Path,
    endpoint: &Endpoint,
    stream_retries: u32,
    extra: &str,
) -> Run {
    let home = codex_home(project, endpoint, stream_retries, extra);
    // Nothing of the machine's own OpenAI or Codex setup may leak in.
    let scrub = |name: &str| {
        name.starts_with("OPENAI_")
            || name.starts_with("CODEX_")
            || name.starts_with("AZURE_OPENAI")
            || name.ends_with("_PROXY")
    };
    real_cli::run_sweep(
        project,
        codex,
        "codex-task",
        scrub,
        &[
            ("CODEX_HOME", home.into()),
            ("OPENAI_API_KEY", "test".into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ],
    )
}

/// Everything a failed assertion should show.
fn context(project: &Project, run: &Run, endpoint: &Endpoint) -> String {
    real_cli::context(project, run, endpoint, "codex-task")
}

/// Whether a request offers Codex's shell tool (a main-loop call).
fn offers_shell(request: &Value) -> bool {
    request["body"]["tools"].as_array().is_some_and(|tools| {
        tools.iter().any(|t| {
            matches!(
                t["name"].as_str(),
                Some("exec_command" | "shell" | "shell_command")
            )
        })
    })
}

fn the_codex_backend_drives_real_codex_through_a_whole_task() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "worker");
    write_manifest(
        &project,
        &whole_task_manifest(
            "real-cli-codex",
            "defaults:\n  cli_config: user\n",
            None,
            "codex-task",
            "codex",
            "shell",
        ),
    );
    // In a git repository, as users run it.
    common::init_repo(project.path());
    let run = run_sweep(&project, &codex, &endpoint, 0);
    let why = context(&project, &run, &endpoint);
    // Every task completed; the high finding escalated (exit code 3).
    assert_eq!(run.status.code(), Some(3), "{why}");

    // The built-in backend, with its flags, ran the CLI.
    let record = project.task_json("codex-task");
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    let argv = record.to_string();
    for flag in [
        "workspace-write",
        "--skip-git-repo-check",
        "--json",
        "--add-dir",
    ] {
        assert!(argv.contains(flag), "{flag} not in {argv}");
    }
    let started = events_of(&run.events, "task-started");
    assert_eq!(started[0]["backend"], "codex", "{why}");

    // The worker prompt went in on stdin and reached the model, with the
    // built-in model's id.
    let calls = endpoint.responses_calls();
    let first = calls
        .first()
        .map(|r| r["body"]["input"].to_string())
        .unwrap_or_default();
    assert!(
        first.contains("# Task: codex-task") && first.contains("with your shell tool"),
        "the prompt is not in the first request: {}",
        tail(&first, 2000)
    );
    assert_eq!(calls[0]["body"]["model"], "gpt-5-codex");
    assert_eq!(calls[0]["body"]["stream"], true);

    // Every item ticked by Codex's shell tool, the output written, the
    // finding escalated, the question answered by the rule; the answer went
    // back to the model as the shell tool's output.
    assert_whole_task_reached_dispatch(&project, &run, "codex-task", &record, &why);
    let outputs = endpoint.tool_outputs();
    assert!(
        outputs.iter().any(|o| o.contains(REGION_ANSWER)),
        "the answer never reached the model: {outputs:?}"
    );
    // The commands ran in Codex's workspace-write sandbox, which turns the
    // network off and says so (the last step echoes it).
    assert!(
        outputs
            .iter()
            .any(|o| o.contains("CODEX_SANDBOX_NETWORK_DISABLED=1")),
        "{outputs:?}"
    );

    // Usage from Codex's `turn.completed` equals what the endpoint reported:
    // per main-loop call (one offering the shell tool) 1000 input tokens (200
    // of them cached) and 50 output tokens; the whole `codex exec` is one
    // Codex turn. Codex reports no cost.
    let main_calls = calls.iter().filter(|r| offers_shell(r)).count() as u64;
    assert_eq!(main_calls, 5, "one model call per step");
    assert_eq!(calls.len() as u64, main_calls, "no side calls");
    let usage = &record["usage"];
    assert_eq!(u64_of(&usage["turns"]), 1, "{usage}");
    assert_eq!(
        u64_of(&usage["input_tokens"]),
        main_calls * MAIN_INPUT_TOKENS,
        "{usage}"
    );
    assert_eq!(
        u64_of(&usage["cached_input_tokens"]),
        main_calls * MAIN_CACHED_TOKENS,
        "{usage}"
    );
    assert_eq!(
        u64_of(&usage["output_tokens"]),
        main_calls * MAIN_OUTPUT_TOKENS,
        "{usage}"
    );
    assert!(usage["cost_usd"].is_null(), "{usage}");
    assert_eq!(record["outcome"]["is_error"], false, "{record}");

    // The reports say the same.
    assert_reports_agree(&project, &run, "codex-task", usage);

    // The private CODEX_HOME was used (sessions are written there), and
    // nothing was written to HOME's `.codex`.
    assert!(
        codex_home_dir(&project).join("sessions").is_dir(),
        "Codex wrote no session to CODEX_HOME"
    );
    assert!(!project.path().join(".codex").exists());
}

/// A sweep whose one task gets only API errors from the endpoint (`mode`):
/// the task must end `failed` with the CLI's own error text (`expected`),
/// not `complete`, and the CLI gives up at once. Returns the responses
/// calls it made.
fn api_error_fails_the_task(mode: &str, stream_retries: u32, expected: &[&str]) -> Vec<Value> {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), mode);
    write_manifest(
        &project,
        "version: 1
defaults:
  cli_config: user
name: real-cli-codex-error
tasks:
  codex-task:
    model: codex
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item, Write the output]
",
    );
    let run = run_sweep(&project, &codex, &endpoint, stream_retries);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("codex-task");
    assert_eq!(record["status"], "failed", "{record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    for text in expected {
        assert!(
            reason.contains(text),
            "the CLI's error ({text}) is not in the reason: {reason}\n{why}"
        );
    }
    assert!(!reason.contains("Reconnecting"), "{reason}");
    assert_eq!(record["outcome"]["is_error"], true, "{record}");
    assert!(
        !project
            .task_file("codex-task", "plan.md")
            .contains("- [x] "),
        "nothing was done"
    );
    let calls = endpoint.responses_calls();
    assert!(!calls.is_empty(), "the CLI never called the endpoint");
    calls
}

fn an_invalid_request_error_fails_the_task_with_the_clis_own_message() {
    let calls = api_error_fails_the_task("error", 0, &[API_ERROR_TEXT, "invalid_request_error"]);
    // An HTTP 400 is not retried: one call.
    assert_eq!(calls.len(), 1, "request_max_retries = 0: one call");
}

fn a_failed_stream_is_retried_then_fails_the_task() {
    // One stream retry: Codex says "Reconnecting... 1/1" (an `error` event
    // that must not decide the outcome), calls again, then fails the turn.
    let calls = api_error_fails_the_task(
        "failed",
        1,
        &["stream disconnected before completion", FAILED_TEXT],
    );
    assert_eq!(calls.len(), 2, "stream_max_retries = 1: two calls");
}

/// `ps` lines (pid, parent, group, session, command) of the live `pids`.
fn ps(pids: &[i32]) -> String {
    let list: Vec<String> = pids
        .iter()
        .filter(|p| alive(**p))
        .map(ToString::to_string)
        .collect();
    if list.is_empty() {
        return String::new();
    }
    Command::new("ps")
        .args(["-o", "pid,ppid,pgid,sid,args", "-p", &list.join(",")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The pids (as seen outside any pid namespace) of the processes whose
/// command line holds every one of `needles`.
fn processes_with(needles: &[&str]) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                let text = String::from_utf8_lossy(&raw);
                needles.iter().all(|n| text.contains(n))
            })
        })
        .collect()
}

/// The endpoint's hang job: python3 sleeps whose arguments hold `marker`
/// (the task folder).
fn hang_jobs(marker: &str) -> Vec<i32> {
    processes_with(&["time.sleep(300)", marker])
}

fn a_timeout_kills_the_real_cli_and_everything_it_started() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "hang");
    let timeout = common::real_cli::stop_timeout(&codex, 4.0);
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-codex-timeout
tasks:
  codex-task:
    model: codex
    timeout: {timeout}
    retries: 0
    prompt: Run the long job with your shell tool.
    plan: [Run the long job]
"
        ),
    );
    // Codex runs the shell tool in its own pid namespace, so the pid the
    // job writes is not one this test can signal: watch /proc, while the
    // run lasts, for the job's sleeps (they carry the task folder) and for
    // every process naming the state folder (the Node launcher, the native
    // `codex` it starts, its sandbox helper: `--add-dir <root>/.dispatch`).
    let state = project.path().join(".dispatch").display().to_string();
    let marker = format!("{state}/tasks/codex-task");
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let running = running.clone();
        let state = state.clone();
        let marker = marker.clone();
        std::thread::spawn(move || {
            let (mut seen, mut sleeps): (Vec<i32>, Vec<i32>) = (Vec::new(), Vec::new());
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                for pid in processes_with(&[&state]) {
                    if !seen.contains(&pid) {
                        seen.push(pid);
                    }
                }
                for pid in hang_jobs(&marker) {
                    if !sleeps.contains(&pid) {
                        sleeps.push(pid);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (seen, sleeps)
        })
    };
    let run = run_sweep(&project, &codex, &endpoint, 0);
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let (mut started, sleeps) = watcher.join().expect("the /proc watcher");
    let why = context(&project, &run, &endpoint);
    let record = project.task_json("codex-task");
    let worker = real_cli::worker_pid(&record);
    for pid in processes_with(&[&state]).into_iter().chain([worker]) {
        if !started.contains(&pid) {
            started.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_dead = || started.iter().all(|p| !alive(*p)) && processes_with(&[&state]).is_empty();
    while !all_dead() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors = ps(&started);
    let left = all_dead();
    // Never leave anything behind, whatever the test finds.
    for pid in processes_with(&[&state]).into_iter().chain([worker]) {
        if alive(pid) {
            // SAFETY: a positive pid that this test's run started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    assert_eq!(run.status.code(), Some(1), "{why}");
    assert_eq!(record["status"], "timed-out", "{record}\n{why}");
    let pid_text = project.task_file("codex-task", "grandchild.pid");
    assert!(
        pid_text.trim().parse::<i32>().is_ok(),
        "the shell tool never started its job: {pid_text:?}\n{why}"
    );
    assert_eq!(
        sleeps.len(),
        2,
        "the watcher saw both sleeps of the job: {sleeps:?}\n{why}"
    );
    assert!(
        started.contains(&worker) && sleeps.iter().all(|p| started.contains(p)),
        "{started:?}"
    );
    assert!(
        left,
        "codex ({worker}) or what it started ({started:?}) still alive 5 s after the timeout\n{survivors}\n{why}"
    );
}

/// Every response completes with no output and no tokens: Codex ends its
/// turn with `turn.completed` as if it had worked. The task fails on
/// Codex's rule (`agents/codex.rs`), not `incomplete` on its plan.
fn an_empty_completion_is_no_success() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "empty");
    write_manifest(
        &project,
        "version: 1
defaults:
  cli_config: user
name: real-cli-codex-empty
tasks:
  codex-task:
    model: codex
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item]
",
    );
    let run = run_sweep(&project, &codex, &endpoint, 0);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("codex-task");
    assert_eq!(
        record["outcome"]["is_error"], false,
        "Codex's turn completed: {record}"
    );
    assert_eq!(record["status"], "failed", "{record}\n{why}");
    assert_eq!(
        record["reason"],
        "Codex claimed success, but the prompt never reached the model (no tokens in or out)",
        "{why}"
    );
}

/// A shell job that never returns leaves Codex silent: with an
/// `idle_timeout` far below its `timeout`, the task ends `stalled`, its
/// last sign of life recorded, and nothing naming its state folder (Codex,
/// its sandbox helper, the job) is left.
fn a_silent_codex_is_stopped_as_stalled() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "hang");
    write_manifest(
        &project,
        "version: 1
defaults:
  cli_config: user
name: real-cli-codex-stall
tasks:
  codex-task:
    model: codex
    timeout: 3m
    idle_timeout: 10s
    retries: 0
    prompt: Run the long job with your shell tool.
    plan: [Run the long job]
",
    );
    let run = run_sweep(&project, &codex, &endpoint, 0);
    let why = context(&project, &run, &endpoint);
    let state = project.path().join(".dispatch").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_with(&[&state]).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = processes_with(&[&state]);
    for &pid in &left {
        // SAFETY: a positive pid that names this test's state folder.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("codex-task");
    assert_eq!(record["status"], "stalled", "{record}\n{why}");
    assert!(record["last_activity"]["what"].is_string(), "{record}");
    assert!(
        left.is_empty(),
        "left after the stall: {}\n{why}",
        ps(&left)
    );
}

fn a_worktree_task_edits_only_its_worktree() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "worktree");
    write_manifest(
        &project,
        "version: 1
defaults:
  cli_config: user
name: real-cli-codex-worktree
tasks:
  codex-task:
    model: codex
    timeout: 150s
    retries: 0
    prompt: Make the edit with your shell tool.
    plan: [Edit a file, Write the output]
    worktree: true
",
    );
    common::init_repo(project.path());
    // A worktree's git data lives in the main repository's `.git`: objects
    // and the branch ref in `.git`, its index and HEAD in the `gitdir:`
    // its `.git` file points to (`.git/worktrees/<name>`). Codex's
    // workspace-write sandbox mounts that gitdir read-only (it protects the
    // `.git` of every writable root, pointer files included), so `git
    // commit` would fail with "Read-only file system". The built-in
    // backend names the gitdir and the common folder's objects, refs and
    // logs with `--add-dir` for a worktree task; Codex's configuration
    // (the test's CODEX_HOME) grants nothing, so the commit proves that.
    let run = run_sweep(&project, &codex, &endpoint, 0);
    let why = format!(
        "{}\ntool outputs: {:?}",
        context(&project, &run, &endpoint),
        endpoint.tool_outputs()
    );
    assert_edited_only_in_its_worktree(
        &project,
        &run,
        "codex-task",
        ("made-by-codex", "Edit from Codex"),
        &why,
    );
    // The record shows the grant.
    let argv = project.task_json("codex-task")["argv"].to_string();
    let git_dir = std::fs::canonicalize(project.path().join(".git")).expect(".git");
    for granted in ["worktrees/codex-task", "objects", "refs"] {
        let dir = git_dir.join(granted).display().to_string();
        assert!(argv.contains(&dir), "--add-dir {dir} not in {argv}");
    }
}

fn a_slow_stream_still_completes_the_task() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "slow");
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-codex-slow
questions:
  answers:
    - match: region
      answer: '{REGION_ANSWER}'
tasks:
  codex-task:
    model: codex
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item, Report a finding, Ask which region, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &codex, &endpoint, 0);
    let why = context(&project, &run, &endpoint);
    let record = assert_all_ticked(&project, &run, "codex-task", 4, &why);
    // As in the whole-task test: five main-loop calls, one Codex turn.
    let main_calls = endpoint
        .responses_calls()
        .iter()
        .filter(|r| offers_shell(r))
        .count() as u64;
    assert_eq!(main_calls, 5, "one model call per step");
    assert_eq!(u64_of(&record["usage"]["turns"]), 1, "{record}");
    assert_eq!(
        u64_of(&record["usage"]["input_tokens"]),
        main_calls * MAIN_INPUT_TOKENS,
        "{record}"
    );
}

fn a_malformed_stream_fails_the_task_with_the_clis_error() {
    let codex = codex();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_responses_endpoint.py", project.path(), "malformed");
    write_manifest(
        &project,
        "version: 1
defaults:
  cli_config: user
name: real-cli-codex-malformed
tasks:
  codex-task:
    model: codex
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item, Write the output]
",
    );
    let run = run_sweep(&project, &codex, &endpoint, 0);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("codex-task");
    assert_eq!(record["status"], "failed", "not complete: {record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    // Codex skips SSE data it cannot parse; the stream then ends without
    // `response.completed`, which fails the turn.
    assert!(
        reason.contains("stream closed before response.completed"),
        "the CLI's error is not in the reason: {reason}\n{why}"
    );
    assert_eq!(record["outcome"]["is_error"], true, "{record}");
    assert!(
        !project
            .task_file("codex-task", "plan.md")
            .contains("- [x] "),
        "nothing was done"
    );
    assert_eq!(
        endpoint.responses_calls().len(),
        1,
        "stream_max_retries = 0: one call\n{why}"
    );
}

fn main() -> ExitCode {
    real_cli::main(
        &CODEX,
        include_str!("real_cli_codex.rs"),
        tier_tests![
            the_codex_backend_drives_real_codex_through_a_whole_task,
            an_invalid_request_error_fails_the_task_with_the_clis_own_message,
            a_failed_stream_is_retried_then_fails_the_task,
            a_timeout_kills_the_real_cli_and_everything_it_started,
            a_silent_codex_is_stopped_as_stalled,
            an_empty_completion_is_no_success,
            a_worktree_task_edits_only_its_worktree,
            a_slow_stream_still_completes_the_task,
            a_malformed_stream_fails_the_task_with_the_clis_error,
        ],
    )
}
