//! The real-CLI tier in the sandbox tier: the built-in `claude` backend
//! runs real Claude Code in a bubblewrap sandbox whose network is cut but
//! for the model endpoint (`network: { allow: [127.0.0.1:PORT] }`), against
//! the scripted Anthropic endpoint. The endpoint plays a worker that ticks
//! its plan, reports a finding, asks through `dispatch worker ask`, edits
//! and commits in its worktree, and finishes; all of it must reach
//! dispatch through the sandbox.
//!
//! Ignored where `claude` or bubblewrap cannot run; failed instead under
//! `DISPATCH_REQUIRE_REAL_CLIS=1`.

#[macro_use]
mod common;

use std::process::ExitCode;

use common::real_cli::{
    self, assert_whole_task_reached_dispatch, whole_task_manifest, write_manifest, Cli, Endpoint,
};
use common::{tier, Project};

const CLAUDE: Cli = Cli {
    program: "claude",
    local: "bin/claude",
};

const TASK: &str = "claude-task";

fn main() -> ExitCode {
    tier::main(
        &tier::REAL_CLIS,
        || {
            CLAUDE.find()?;
            dispatch::isolation::sandbox::probe()
                .map(drop)
                .map_err(|e| e.to_string())
        },
        include_str!("real_cli_sandbox.rs"),
        tier_tests![claude_code_runs_a_whole_task_in_the_sandbox],
    )
}

fn claude_code_runs_a_whole_task_in_the_sandbox() {
    let claude = CLAUDE.path();
    let project = Project::new();
    common::init_repo(project.path());
    let endpoint = Endpoint::start("anthropic_endpoint.py", project.path(), "sandbox");
    let port = endpoint.port;
    write_manifest(
        &project,
        &whole_task_manifest(
            "real-cli-sandbox",
            &format!(
                "defaults:\n  worktree: true\n  sandbox:\n    network:\n      allow: [127.0.0.1:{port}]\n"
            ),
            None,
            TASK,
            "sonnet",
            "Bash",
        ),
    );
    let scrub = |name: &str| {
        name.starts_with("ANTHROPIC_")
            || name.starts_with("CLAUDE")
            || name.ends_with("_PROXY")
            || name == "IS_SANDBOX"
    };
    let run = real_cli::run_sweep(
        &project,
        &claude,
        TASK,
        scrub,
        &[
            (
                "ANTHROPIC_BASE_URL",
                format!("http://127.0.0.1:{port}").into(),
            ),
            ("ANTHROPIC_API_KEY", "test".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", "1".into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
            ("HOME", project.path().into()),
        ],
    );
    let why = real_cli::context(&project, &run, &endpoint, TASK);
    // The high finding escalated: exit code 3.
    assert_eq!(run.status.code(), Some(3), "{why}");
    let record = project.task_json(TASK);
    assert_eq!(record["status"], "complete", "{record}\n{why}");
    assert_eq!(record["sandboxed"], true, "{record}");
    assert_whole_task_reached_dispatch(&project, &run, TASK, &record, &why);
    // Its commit is on its branch; the main checkout is untouched.
    assert_eq!(
        common::git(
            project.path(),
            &["show", &format!("dispatch/{TASK}:edited.txt")]
        ),
        "made-by-claude"
    );
    assert!(!project.path().join("edited.txt").exists(), "{why}");
    // Inside, the worker found the main checkout read-only.
    let results = endpoint_tool_results(&endpoint);
    assert!(
        results
            .iter()
            .any(|r| r.contains("main checkout: Read-only file system")),
        "{results:?}\n{why}"
    );
}

/// The text of every tool result Claude Code sent back to the model.
fn endpoint_tool_results(endpoint: &Endpoint) -> Vec<String> {
    let mut texts = Vec::new();
    for request in endpoint.requests() {
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
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
    }
    texts
}
