//! `dispatch worker ask|finding`: the worker side of the protocol, for
//! agents that would rather run a command than write files. They find
//! their task from the `DISPATCH_*` environment the runner sets.

use std::path::PathBuf;
use std::time::Duration;

use super::{exit, WorkerArgs, WorkerCommand};
use crate::domain::checklist::{self, ItemState};
use crate::ipc::findings::{self, Finding};
use crate::ipc::questions;
use crate::util::clock;

/// How often `worker ask` looks for its answer.
const ANSWER_POLL: Duration = Duration::from_millis(50);

pub fn run(args: &WorkerArgs) -> u8 {
    let result = match &args.command {
        WorkerCommand::Sandboxed { forward, command } => {
            return super::sandboxed::run(forward, command)
        }
        WorkerCommand::Ask { question, timeout } => ask(question, *timeout),
        WorkerCommand::Finding {
            severity,
            title,
            location,
            detail,
        } => finding(Finding {
            severity: *severity,
            title: title.clone(),
            location: location.clone(),
            detail: detail.clone(),
            ts: Some(clock::now()),
        }),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            exit::USAGE
        }
    }
}

fn env_path(name: &str) -> Result<PathBuf, String> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| format!("{name} is not set; `dispatch worker` runs inside a worker that `dispatch run` started"))
}

/// Ask, wait, print the answer. On timeout the current plan item is marked
/// `[?]` and the question goes into `context.md`, so a later attempt (or a
/// person) knows where the worker stopped.
fn ask(question: &str, timeout: Option<Duration>) -> Result<u8, String> {
    let ipc = env_path("DISPATCH_IPC_DIR")?;
    let seq = questions::ask(&ipc, question)
        .map_err(|e| format!("cannot write the question into {}: {e}", ipc.display()))?;
    match questions::wait_for_answer(&ipc, seq, timeout, ANSWER_POLL) {
        Ok(Some(answer)) => {
            println!("{answer}");
            Ok(exit::OK)
        }
        Ok(None) => {
            mark_blocked(question);
            eprintln!("no answer within the timeout; the current item is marked [?] and the question is in context.md");
            Ok(exit::UNANSWERED)
        }
        Err(e) => Err(format!("cannot read the answer: {e}")),
    }
}

fn mark_blocked(question: &str) {
    if let Ok(plan_path) = env_path("DISPATCH_PLAN") {
        if let Ok(text) = std::fs::read_to_string(&plan_path) {
            let plan = checklist::parse(&text);
            let line = plan.current().map(|item| item.line);
            if let Some(updated) = line
                .and_then(|l| checklist::set_state(&text, l, ItemState::Blocked, Some(question)))
            {
                let _ = crate::state::fsutil::write_atomic(&plan_path, updated.as_bytes());
            }
        }
    }
    if let Ok(task_dir) = env_path("DISPATCH_TASK_DIR") {
        let path = task_dir.join("context.md");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("\nWaiting for an answer to: {question}\n"));
        let _ = crate::state::fsutil::write_atomic(&path, text.as_bytes());
    }
}

fn finding(finding: Finding) -> Result<u8, String> {
    let task_dir = env_path("DISPATCH_TASK_DIR")?;
    let path = task_dir.join("findings.jsonl");
    findings::append(&path, &finding)
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
    Ok(exit::OK)
}
