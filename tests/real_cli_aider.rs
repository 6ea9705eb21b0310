//! The real-CLI tier for aider: the built-in `aider` backend driving the
//! real aider CLI, offline, against a scripted OpenAI Chat Completions
//! endpoint on 127.0.0.1 (`tests/endpoint/openai_chat_endpoint.py`).
//!
//! aider has no tools: the endpoint answers with whole-file edit blocks that
//! rewrite the task's plan (every item checked) and write its output file,
//! which aider applies. It cannot ask questions or report findings through
//! `dispatch worker`, and `dispatch` reads no usage from its plain-text
//! output; see `docs/real-clis-openai-compatible.md`.
//!
//! When `aider` is not installed (`.agent-clis/aider-venv/bin/aider`, or
//! one on PATH), each test says so on stderr and passes.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::real_cli::{self, events_of, tail, Endpoint};
use common::Project;

/// How long one `dispatch run` may take before the test gives up on it.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// The message of the endpoint's `--mode error` answer.
const API_ERROR_TEXT: &str = "scripted endpoint refuses this request";

/// The task every test runs.
const TASK: &str = "aider-task";

/// The model as aider (through LiteLLM) names it: an OpenAI-compatible
/// model, whose base URL comes from `OPENAI_API_BASE`.
const MODEL_ID: &str = "openai/scripted-model";

/// The `aider` to use: `.agent-clis/aider-venv/bin/aider` under the
/// repository, or one on PATH. `None` (after saying why on stderr) when the
/// tier cannot run.
fn aider() -> Option<PathBuf> {
    real_cli::find_cli("aider", ".agent-clis/aider-venv/bin/aider")
}

impl Endpoint {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The chat completion requests (`POST /v1/chat/completions`).
    fn completions(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/v1/chat/completions")
            .collect()
    }
}

/// What `dispatch run` left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    events: Vec<Value>,
}

/// `dispatch run sweep.yaml --json` with the real `aider` first on PATH and
/// the endpoint as its OpenAI API; stopped (SIGTERM, then SIGKILL) if it
/// outlives [`RUN_DEADLINE`].
fn run_sweep(project: &Project, aider: &Path, endpoint: &Endpoint) -> Run {
    let aider_dir = aider.parent().expect("aider's folder");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(aider_dir.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .expect("PATH");
    let out_path = project.path().join("dispatch.stdout");
    let err_path = project.path().join("dispatch.stderr");

    let mut command = project.command(&["run", "sweep.yaml", "--json", "--grace", "2s"]);
    // Nothing of the machine's own aider or provider setup may leak in
    // (HOME, where aider looks for `.aider.conf.yml`, is the project).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let upper = name.to_ascii_uppercase();
        if upper.starts_with("AIDER_")
            || upper.starts_with("OPENAI_")
            || upper.starts_with("ANTHROPIC_")
            || upper.starts_with("LITELLM_")
            || upper.ends_with("_PROXY")
            || upper == "VIRTUAL_ENV"
        {
            command.env_remove(name.as_ref());
        }
    }
    command
        .env("PATH", path)
        .env("OPENAI_API_BASE", format!("{}/v1", endpoint.url()))
        .env("OPENAI_API_KEY", "test")
        // The endpoint answers in the whole-file format (aider's default
        // for a model it does not know, pinned here).
        .env("AIDER_EDIT_FORMAT", "whole")
        // No "unknown model" warning (it offers to open a web page).
        .env("AIDER_SHOW_MODEL_WARNINGS", "false")
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        // aider fetches a model price list at start-up; the endpoint, as
        // the proxy, refuses that (and any other call that would leave the
        // machine) at once.
        .env("HTTP_PROXY", endpoint.url())
        .env("HTTPS_PROXY", endpoint.url())
        .env("NO_PROXY", "127.0.0.1,localhost")
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
                project.task_file(TASK, "worker.log")
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

/// Everything a failed assertion should show.
fn context(project: &Project, run: &Run, endpoint: &Endpoint) -> String {
    format!(
        "exit: {:?}\nstderr:\n{}\nstdout:\n{}\nplan:\n{}\nworker.log (tail):\n{}\nrequests: {}",
        run.status.code(),
        run.stderr,
        run.stdout,
        project.task_file(TASK, "plan.md"),
        tail(&project.task_file(TASK, "worker.log"), 4000),
        endpoint.requests().len()
    )
}

/// `sweep.yaml` with one aider task (`Project::manifest` would build the
/// scripted test agent, which these tests do not use).
fn write_manifest(project: &Project) {
    let text = format!(
        "version: 1
name: real-cli-aider
models:
  scripted:
    backend: aider
    id: {MODEL_ID}
tasks:
  {TASK}:
    model: scripted
    timeout: 45s
    retries: 0
    prompt: Check off every item of the plan and write the output file.
    plan: [Check the plan, Write the output]
"
    );
    std::fs::write(project.path().join("sweep.yaml"), text).expect("write manifest");
}

#[test]
fn the_aider_backend_drives_real_aider_through_a_plan() {
    let Some(aider) = aider() else { return };
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "aider");
    write_manifest(&project);
    let run = run_sweep(&project, &aider, &endpoint);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(0), "{why}");

    // The built-in backend, with its flags, ran the CLI; the prompt went in
    // as a file.
    let record = project.task_json(TASK);
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    let argv: Vec<&str> = record["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(argv[..4], ["aider", "--model", MODEL_ID, "--yes-always"]);
    assert_eq!(argv[argv.len() - 2], "--message-file", "{record}");
    assert!(argv[argv.len() - 1].ends_with("prompt.md"), "{record}");
    let started = events_of(&run.events, "task-started");
    assert_eq!(started[0]["backend"], "aider", "{why}");

    // One model call, without tools, carrying the worker prompt.
    let completions = endpoint.completions();
    assert_eq!(completions.len(), 1, "{why}");
    let body = &completions[0]["body"];
    assert!(body["tools"].is_null(), "aider offers no tools: {body}");
    let messages = body["messages"].to_string();
    assert!(
        messages.contains(&format!("# Task: {TASK}")) && messages.contains("write the output file"),
        "the prompt is not in the request: {}",
        tail(&messages, 2000)
    );

    // aider applied the whole-file edits to files it was not given on its
    // command line (`--yes-always` allows that): the plan, every item
    // checked, and the output.
    let plan = project.task_file(TASK, "plan.md");
    assert_eq!(plan.matches("- [x] ").count(), 2, "{plan}");
    assert!(!plan.contains("- [ ] "), "{plan}");
    assert_eq!(
        project.task_file(TASK, "output.md"),
        "Real CLI worker output\n"
    );
    let history =
        std::fs::read_to_string(project.path().join(".aider.chat.history.md")).unwrap_or_default();
    assert!(
        history.contains("Allow edits to file that has not been added to the chat"),
        "{history}"
    );

    // aider prints its usage as text (`Tokens: 1.0k sent, 50 received.`);
    // dispatch reads it from there, rounded as aider rounds.
    let log = project.task_file(TASK, "worker.log");
    assert!(log.contains("Tokens: 1.0k sent, 50 received."), "{why}");
    assert_eq!(record["usage"]["turns"], 1, "{record}");
    assert_eq!(record["usage"]["input_tokens"], 1000, "{record}");
    assert_eq!(record["usage"]["output_tokens"], 50, "{record}");
}

#[test]
fn an_api_error_fails_the_task_with_aiders_own_message() {
    let Some(aider) = aider() else { return };
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "error");
    write_manifest(&project);
    let started = Instant::now();
    let run = run_sweep(&project, &aider, &endpoint);
    let why = context(&project, &run, &endpoint);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "aider does not retry an HTTP 400: {:?}",
        started.elapsed()
    );
    // aider itself exits 0 after the API error; dispatch reads the error
    // from its output and fails the task with it.
    let record = project.task_json(TASK);
    assert_eq!(record["exit"]["code"], 0, "{record}");
    assert_eq!(record["status"], "failed", "{record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("BadRequestError") && reason.contains(API_ERROR_TEXT),
        "the CLI's own error is the reason: {reason}"
    );
    assert_eq!(run.status.code(), Some(1), "{why}");
    assert!(
        !project.task_file(TASK, "plan.md").contains("- [x] "),
        "nothing was done"
    );
    // The API's message is only in the worker's log (aider wraps it at 80
    // columns).
    let log = project.task_file(TASK, "worker.log");
    let words = log.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("BadRequestError") && words.contains(API_ERROR_TEXT),
        "{why}"
    );
    assert_eq!(endpoint.completions().len(), 1, "{why}");
}
