//! The real-CLI tier for Gemini CLI: the built-in `gemini` backend driving
//! the real `gemini`, offline, against a scripted Gemini API endpoint on
//! 127.0.0.1 (`tests/endpoint/gemini_endpoint.py`). The endpoint plays a
//! worker that uses Gemini CLI's shell tool (`run_shell_command`) to tick
//! the plan, report a finding, ask a question through `dispatch worker ask`
//! and finish.
//!
//! When `gemini` cannot run here (not installed, or no python3 for the
//! endpoint), each test shows as ignored, and fails instead under
//! `DISPATCH_REQUIRE_REAL_CLIS=1`: this is a `harness = false` target whose
//! `main` lists its tests (see `tests/common/tier.rs`). See `docs/real-clis-gemini.md`.

#[macro_use]
mod common;

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

/// The message of the endpoint's `--mode unavailable` answer.
const UNAVAILABLE_TEXT: &str = "The model is overloaded";

/// The model the tasks name: a built-in `gemini-*` model, so the built-in
/// `gemini` backend runs it with this id.
const MODEL: &str = "gemini-2.5-flash";

/// Gemini CLI's shell tool, as declared in its requests' `tools`.
const SHELL_TOOL: &str = "run_shell_command";

/// The `gemini` this file drives: see [`Cli`].
const GEMINI: Cli = Cli {
    program: "gemini",
    local: "bin/gemini",
};

fn gemini() -> PathBuf {
    GEMINI.path()
}

impl Endpoint {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The logged model calls (`:streamGenerateContent`/`:generateContent`).
    fn model_calls(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == "POST" && r["path"].as_str().is_some_and(is_model_call))
            .collect()
    }

    /// The output of every tool call the CLI sent back to the model (the
    /// `functionResponse` parts of the last request, which holds them all).
    fn tool_results(&self) -> Vec<String> {
        let mut texts = Vec::new();
        let calls = self.model_calls();
        let Some(contents) = calls.last().and_then(|r| r["body"]["contents"].as_array()) else {
            return texts;
        };
        for part in contents
            .iter()
            .filter_map(|c| c["parts"].as_array())
            .flatten()
        {
            let response = &part["functionResponse"]["response"];
            if !response.is_null() {
                texts.push(match &response["output"] {
                    Value::String(s) => s.clone(),
                    _ => response.to_string(),
                });
            }
        }
        texts
    }
}

/// `/v1beta/models/MODEL:streamGenerateContent?alt=sse` or
/// `:generateContent`, not `:countTokens`.
fn is_model_call(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    path.starts_with("/v1beta/models/")
        && (path.ends_with(":streamGenerateContent") || path.ends_with(":generateContent"))
}

/// Whether a request offers the shell tool (a main-loop call).
fn offers_shell(request: &Value) -> bool {
    request["body"]["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .filter_map(|t| t["functionDeclarations"].as_array())
            .flatten()
            .any(|d| d["name"] == SHELL_TOOL)
    })
}

/// `dispatch run sweep.yaml --json` with the real `gemini` first on PATH,
/// the endpoint as its API and a private home for its settings and state
/// (`GEMINI_CLI_HOME`). `max_attempts` is Gemini CLI's `general.maxAttempts`.
fn run_sweep(project: &Project, gemini: &Path, endpoint: &Endpoint, max_attempts: u32) -> Run {
    // Gemini CLI reads `$GEMINI_CLI_HOME/.gemini/settings.json`: an API key
    // login (else GOOGLE_GEMINI_BASE_URL selects the "gateway" auth, which a
    // headless run rejects), no usage statistics, telemetry or update
    // checks, and a bounded number of attempts per model call.
    let home = project.path().join(".gemini-home");
    let settings_dir = home.join(".gemini");
    std::fs::create_dir_all(&settings_dir).expect("settings dir");
    let settings = serde_json::json!({
        "security": { "auth": { "selectedType": "gemini-api-key" } },
        "general": {
            "enableAutoUpdate": false,
            "enableAutoUpdateNotification": false,
            "maxAttempts": max_attempts,
        },
        "privacy": { "usageStatisticsEnabled": false },
        "telemetry": { "enabled": false },
    });
    std::fs::write(settings_dir.join("settings.json"), settings.to_string())
        .expect("write settings");
    // Error reports go to the OS temporary folder; keep them in the test's.
    let tmp = project.path().join(".tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    // Nothing of the machine's own Gemini or Google setup may leak in.
    let scrub = |name: &str| {
        name.starts_with("GEMINI")
            || name.starts_with("GOOGLE_")
            || name.ends_with("_PROXY")
            || name == "CLOUD_SHELL"
    };
    real_cli::run_sweep(
        project,
        gemini,
        "gemini-task",
        scrub,
        &[
            ("GOOGLE_GEMINI_BASE_URL", endpoint.url().into()),
            ("GEMINI_API_KEY", "test".into()),
            ("GEMINI_CLI_HOME", home.into()),
            ("TMPDIR", tmp.into()),
            // Any call to another host goes to the endpoint as a CONNECT,
            // which it logs and refuses; the endpoint itself is reached
            // directly.
            ("HTTPS_PROXY", endpoint.url().into()),
            ("HTTP_PROXY", endpoint.url().into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ],
    )
}

/// Everything a failed assertion should show.
fn context(project: &Project, run: &Run, endpoint: &Endpoint) -> String {
    real_cli::context(project, run, endpoint, "gemini-task")
}

fn the_gemini_backend_drives_real_gemini_cli_through_a_whole_task() {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), "worker");
    write_manifest(
        &project,
        &whole_task_manifest("real-cli-gemini", "", None, "gemini-task", MODEL, "shell"),
    );
    // In a git repository, as users run it.
    common::init_repo(project.path());
    let run = run_sweep(&project, &gemini, &endpoint, 2);
    let why = context(&project, &run, &endpoint);
    // Every task completed; the high finding escalated (exit code 3).
    assert_eq!(run.status.code(), Some(3), "{why}");

    // The built-in backend, with its flags, ran the CLI.
    let record = project.task_json("gemini-task");
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    let argv = record.to_string();
    for flag in [
        "--skip-trust",
        "yolo",
        "stream-json",
        "--include-directories",
        MODEL,
    ] {
        assert!(argv.contains(flag), "{flag} not in {argv}");
    }
    let started = events_of(&run.events, "task-started");
    assert_eq!(started[0]["backend"], "gemini", "{why}");

    // Only model calls: no probe, no call to another host through the proxy
    // (usage statistics and update checks are off in the settings).
    let requests = endpoint.requests();
    let others: Vec<String> = requests
        .iter()
        .filter(|r| !r["path"].as_str().is_some_and(is_model_call))
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect();
    assert!(others.is_empty(), "calls besides the model's: {others:?}");

    // The worker prompt went in as --prompt and reached the model, whose id
    // is in the request path.
    let calls = endpoint.model_calls();
    let first = calls.first().cloned().unwrap_or_default();
    assert!(
        first["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("/v1beta/models/{MODEL}:"))),
        "{first}"
    );
    let contents = first["body"]["contents"].to_string();
    assert!(
        contents.contains("# Task: gemini-task") && contents.contains("with your shell tool"),
        "the prompt is not in the first request: {}",
        tail(&contents, 2000)
    );

    // Every item ticked by Gemini CLI's shell tool, the output written, the
    // finding escalated, the question answered by the rule; the answer went
    // back to the model as the shell tool's result.
    assert_whole_task_reached_dispatch(&project, &run, "gemini-task", &record, &why);
    let results = endpoint.tool_results();
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(
        results.iter().any(|r| r.contains(REGION_ANSWER)),
        "the answer never reached the model: {results:?}"
    );
    // The command ran under Gemini CLI's shell tool, which sets GEMINI_CLI=1
    // (the last step echoes it).
    assert!(
        results.iter().any(|r| r.contains("GEMINI_CLI=1")),
        "{results:?}"
    );

    // Usage from Gemini's stream-json equals what the endpoint reported:
    // per main-loop call (one offering the shell tool) 1000 prompt and 50
    // candidate tokens; per side call 10 and 5. Turns are counted by
    // dispatch (the result's stats have none): one per model answer.
    let (mut turns, mut input, mut output) = (0, 0, 0);
    for call in &calls {
        let main = offers_shell(call);
        if main {
            turns += 1;
        }
        input += if main { 1000 } else { 10 };
        output += if main { 50 } else { 5 };
    }
    assert_eq!(turns, 5, "one model call per step");
    let usage = &record["usage"];
    assert_eq!(u64_of(&usage["turns"]), turns, "{usage}");
    assert_eq!(u64_of(&usage["input_tokens"]), input, "{usage}");
    assert_eq!(u64_of(&usage["output_tokens"]), output, "{usage}");
    // Gemini CLI reports no cost.
    assert!(usage["cost_usd"].is_null(), "{usage}");

    // The reports say the same.
    assert_reports_agree(&project, &run, "gemini-task", usage);

    // dispatch gave Gemini CLI a home of the task's own (`cli_config:
    // private`, the default), with the login choice carried over from the
    // user's settings: its state is there, the user's home got nothing.
    let private = project
        .path()
        .join(".dispatch/tasks/gemini-task/cli/.gemini");
    assert!(
        std::fs::read_dir(&private).is_ok_and(|entries| entries.count() > 1),
        "Gemini CLI wrote nothing to its private home"
    );
    let settings = std::fs::read_to_string(private.join("settings.json")).expect("settings");
    assert!(settings.contains("gemini-api-key"), "{settings}");
    let user = project.path().join(".gemini-home/.gemini");
    assert_eq!(
        std::fs::read_dir(&user).map(|e| e.count()).unwrap_or(0),
        1,
        "only the user's settings.json is in the user's home"
    );
    assert!(!project.path().join(".gemini").exists());
}

/// A sweep whose one task gets only API errors from the endpoint (`mode`):
/// the task must end `failed` with the CLI's own error text (`expected`),
/// not `complete`, and with `general.maxAttempts` 1 the CLI gives up at once.
fn api_error_fails_the_task(mode: &str, expected: &[&str]) -> Vec<Value> {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), mode);
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-gemini-error
tasks:
  gemini-task:
    model: {MODEL}
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &gemini, &endpoint, 1);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("gemini-task");
    assert_eq!(record["status"], "failed", "{record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    for text in expected {
        assert!(
            reason.contains(text),
            "the CLI's error ({text}) is not in the reason: {reason}\n{why}"
        );
    }
    assert_eq!(record["outcome"]["is_error"], true, "{record}");
    assert!(
        !project
            .task_file("gemini-task", "plan.md")
            .contains("- [x] "),
        "nothing was done"
    );
    let calls = endpoint.model_calls();
    assert!(!calls.is_empty(), "the CLI never called the endpoint");
    calls
}

fn an_invalid_argument_error_fails_the_task_with_the_clis_own_message() {
    api_error_fails_the_task("error", &["API Error", API_ERROR_TEXT]);
}

fn an_unavailable_api_fails_the_task_without_retrying() {
    let calls = api_error_fails_the_task("unavailable", &["API Error", UNAVAILABLE_TEXT]);
    assert_eq!(calls.len(), 1, "general.maxAttempts 1: one call, no retry");
}

/// Gemini CLI starts every `run_shell_command` in a session of its own
/// (`child_process.spawn` with `detached: true`, i.e. `setsid`; node-pty
/// does the same), and on SIGTERM it exits without stopping that shell.
/// Stopping the worker's process group alone would leave the shell, its
/// foreground command and its background job running; dispatch also finds
/// the worker's descendants that left its group and stops them. The
/// timeout ([`stop_timeout`](common::real_cli::stop_timeout)) scales with
/// how fast Gemini CLI starts here: the job must have started first.
fn a_timeout_kills_the_real_cli_and_everything_it_started() {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), "hang");
    let timeout = common::real_cli::stop_timeout(&gemini, 4.0);
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-gemini-timeout
tasks:
  gemini-task:
    model: {MODEL}
    timeout: {timeout}
    retries: 0
    prompt: Run the long job with your shell tool.
    plan: [Run the long job]
"
        ),
    );
    let run = run_sweep(&project, &gemini, &endpoint, 1);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("gemini-task");
    assert_eq!(record["status"], "timed-out", "{record}\n{why}");
    // Gemini CLI runs the command in a session of its own: its group is
    // stopped too when the test finds it alive.
    let stopped = real_cli::stop_cli_and_job(&project, "gemini-task", &record);
    assert!(
        stopped.job > 1,
        "the shell tool never started its job\n{why}"
    );
    assert_eq!(
        stopped.left,
        (false, false),
        "(gemini, its shell job) still alive after the timeout\n{why}"
    );
}

/// Issue 25: with the API key only in the manifest's `env:` (none in
/// dispatch's environment, no user settings), the worker's private
/// settings still choose the API-key login, so the task completes instead
/// of Gemini CLI exiting 41.
fn a_key_only_in_the_manifest_is_enough() {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), "worker");
    write_manifest(
        &project,
        &whole_task_manifest(
            "real-cli-gemini-manifest-key",
            "",
            None,
            "gemini-task",
            MODEL,
            "shell",
        )
        .replace(
            "    retries: 0\n",
            "    retries: 0\n    env: { GEMINI_API_KEY: test }\n",
        ),
    );
    let tmp = project.path().join(".tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let scrub = |name: &str| {
        name.starts_with("GEMINI")
            || name.starts_with("GOOGLE_")
            || name.ends_with("_PROXY")
            || name == "CLOUD_SHELL"
    };
    let run = real_cli::run_sweep(
        &project,
        &gemini,
        "gemini-task",
        scrub,
        &[
            ("GOOGLE_GEMINI_BASE_URL", endpoint.url().into()),
            ("TMPDIR", tmp.into()),
            ("HTTPS_PROXY", endpoint.url().into()),
            ("HTTP_PROXY", endpoint.url().into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ],
    );
    let why = context(&project, &run, &endpoint);
    let record = project.task_json("gemini-task");
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    assert_whole_task_reached_dispatch(&project, &run, "gemini-task", &record, &why);
    // Nothing warned of missing credentials: the manifest's key counts.
    assert!(
        !run.events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("no credentials"))),
        "{why}"
    );
}

fn a_worktree_task_edits_only_its_worktree() {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), "worktree");
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-gemini-worktree
tasks:
  gemini-task:
    model: {MODEL}
    timeout: 150s
    retries: 0
    prompt: Make the edit with your shell tool.
    plan: [Edit a file, Write the output]
    worktree: true
"
        ),
    );
    common::init_repo(project.path());
    let run = run_sweep(&project, &gemini, &endpoint, 2);
    let why = context(&project, &run, &endpoint);
    assert_edited_only_in_its_worktree(
        &project,
        &run,
        "gemini-task",
        ("made-by-gemini", "Edit from Gemini CLI"),
        &why,
    );
}

fn a_slow_stream_still_completes_the_task() {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), "slow");
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-gemini-slow
questions:
  answers:
    - match: region
      answer: '{REGION_ANSWER}'
tasks:
  gemini-task:
    model: {MODEL}
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item, Report a finding, Ask which region, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &gemini, &endpoint, 1);
    let why = context(&project, &run, &endpoint);
    let record = assert_all_ticked(&project, &run, "gemini-task", 4, &why);
    // As in the whole-task test: one turn per main-loop call, five calls.
    let turns = endpoint
        .model_calls()
        .iter()
        .filter(|c| offers_shell(c))
        .count() as u64;
    assert_eq!(turns, 5, "one model call per step");
    assert_eq!(u64_of(&record["usage"]["turns"]), turns, "{record}");
}

fn a_malformed_stream_fails_the_task_with_the_clis_error() {
    let gemini = gemini();
    let project = Project::new();
    let endpoint = Endpoint::start("gemini_endpoint.py", project.path(), "malformed");
    write_manifest(
        &project,
        &format!(
            "version: 1
defaults:
  cli_config: user
name: real-cli-gemini-malformed
tasks:
  gemini-task:
    model: {MODEL}
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your shell tool.
    plan: [Mark the first item, Write the output]
"
        ),
    );
    let run = run_sweep(&project, &gemini, &endpoint, 1);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("gemini-task");
    assert_eq!(record["status"], "failed", "not complete: {record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    // The JSON parser's own complaint about the broken chunk.
    assert!(
        reason.contains("API Error") && reason.contains("JSON"),
        "the CLI's error is not in the reason: {reason}\n{why}"
    );
    assert_eq!(record["outcome"]["is_error"], true, "{record}");
    assert!(
        !project
            .task_file("gemini-task", "plan.md")
            .contains("- [x] "),
        "nothing was done"
    );
    assert_eq!(
        endpoint.model_calls().len(),
        1,
        "general.maxAttempts 1: one call\n{why}"
    );
}

fn main() -> ExitCode {
    real_cli::main(
        &GEMINI,
        include_str!("real_cli_gemini.rs"),
        tier_tests![
            the_gemini_backend_drives_real_gemini_cli_through_a_whole_task,
            an_invalid_argument_error_fails_the_task_with_the_clis_own_message,
            an_unavailable_api_fails_the_task_without_retrying,
            a_timeout_kills_the_real_cli_and_everything_it_started,
            a_worktree_task_edits_only_its_worktree,
            a_key_only_in_the_manifest_is_enough,
            a_slow_stream_still_completes_the_task,
            a_malformed_stream_fails_the_task_with_the_clis_error,
        ],
    )
}
