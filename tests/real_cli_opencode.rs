//! The real-CLI tier for opencode: the built-in `opencode` backend driving
//! the real opencode CLI, offline, against a scripted OpenAI Chat
//! Completions endpoint on 127.0.0.1 (`tests/endpoint/openai_chat_endpoint.py`).
//! The endpoint plays a worker that uses opencode's `bash` tool to tick the
//! plan, report a finding, ask a question through `dispatch worker ask` and
//! finish.
//!
//! When `opencode` cannot run here (not installed, or no python3 for the
//! endpoint), each test shows as ignored, and fails instead under
//! `DISPATCH_REQUIRE_REAL_CLIS=1`: this is a `harness = false` target whose
//! `main` lists its tests (see `tests/common/tier.rs`). See `docs/real-clis-openai-compatible.md`.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use common::real_cli::{
    self, assert_all_ticked, assert_edited_only_in_its_worktree, assert_reports_agree,
    assert_whole_task_reached_dispatch, events_of, tail, u64_of, whole_task_manifest,
    write_manifest, Cli, Endpoint, Run, REGION_ANSWER,
};
use common::Project;

/// The message of the endpoint's `--mode error` answer.
const API_ERROR_TEXT: &str = "scripted endpoint refuses this request";

/// The task every test runs.
const TASK: &str = "opencode-task";

/// The model as opencode names it: the provider the test configures through
/// `OPENCODE_CONFIG_CONTENT`, and the model under it.
const MODEL_ID: &str = "scripted/scripted-model";

/// Prices (US dollars per million tokens) given to the scripted model, so
/// opencode computes a cost.
const INPUT_PRICE: f64 = 3.0;
const OUTPUT_PRICE: f64 = 15.0;

/// The `opencode` this file drives: see [`Cli`].
const OPENCODE: Cli = Cli {
    program: "opencode",
    local: "bin/opencode",
};

fn opencode() -> PathBuf {
    OPENCODE.path()
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

    /// The text of every tool result opencode sent back to the model.
    fn tool_results(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for request in self.completions() {
            let Some(messages) = request["body"]["messages"].as_array() else {
                continue;
            };
            for message in messages.iter().filter(|m| m["role"] == "tool") {
                texts.push(match &message["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        texts
    }
}

/// Whether a chat request is opencode's main loop (it offers the `bash`
/// tool) rather than a side call (the session title).
fn offers_bash(request: &Value) -> bool {
    request["body"]["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "bash"))
}

/// opencode's configuration: one OpenAI-compatible provider, `scripted`,
/// whose base URL is the endpoint, with one priced model.
fn opencode_config(endpoint: &Endpoint) -> String {
    serde_json::json!({
        "provider": {
            "scripted": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Scripted endpoint",
                "options": { "baseURL": format!("{}/v1", endpoint.url()), "apiKey": "test" },
                "models": {
                    "scripted-model": {
                        "name": "Scripted model",
                        "cost": { "input": INPUT_PRICE, "output": OUTPUT_PRICE }
                    }
                }
            }
        }
    })
    .to_string()
}

/// `dispatch run sweep.yaml --json` with the real `opencode` first on PATH,
/// the endpoint as its only provider and private XDG folders.
fn run_sweep(project: &Project, opencode: &Path, endpoint: &Endpoint) -> Run {
    let xdg = project.path().join(".opencode-home");
    let mut env: Vec<(&str, OsString)> = Vec::new();
    for (name, dir) in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
    ] {
        let dir = xdg.join(dir);
        std::fs::create_dir_all(&dir).expect("xdg dir");
        env.push((name, dir.into()));
    }
    env.extend([
        // What a shell sets for `cd project && dispatch run`. opencode's
        // `run` takes its directory from PWD before its working directory,
        // so the PWD the test itself inherited (the repository) must not
        // leak in.
        ("PWD", project.path().into()),
        ("OPENCODE_CONFIG_CONTENT", opencode_config(endpoint).into()),
        ("OPENCODE_DISABLE_AUTOUPDATE", "1".into()),
        ("OPENCODE_DISABLE_MODELS_FETCH", "1".into()),
        ("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1".into()),
        ("OPENCODE_DISABLE_CLAUDE_CODE", "1".into()),
        // opencode installs its plugin package with npm at start-up; the
        // endpoint, as the proxy, refuses that (and any other call that
        // would leave the machine) at once.
        ("HTTP_PROXY", endpoint.url().into()),
        ("HTTPS_PROXY", endpoint.url().into()),
        ("NO_PROXY", "127.0.0.1,localhost".into()),
    ]);
    // Nothing of the machine's own opencode or provider setup may leak in.
    let scrub = |name: &str| {
        name.starts_with("OPENCODE")
            || name.starts_with("OPENAI_")
            || name.starts_with("ANTHROPIC_")
            || name.starts_with("XDG_")
            || name.ends_with("_PROXY")
    };
    real_cli::run_sweep(project, opencode, TASK, scrub, &env)
}

/// Everything a failed assertion should show.
fn context(project: &Project, run: &Run, endpoint: &Endpoint) -> String {
    real_cli::context(project, run, endpoint, TASK)
}

fn the_opencode_backend_drives_real_opencode_through_a_whole_task() {
    let opencode = opencode();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "opencode");
    let models = format!("models:\n  scripted:\n    backend: opencode\n    id: {MODEL_ID}\n");
    write_manifest(
        &project,
        &whole_task_manifest("real-cli-opencode", &models, None, TASK, "scripted", "bash"),
    );
    // In a git repository, as users run it.
    common::init_repo(project.path());
    let run = run_sweep(&project, &opencode, &endpoint);
    let why = context(&project, &run, &endpoint);
    // Every task completed; the high finding escalated (exit code 3).
    assert_eq!(run.status.code(), Some(3), "{why}");

    // The built-in backend, with its flags, ran the CLI.
    let record = project.task_json(TASK);
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    let argv: Vec<&str> = record["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        argv[..7],
        ["opencode", "run", "--model", MODEL_ID, "--format", "json", "--auto"],
        "{record}"
    );
    let started = events_of(&run.events, "task-started");
    assert_eq!(started[0]["backend"], "opencode", "{why}");

    // The worker prompt went in as the last argument and reached the model.
    let completions = endpoint.completions();
    let first = completions
        .iter()
        .find(|r| offers_bash(r))
        .map(|r| r["body"]["messages"].to_string())
        .unwrap_or_default();
    assert!(
        first.contains(&format!("# Task: {TASK}")) && first.contains("with your bash tool"),
        "the prompt is not in the first request: {}",
        tail(&first, 2000)
    );

    // Every item ticked by opencode's bash tool, the output written, the
    // finding escalated, the question answered by the rule; the answer went
    // back to the model as the bash tool's result.
    assert_whole_task_reached_dispatch(&project, &run, TASK, &record, &why);
    let results = endpoint.tool_results();
    assert!(
        results.iter().any(|r| r.contains(REGION_ANSWER)),
        "the answer never reached the model: {results:?}"
    );
    assert!(
        results.iter().any(|r| r.contains("finished")),
        "{results:?}"
    );

    // Usage from opencode's step_finish events equals what the endpoint
    // reported for the main loop: per call offering the bash tool 1000
    // input and 50 output tokens and one step. opencode's title call (no
    // tools) is not part of the session's steps, so it is not counted.
    let turns = completions.iter().filter(|r| offers_bash(r)).count() as u64;
    assert_eq!(turns, 5, "one model call per step");
    let usage = &record["usage"];
    assert_eq!(u64_of(&usage["turns"]), turns, "{usage}");
    assert_eq!(u64_of(&usage["input_tokens"]), turns * 1000, "{usage}");
    assert_eq!(u64_of(&usage["output_tokens"]), turns * 50, "{usage}");
    // The cost opencode computed from the model's configured prices.
    let cost = turns as f64 * (1000.0 * INPUT_PRICE + 50.0 * OUTPUT_PRICE) / 1e6;
    assert!(
        usage["cost_usd"]
            .as_f64()
            .is_some_and(|c| (c - cost).abs() < 1e-9),
        "{usage} (expected a cost of {cost})"
    );
    assert_eq!(record["outcome"]["is_error"], false, "{record}");
    assert_eq!(
        record["outcome"]["message"], "All four plan items are done.",
        "{record}"
    );

    // The reports say the same.
    assert_reports_agree(&project, &run, TASK, usage);

    // dispatch gave opencode XDG folders of the task's own (`cli_config:
    // private`, the default), over the ones the user's environment names:
    // its database is there, not under HOME's or the environment's.
    let private = project
        .path()
        .join(".dispatch/tasks")
        .join(TASK)
        .join("cli");
    assert!(
        private.join("data/opencode/opencode.db").exists(),
        "opencode wrote no database to its private XDG_DATA_HOME"
    );
    assert!(!project.path().join(".opencode-home/data/opencode").exists());
    assert!(!project.path().join(".local/share/opencode").exists());
}

fn an_api_error_fails_the_task_with_the_clis_own_message() {
    let opencode = opencode();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "error");
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-opencode-error
models:
  scripted:
    backend: opencode
    id: {MODEL_ID}
tasks:
  {TASK}:
    model: scripted
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your bash tool.
    plan: [Mark the first item, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &opencode, &endpoint);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json(TASK);
    assert_eq!(record["status"], "failed", "{record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(API_ERROR_TEXT),
        "the endpoint's error is not in the reason: {reason}\n{why}"
    );
    assert_eq!(record["outcome"]["is_error"], true, "{record}");
    assert!(
        !project.task_file(TASK, "plan.md").contains("- [x] "),
        "nothing was done"
    );
    // One main-loop call, not retried.
    let calls = endpoint
        .completions()
        .iter()
        .filter(|r| offers_bash(r))
        .count();
    assert_eq!(calls, 1, "{why}");
}

/// opencode's bash tool starts its shell detached (a session and process
/// group of its own), so this needs dispatch to stop the worker's
/// descendants that left its process group too. The task's timeout
/// ([`stop_timeout`](common::real_cli::stop_timeout)) scales with how fast
/// opencode starts here: it takes 3 to 35 s (on a loaded machine) from
/// start to its first model call, and the bash job must be running before
/// the timeout strikes.
fn a_timeout_kills_the_real_cli_and_everything_it_started() {
    let opencode = opencode();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "opencode-hang");
    let timeout = common::real_cli::stop_timeout(&opencode, 15.0);
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-opencode-timeout
models:
  scripted:
    backend: opencode
    id: {MODEL_ID}
tasks:
  {TASK}:
    model: scripted
    timeout: {timeout}
    retries: 0
    prompt: Run the long job with your bash tool.
    plan: [Run the long job]
"
        ),
    );
    let run = run_sweep(&project, &opencode, &endpoint);
    let why = context(&project, &run, &endpoint);
    let record = project.task_json(TASK);
    // opencode starts the bash tool's shell detached, in a group of its
    // own: that group is stopped too when the test finds it alive.
    let stopped = real_cli::stop_cli_and_job(&project, TASK, &record);
    assert_eq!(run.status.code(), Some(1), "{why}");
    assert_eq!(record["status"], "timed-out", "{record}\n{why}");
    assert!(
        stopped.job > 1,
        "the bash tool never started its job\n{why}"
    );
    assert!(stopped.worker > 1, "task.json has no worker pid: {record}");
    assert_eq!(
        stopped.left,
        (false, false),
        "(opencode, its bash job) still alive after the timeout\n{why}"
    );
}

fn a_worktree_task_edits_only_its_worktree() {
    let opencode = opencode();
    let project = Project::new();
    let endpoint = Endpoint::start(
        "openai_chat_endpoint.py",
        project.path(),
        "opencode-worktree",
    );
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-opencode-worktree
models:
  scripted:
    backend: opencode
    id: {MODEL_ID}
tasks:
  {TASK}:
    model: scripted
    timeout: 150s
    retries: 0
    prompt: Make the edit with your bash tool.
    plan: [Edit a file, Write the output]
    worktree: true
"
        ),
    );
    common::init_repo(project.path());
    let run = run_sweep(&project, &opencode, &endpoint);
    let why = context(&project, &run, &endpoint);
    assert_edited_only_in_its_worktree(
        &project,
        &run,
        TASK,
        ("made-by-opencode", "Edit from opencode"),
        &why,
    );
}

fn a_slow_stream_still_completes_the_task() {
    let opencode = opencode();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "opencode-slow");
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-opencode-slow
questions:
  answers:
    - match: region
      answer: '{REGION_ANSWER}'
models:
  scripted:
    backend: opencode
    id: {MODEL_ID}
tasks:
  {TASK}:
    model: scripted
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your bash tool.
    plan: [Mark the first item, Report a finding, Ask which region, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &opencode, &endpoint);
    let why = context(&project, &run, &endpoint);
    let record = assert_all_ticked(&project, &run, TASK, 4, &why);
    // As in the whole-task test: one step per main-loop call, five calls.
    let turns = endpoint
        .completions()
        .iter()
        .filter(|r| offers_bash(r))
        .count() as u64;
    assert_eq!(turns, 5, "one model call per step");
    assert_eq!(u64_of(&record["usage"]["turns"]), turns, "{record}");
}

/// opencode retries a broken stream itself, five times, about 2, 4, 8, 16
/// and 30 s apart (its session retry, which no setting bounds and which
/// here ignores `retry-after-ms`); run by hand it gave up after about 65 s
/// (an `error` event, exit 1). The test gives the task 15 to 60 s, by how
/// fast opencode starts here ([`stop_timeout`](common::real_cli::stop_timeout)):
/// it must end `timed-out` (not `complete`) with opencode stopped, after opencode
/// called the endpoint again at least once.
fn a_malformed_stream_is_retried_until_the_timeout_stops_the_cli() {
    let opencode = opencode();
    let project = Project::new();
    let endpoint = Endpoint::start(
        "openai_chat_endpoint.py",
        project.path(),
        "opencode-malformed",
    );
    let timeout = common::real_cli::stop_timeout(&opencode, 15.0);
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-opencode-malformed
models:
  scripted:
    backend: opencode
    id: {MODEL_ID}
tasks:
  {TASK}:
    model: scripted
    timeout: {timeout}
    retries: 0
    prompt: Work through the plan with your bash tool.
    plan: [Mark the first item, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &opencode, &endpoint);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json(TASK);
    assert_eq!(
        record["status"], "timed-out",
        "not complete: {record}\n{why}"
    );
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{record}");
    assert!(
        !project.task_file(TASK, "plan.md").contains("- [x] "),
        "nothing was done"
    );
    let calls = endpoint
        .completions()
        .iter()
        .filter(|r| offers_bash(r))
        .count();
    assert!(
        calls >= 2,
        "opencode retried the broken stream: {calls}\n{why}"
    );
    let worker = real_cli::worker_pid(&record);
    assert!(
        real_cli::all_end(&[worker]),
        "opencode ({worker}) was stopped\n{why}"
    );
}

fn main() -> ExitCode {
    real_cli::main(
        &OPENCODE,
        include_str!("real_cli_opencode.rs"),
        tier_tests![
            the_opencode_backend_drives_real_opencode_through_a_whole_task,
            an_api_error_fails_the_task_with_the_clis_own_message,
            a_timeout_kills_the_real_cli_and_everything_it_started,
            a_worktree_task_edits_only_its_worktree,
            a_slow_stream_still_completes_the_task,
            a_malformed_stream_is_retried_until_the_timeout_stops_the_cli,
        ],
    )
}
