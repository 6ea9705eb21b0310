//! The real-CLI tier: the built-in `claude` backend driving the real Claude
//! Code CLI, offline, against a scripted Anthropic Messages endpoint on
//! 127.0.0.1 (`tests/endpoint/anthropic_endpoint.py`). The endpoint plays a
//! worker that uses Claude Code's Bash tool to tick the plan, report a
//! finding, ask a question through `dispatch worker ask` and finish.
//!
//! When `claude` cannot run here (not installed, or no python3 for the
//! endpoint), each test shows as ignored, and fails instead under
//! `DISPATCH_REQUIRE_REAL_CLIS=1`: this is a `harness = false` target whose
//! `main` lists its tests (see `tests/common/tier.rs`). See `docs/real-clis.md`.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use common::real_cli::{
    self, assert_edited_only_in_its_worktree, assert_reports_agree,
    assert_whole_task_reached_dispatch, events_of, tail, u64_of, whole_task_manifest,
    write_manifest, Cli, Endpoint, Run, REGION_ANSWER,
};
use common::Project;

/// The task every test runs.
const TASK: &str = "claude-task";

/// The message of the endpoint's `--mode error` answer.
const API_ERROR_TEXT: &str = "scripted endpoint refuses this request";

/// The `claude` this file drives: see [`Cli`].
const CLAUDE: Cli = Cli {
    program: "claude",
    local: "bin/claude",
};

fn claude() -> PathBuf {
    CLAUDE.path()
}

impl Endpoint {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The text of every tool result the CLI sent back to the model.
    fn tool_results(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for request in self.requests() {
            let Some(messages) = request["body"]["messages"].as_array() else {
                continue;
            };
            for block in messages
                .iter()
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter(|b| b["type"] == "tool_result")
            {
                texts.push(match &block["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        texts
    }
}

/// `dispatch run sweep.yaml --json` with the real `claude` first on PATH,
/// the endpoint as its API, and `CLAUDE_CODE_MAX_RETRIES` set to
/// `retries`. dispatch gives the CLI its private config folder.
fn run_sweep(project: &Project, claude: &Path, endpoint: &Endpoint, retries: &str) -> Run {
    run_sweep_with(project, claude, endpoint, retries, None)
}

/// [`run_sweep`] with HOME at `home` instead of the project.
fn run_sweep_with(
    project: &Project,
    claude: &Path,
    endpoint: &Endpoint,
    retries: &str,
    home: Option<&Path>,
) -> Run {
    let home = home.unwrap_or(project.path());
    // Nothing of the machine's own Claude or Anthropic setup may leak in.
    let scrub = |name: &str| {
        name.starts_with("ANTHROPIC_")
            || name.starts_with("CLAUDE")
            || name.ends_with("_PROXY")
            || name == "IS_SANDBOX"
    };
    real_cli::run_sweep(
        project,
        claude,
        TASK,
        scrub,
        &[
            ("ANTHROPIC_BASE_URL", endpoint.url().into()),
            ("ANTHROPIC_API_KEY", "test".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", retries.into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
            ("HOME", home.into()),
        ],
    )
}

/// Everything a failed assertion should show.
fn context(project: &Project, run: &Run, endpoint: &Endpoint) -> String {
    real_cli::context(project, run, endpoint, TASK)
}

/// `POST /v1/messages` (with or without a query), not `count_tokens`.
fn is_messages(path: &str) -> bool {
    path.split('?').next() == Some("/v1/messages")
}

fn the_claude_backend_drives_real_claude_code_through_a_whole_task() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "worker");
    write_manifest(
        &project,
        &whole_task_manifest(
            "real-cli",
            "",
            Some("cat > escalated.json"),
            "claude-task",
            "sonnet",
            "Bash",
        ),
    );
    // In a git repository, as users run it.
    common::init_repo(project.path());
    let run = run_sweep(&project, &claude, &endpoint, "1");
    let why = context(&project, &run, &endpoint);
    // Every task completed; the high finding escalated (exit code 3).
    assert_eq!(run.status.code(), Some(3), "{why}");

    // The built-in backend, with its flags, ran the CLI.
    let record = project.task_json("claude-task");
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    let argv = record.to_string();
    for flag in ["bypassPermissions", "stream-json", "--verbose", "--add-dir"] {
        assert!(argv.contains(flag), "{flag} not in {argv}");
    }
    let started = events_of(&run.events, "task-started");
    assert_eq!(started[0]["backend"], "claude", "{why}");

    // The worker prompt went in on stdin and reached the model.
    let requests = endpoint.requests();
    let first = requests
        .iter()
        .find(|r| r["path"].as_str().is_some_and(is_messages))
        .map(|r| r["body"]["messages"].to_string())
        .unwrap_or_default();
    assert!(
        first.contains("# Task: claude-task") && first.contains("with your Bash tool"),
        "the prompt is not in the first request: {}",
        tail(&first, 2000)
    );

    // Every item ticked by Claude Code's Bash tool, the output written, the
    // finding escalated, the question answered by the rule; the rule's hook
    // got the finding, and the answer went back to the model as the Bash
    // tool's result.
    assert_whole_task_reached_dispatch(&project, &run, "claude-task", &record, &why);
    let hook = std::fs::read_to_string(project.path().join("escalated.json")).unwrap_or_default();
    assert!(
        hook.contains("Real CLI finding"),
        "the rule's hook got the finding: {hook}"
    );
    let results = endpoint.tool_results();
    assert!(
        results.iter().any(|r| r.contains(REGION_ANSWER)),
        "the answer never reached the model: {results:?}"
    );
    // The worker ran with the backend's IS_SANDBOX=1 (it echoes it).
    assert!(
        results.iter().any(|r| r.contains("IS_SANDBOX=1")),
        "{results:?}"
    );

    // Usage from Claude's stream-json equals what the endpoint reported:
    // per main-loop call (one offering the Bash tool) 1000 input and 50
    // output tokens and one turn; per side call 10 and 5. Plus Claude's cost.
    let (mut turns, mut input, mut output) = (0, 0, 0);
    for request in &requests {
        if request["method"] != "POST" || !request["path"].as_str().is_some_and(is_messages) {
            continue;
        }
        let main = request["body"]["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["name"] == "Bash"));
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
    assert!(
        usage["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
        "{usage}"
    );

    // The reports say the same.
    assert_reports_agree(&project, &run, "claude-task", usage);

    // dispatch gave the CLI a config folder of the task's own (`cli_config:
    // private`, the default): Claude Code kept its state there, and wrote
    // nothing to the user's (HOME is the project here).
    let private = project
        .path()
        .join(".dispatch/tasks")
        .join(TASK)
        .join("cli");
    assert!(
        private.join(".claude.json").is_file(),
        "Claude Code kept no state in its private folder: {:?}",
        std::fs::read_dir(&private).map(|e| e.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(!project.path().join(".claude.json").exists());
    assert!(!project.path().join(".claude").exists());
}

/// A sweep whose one task gets only API errors from the endpoint (`mode`):
/// the task must end `failed` with the CLI's own error text (`expected`),
/// not `complete`, and without retries the CLI gives up at once.
fn api_error_fails_the_task(mode: &str, expected: &[&str]) -> Vec<Value> {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), mode);
    write_manifest(
        &project,
        "version: 1
name: real-cli-error
tasks:
  claude-task:
    model: sonnet
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your Bash tool.
    plan: [Mark the first item, Write the output]
",
    );
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("claude-task");
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
            .task_file("claude-task", "plan.md")
            .contains("- [x] "),
        "nothing was done"
    );
    let requests = endpoint.requests();
    assert!(
        requests
            .iter()
            .any(|r| r["path"].as_str().is_some_and(is_messages)),
        "the CLI never called the endpoint"
    );
    requests
}

fn an_invalid_request_error_fails_the_task_with_the_clis_own_message() {
    api_error_fails_the_task("error", &["API Error: 400", API_ERROR_TEXT]);
}

fn an_overloaded_api_fails_the_task_without_retrying() {
    let requests = api_error_fails_the_task("overloaded", &["529", "Overloaded"]);
    let calls = requests
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(is_messages))
        .count();
    assert_eq!(calls, 1, "CLAUDE_CODE_MAX_RETRIES=0: one call, no retry");
}

fn a_timeout_kills_the_real_cli_and_everything_it_started() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "hang");
    let timeout = common::real_cli::stop_timeout(&claude, 4.0);
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-timeout
tasks:
  claude-task:
    model: sonnet
    timeout: {timeout}
    retries: 0
    prompt: Run the long job with your Bash tool.
    plan: [Run the long job]
"
        ),
    );
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("claude-task");
    assert_eq!(record["status"], "timed-out", "{record}\n{why}");
    let stopped = real_cli::stop_cli_and_job(&project, "claude-task", &record);
    assert!(
        stopped.job > 1,
        "the Bash tool never started its job\n{why}"
    );
    assert_eq!(
        stopped.left,
        (false, false),
        "(claude, its Bash job) still alive after the timeout\n{why}"
    );
}

/// Claude Code ends a run whose final text is a usage-limit message with
/// a `result` that says success, exit 0; the worker even finished its plan
/// and touched `.done` first. The task fails anyway, on Claude Code's rule
/// (`agents/claude.rs`), with the message as the reason.
fn a_success_claim_carrying_a_rate_limit_fails_the_task() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "limited");
    write_manifest(
        &project,
        "version: 1
name: real-cli-limited
tasks:
  claude-task:
    model: sonnet
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your Bash tool.
    plan: [Write the output]
",
    );
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("claude-task");
    assert_eq!(record["exit"]["code"], 0, "Claude Code exited 0: {record}");
    assert_eq!(
        record["outcome"]["is_error"], false,
        "its result claimed success: {record}"
    );
    assert!(
        project
            .task_file("claude-task", "plan.md")
            .contains("- [x] "),
        "the plan was ticked: {why}"
    );
    assert_eq!(record["status"], "failed", "{record}\n{why}");
    assert_eq!(
        record["reason"],
        "Claude Code claimed success, but its result is an API error: \
         Claude AI usage limit reached|1760000000",
        "{why}"
    );
}

/// A Bash job that never returns leaves Claude Code silent: with an
/// `idle_timeout` far below its `timeout`, the task ends `stalled`, and
/// the CLI and its job are gone.
fn a_silent_claude_is_stopped_as_stalled() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "hang");
    write_manifest(
        &project,
        "version: 1
name: real-cli-stall
tasks:
  claude-task:
    model: sonnet
    timeout: 3m
    idle_timeout: 10s
    retries: 0
    prompt: Run the long job with your Bash tool.
    plan: [Run the long job]
",
    );
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("claude-task");
    assert_eq!(record["status"], "stalled", "{record}\n{why}");
    assert!(record["last_activity"]["what"].is_string(), "{record}");
    let stopped = real_cli::stop_cli_and_job(&project, "claude-task", &record);
    assert!(
        stopped.job > 1,
        "the Bash tool never started its job\n{why}"
    );
    assert_eq!(
        stopped.left,
        (false, false),
        "(claude, its job) alive after the stall\n{why}"
    );
}

/// An API that is overloaded for a moment makes Claude Code retry; each
/// retry is an `api-retry` event (`retrying: API 529, attempt 1/5`), and
/// the task completes once the API answers, its retry no longer in the
/// record.
fn api_retries_of_the_real_cli_are_events() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "busy");
    write_manifest(
        &project,
        "version: 1
name: real-cli-retries
tasks:
  claude-task:
    model: sonnet
    timeout: 90s
    retries: 0
    prompt: Work through the plan with your Bash tool.
    plan: [Mark the first item]
",
    );
    let run = run_sweep(&project, &claude, &endpoint, "5");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(0), "{why}");
    let retries = events_of(&run.events, "api-retry");
    assert!(!retries.is_empty(), "no api-retry event\n{why}");
    assert_eq!(
        retries[0]["summary"], "retrying: API 529, attempt 1/5",
        "{retries:?}"
    );
    let record = project.task_json("claude-task");
    assert_eq!(record["status"], "complete", "{why}");
    assert!(record.get("api_retry").is_none(), "{record}");
}

fn a_worktree_task_edits_only_its_worktree() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "worktree");
    write_manifest(
        &project,
        "version: 1
name: real-cli-worktree
tasks:
  claude-task:
    model: sonnet
    timeout: 150s
    retries: 0
    prompt: Make the edit with your Bash tool.
    plan: [Edit a file, Write the output]
    worktree: true
",
    );
    common::init_repo(project.path());
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_edited_only_in_its_worktree(
        &project,
        &run,
        "claude-task",
        ("made-by-claude", "Edit from Claude Code"),
        &why,
    );
}

/// Acceptance checks after a real CLI: one passes on what Claude Code
/// committed in its worktree; the other fails once, so dispatch launches
/// the CLI again in the same worktree with its plan reopened and the
/// check's output in the prompt, and the task completes flaky.
fn acceptance_checks_judge_the_real_cli_and_a_retry_fixes_a_failed_one() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "worktree");
    write_manifest(
        &project,
        "version: 1
name: real-cli-checks
tasks:
  claude-task:
    model: sonnet
    timeout: 150s
    retries: 1
    prompt: Make the edit with your Bash tool.
    plan: [Edit a file, Write the output]
    worktree: true
    checks:
      - { name: edited, run: \"git log -1 --format=%s | grep -q 'Edit from Claude Code' && grep -q made-by-claude edited.txt\" }
      - { name: second look, run: \"test -e ../../looked-once || { touch ../../looked-once; echo \\\"first look finds check-out-$((6 * 7))\\\"; exit 1; }\" }
",
    );
    common::init_repo(project.path());
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(0), "{why}");
    let record = project.task_json(TASK);
    assert_eq!(record["status"], "complete", "{why}");
    let attempts = record["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{why}");
    assert_eq!(attempts[0]["status"], "check-failed", "{why}");
    assert_eq!(attempts[0]["checks"][0]["passed"], true, "{why}");
    assert_eq!(attempts[0]["checks"][1]["passed"], false, "{why}");
    assert_eq!(attempts[1]["checks"][1]["passed"], true, "{why}");
    // The retry's prompt reached the model with the check's output (the
    // command's text does not hold `check-out-42`).
    let prompts: Vec<String> = endpoint
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(is_messages))
        .map(|r| r["body"]["messages"].to_string())
        .collect();
    assert!(
        prompts
            .iter()
            .any(|p| p.contains("first look finds check-out-42")),
        "the check's output never reached the model\n{why}"
    );
    let plan = project.task_file(TASK, "plan.md");
    assert!(
        plan.contains("- [x] Make the failing acceptance check pass: `second look`"),
        "{plan}"
    );
    let run_dir = project
        .path()
        .join(".dispatch/runs")
        .join(record["run_id"].as_str().unwrap_or_default());
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap_or_default();
    assert!(junit.contains("<flakyFailure"), "{junit}");
    let report = std::fs::read_to_string(run_dir.join("report.json")).unwrap_or_default();
    let report: Value = serde_json::from_str(&report).unwrap_or_default();
    assert_eq!(report["totals"]["flaky_tasks"], 1, "{why}");
}

fn a_slow_stream_still_completes_the_task() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "slow");
    write_manifest(
        &project,
        &format!(
            "version: 1
name: real-cli-slow
questions:
  answers:
    - match: region
      answer: '{REGION_ANSWER}'
tasks:
  claude-task:
    model: sonnet
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your Bash tool.
    plan: [Mark the first item, Report a finding, Ask which region, Write the output]
"
        ),
    );
    // The user's own settings (in a HOME apart from the project, whose
    // `.claude/` would be the team's project settings) point Claude Code at
    // a dead port: read, they would fail the task. The worker's private
    // config folder leaves them out, and the run says so.
    let home = project.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).expect("mkdir");
    std::fs::write(
        home.join(".claude/settings.json"),
        r#"{"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}}"#,
    )
    .expect("write settings");
    let run = run_sweep_with(&project, &claude, &endpoint, "0", Some(&home));
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(0), "{why}");
    let record = project.task_json("claude-task");
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    assert_eq!(record["usage"]["turns"], 5, "{record}");
    let warned = events_of(&run.events, "warning").iter().any(|w| {
        w["message"]
            .as_str()
            .is_some_and(|m| m.contains("~/.claude/settings.json sets `env`"))
    });
    assert!(warned, "no warning about the settings left out\n{why}");
}

fn a_malformed_stream_fails_the_task_with_the_clis_error() {
    let claude = claude();
    let project = Project::new();
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "malformed");
    write_manifest(
        &project,
        "version: 1
name: real-cli-malformed
tasks:
  claude-task:
    model: sonnet
    timeout: 150s
    retries: 0
    prompt: Work through the plan with your Bash tool.
    plan: [Mark the first item, Write the output]
",
    );
    let run = run_sweep(&project, &claude, &endpoint, "0");
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json("claude-task");
    assert_eq!(record["status"], "failed", "not complete: {record}\n{why}");
    let reason = record["reason"].as_str().unwrap_or_default();
    // Claude Code's own words, after its non-streaming retry got HTML too.
    assert!(
        reason.contains("API Error") && reason.contains("malformed response"),
        "the CLI's error is not in the reason: {reason}\n{why}"
    );
    assert!(
        !project
            .task_file("claude-task", "plan.md")
            .contains("- [x] "),
        "nothing was done"
    );
}

fn main() -> ExitCode {
    real_cli::main(
        &CLAUDE,
        include_str!("real_cli.rs"),
        tier_tests![
            the_claude_backend_drives_real_claude_code_through_a_whole_task,
            an_invalid_request_error_fails_the_task_with_the_clis_own_message,
            an_overloaded_api_fails_the_task_without_retrying,
            a_timeout_kills_the_real_cli_and_everything_it_started,
            a_success_claim_carrying_a_rate_limit_fails_the_task,
            a_silent_claude_is_stopped_as_stalled,
            api_retries_of_the_real_cli_are_events,
            a_worktree_task_edits_only_its_worktree,
            acceptance_checks_judge_the_real_cli_and_a_retry_fixes_a_failed_one,
            a_slow_stream_still_completes_the_task,
            a_malformed_stream_fails_the_task_with_the_clis_error,
        ],
    )
}
