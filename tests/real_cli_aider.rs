//! The real-CLI tier for aider: the built-in `aider` backend driving the
//! real aider CLI, offline, against a scripted OpenAI Chat Completions
//! endpoint on 127.0.0.1 (`tests/endpoint/openai_chat_endpoint.py`).
//!
//! aider has no tools: the endpoint answers with whole-file edit blocks that
//! rewrite the task's plan (every item checked) and write its output file,
//! which aider applies. It cannot ask questions or report findings through
//! `dispatch worker`; `dispatch` reads its usage from its plain-text
//! output. Every test runs in a git repository, as users run aider, and
//! one in a worktree task whose edit is committed; see
//! `docs/real-clis-openai-compatible.md`.
//!
//! When `aider` cannot run here (not installed, or no python3 for the
//! endpoint), each test shows as ignored, and fails instead under
//! `DISPATCH_REQUIRE_REAL_CLIS=1`: this is a `harness = false` target whose
//! `main` lists its tests (see `tests/common/tier.rs`).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use common::real_cli::{
    self, assert_all_ticked, assert_edited_only_in_its_worktree, events_of, tail, Cli, Endpoint,
    Run,
};
use common::Project;

/// The message of the endpoint's `--mode error` answer.
const API_ERROR_TEXT: &str = "scripted endpoint refuses this request";

/// The task every test runs.
const TASK: &str = "aider-task";

/// The model as aider (through LiteLLM) names it: an OpenAI-compatible
/// model, whose base URL comes from `OPENAI_API_BASE`.
const MODEL_ID: &str = "openai/scripted-model";

/// A task's timeout where the timeout is not what is tested: generous,
/// since aider (a Python program) may take many seconds just to start on a
/// loaded machine.
const TIMEOUT: &str = "150s";

/// The `aider` this file drives: see [`Cli`].
const AIDER: Cli = Cli {
    program: "aider",
    local: "aider-venv/bin/aider",
};

fn aider() -> PathBuf {
    AIDER.path()
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

/// `dispatch run sweep.yaml --json` with the real `aider` first on PATH and
/// the endpoint as its OpenAI API.
fn run_sweep(project: &Project, aider: &Path, endpoint: &Endpoint) -> Run {
    // Nothing of the machine's own aider or provider setup may leak in
    // (HOME, where aider looks for `.aider.conf.yml`, is the project).
    let scrub = |name: &str| {
        name.starts_with("AIDER_")
            || name.starts_with("OPENAI_")
            || name.starts_with("ANTHROPIC_")
            || name.starts_with("LITELLM_")
            || name.ends_with("_PROXY")
            || name == "VIRTUAL_ENV"
    };
    real_cli::run_sweep(
        project,
        aider,
        TASK,
        scrub,
        &[
            ("OPENAI_API_BASE", format!("{}/v1", endpoint.url()).into()),
            ("OPENAI_API_KEY", "test".into()),
            // The endpoint answers in the whole-file format (aider's
            // default for a model it does not know, pinned here).
            ("AIDER_EDIT_FORMAT", "whole".into()),
            // No "unknown model" warning (it offers to open a web page).
            ("AIDER_SHOW_MODEL_WARNINGS", "false".into()),
            ("LITELLM_LOCAL_MODEL_COST_MAP", "True".into()),
            // aider fetches a model price list at start-up; the endpoint,
            // as the proxy, refuses that (and any other call that would
            // leave the machine) at once.
            ("HTTP_PROXY", endpoint.url().into()),
            ("HTTPS_PROXY", endpoint.url().into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ],
    )
}

/// Everything a failed assertion should show.
fn context(project: &Project, run: &Run, endpoint: &Endpoint) -> String {
    real_cli::context(project, run, endpoint, TASK)
}

/// `sweep.yaml` with one aider task that may run for `timeout`, with
/// `more` (indented task keys, each line ending in a newline), in a git
/// repository, as users run it: the manifest is its first commit
/// (`Project::manifest` would build the scripted test agent, which these
/// tests do not use).
fn write_manifest(project: &Project, timeout: &str, more: &str) {
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
    timeout: {timeout}
    retries: 0
    prompt: Check off every item of the plan and write the output file.
    plan: [Check the plan, Write the output]
{more}"
    );
    real_cli::write_manifest(project, &text);
    common::init_repo(project.path());
}

/// Assert aider left no trace in the repository at `dir` (the main
/// checkout or a worktree): no `.aider.tags.cache.v4/` (its repository
/// map's cache), no `.gitignore` of its making, and no ignore rule of its
/// own in `.git/info/exclude`; `git status` shows nothing of aider's.
fn assert_no_aider_traces(project: &Project, dir: &Path, why: &str) {
    assert!(
        !dir.join(".aider.tags.cache.v4").exists(),
        "aider's cache is left in {}\n{why}",
        dir.display()
    );
    assert!(!dir.join(".gitignore").exists(), "{why}");
    let exclude =
        std::fs::read_to_string(project.path().join(".git/info/exclude")).unwrap_or_default();
    assert!(!exclude.contains("aider"), "{exclude}");
    let status = common::git(dir, &["status", "--porcelain", "--ignored"]);
    assert!(
        !status.lines().any(|l| l.contains(".aider.tags")),
        "{status}\n{why}"
    );
}

fn the_aider_backend_drives_real_aider_through_a_plan() {
    let aider = aider();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "aider");
    write_manifest(&project, TIMEOUT, "");
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
    // dispatch keeps aider's histories in the task's private folder
    // (`cli_config: private`, the default), not in the repository's root.
    let private = project
        .path()
        .join(".dispatch/tasks")
        .join(TASK)
        .join("cli");
    let history = std::fs::read_to_string(private.join("chat.history.md")).unwrap_or_default();
    assert!(
        history.contains("Allow edits to file that has not been added to the chat"),
        "{history}"
    );
    assert!(!project.path().join(".aider.chat.history.md").exists());
    assert!(!project.path().join(".aider.input.history").exists());
    // In the git repository, aider edited files git ignores (the state
    // folder is in `.git/info/exclude`), committed nothing (`--no-git`) and
    // left no cache.
    assert_no_aider_traces(&project, project.path(), &why);
    assert_eq!(
        common::git(project.path(), &["rev-list", "--count", "HEAD"]),
        "1",
        "aider made no commit\n{why}"
    );

    // aider prints its usage as text (`Tokens: 1.0k sent, 50 received.`);
    // dispatch reads it from there, rounded as aider rounds.
    let log = project.task_file(TASK, "worker.log");
    assert!(log.contains("Tokens: 1.0k sent, 50 received."), "{why}");
    assert_eq!(record["usage"]["turns"], 1, "{record}");
    assert_eq!(record["usage"]["input_tokens"], 1000, "{record}");
    assert_eq!(record["usage"]["output_tokens"], 50, "{record}");
}

fn an_api_error_fails_the_task_with_aiders_own_message() {
    let aider = aider();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "error");
    write_manifest(&project, TIMEOUT, "");
    let run = run_sweep(&project, &aider, &endpoint);
    let why = context(&project, &run, &endpoint);
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
    // aider does not retry an HTTP 400.
    assert_eq!(endpoint.completions().len(), 1, "{why}");
}

fn a_slow_answer_still_completes_the_task() {
    let aider = aider();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "aider-slow");
    write_manifest(&project, TIMEOUT, "");
    let run = run_sweep(&project, &aider, &endpoint);
    let why = context(&project, &run, &endpoint);
    let record = assert_all_ticked(&project, &run, TASK, 2, &why);
    assert_eq!(
        project.task_file(TASK, "output.md"),
        "Real CLI worker output\n"
    );
    // As in the whole-plan test: one model call, one turn.
    assert_eq!(endpoint.completions().len(), 1, "{why}");
    assert_eq!(record["usage"]["turns"], 1, "{record}");
    assert_eq!(record["usage"]["input_tokens"], 1000, "{record}");
}

/// A 200 whose body is not JSON is, to LiteLLM, an `InternalServerError`,
/// which aider retries itself, 0.25 s doubling to 32 s apart (9 calls in
/// about 70 s, then it exits 0; no setting bounds it). The test gives the
/// task 15 to 60 s ([`stop_timeout`](common::real_cli::stop_timeout), by how
/// fast aider starts here): less than aider's retries take (their waits
/// alone add up to over 60 s), and time for aider to start on a loaded
/// machine, which was seen taking over 30 s to make its first call. It
/// must end `timed-out` (not `complete`) with aider stopped,
/// after aider printed LiteLLM's error and retried, and with that error
/// read into the task's `outcome`.
fn a_malformed_answer_is_retried_until_the_timeout_stops_the_cli() {
    let aider = aider();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "aider-malformed");
    write_manifest(&project, &common::real_cli::stop_timeout(&aider, 4.0), "");
    let run = run_sweep(&project, &aider, &endpoint);
    let why = context(&project, &run, &endpoint);
    assert_eq!(run.status.code(), Some(1), "{why}");
    let record = project.task_json(TASK);
    assert_eq!(
        record["status"], "timed-out",
        "not complete: {record}\n{why}"
    );
    assert!(
        !record["reason"].as_str().unwrap_or_default().is_empty(),
        "{record}"
    );
    assert!(
        !project.task_file(TASK, "plan.md").contains("- [x] "),
        "nothing was done"
    );
    let log = project.task_file(TASK, "worker.log");
    assert!(
        log.contains("litellm.InternalServerError") && log.contains("Retrying in"),
        "{why}"
    );
    assert!(endpoint.completions().len() >= 2, "aider retried\n{why}");
    let worker = real_cli::worker_pid(&record);
    assert!(
        real_cli::all_end(&[worker]),
        "aider ({worker}) was stopped\n{why}"
    );
    // dispatch read LiteLLM's error from aider's output all the same.
    assert_eq!(record["outcome"]["is_error"], true, "{record}");
    assert!(
        record["outcome"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("litellm.InternalServerError")),
        "{record}"
    );
}

/// A worktree task: aider works in the worktree while its plan and output
/// stay in the main checkout's state folder, outside aider's working
/// folder. It ticks the plan, writes the output and edits `edited.txt` in
/// the worktree; `commit: auto` commits that edit on the task's branch.
fn a_worktree_task_ticks_its_plan_and_commits() {
    let aider = aider();
    let project = Project::new();
    let endpoint = Endpoint::start("openai_chat_endpoint.py", project.path(), "aider-worktree");
    write_manifest(&project, TIMEOUT, "    worktree: { commit: auto }\n");
    let run = run_sweep(&project, &aider, &endpoint);
    let why = context(&project, &run, &endpoint);
    let record = assert_all_ticked(&project, &run, TASK, 2, &why);
    assert_eq!(
        project.task_file(TASK, "output.md"),
        "Real CLI worker output\n"
    );
    let subject = format!("dispatch: {TASK} — {TASK}");
    assert_edited_only_in_its_worktree(&project, &run, TASK, ("made-by-aider", &subject), &why);
    // The commit holds aider's edit and nothing of aider's own.
    let files = common::git(
        project.path(),
        &[
            "show",
            "--name-only",
            "--format=",
            &format!("dispatch/{TASK}"),
        ],
    );
    assert_eq!(files, "edited.txt", "{why}");
    // Nothing was left in the worktree (no aider cache either), so it was
    // removed rather than kept as uncommitted.
    let branch = &record["branch"];
    assert_eq!(branch["uncommitted"], 0, "{branch}");
    assert_eq!(branch["folder"], "removed", "{branch}");
    assert!(!project
        .path()
        .join(".dispatch/worktrees")
        .join(TASK)
        .exists());
    assert_no_aider_traces(&project, project.path(), &why);
}

fn main() -> ExitCode {
    real_cli::main(
        &AIDER,
        include_str!("real_cli_aider.rs"),
        tier_tests![
            the_aider_backend_drives_real_aider_through_a_plan,
            an_api_error_fails_the_task_with_aiders_own_message,
            a_slow_answer_still_completes_the_task,
            a_malformed_answer_is_retried_until_the_timeout_stops_the_cli,
            a_worktree_task_ticks_its_plan_and_commits,
        ],
    )
}
