//! `dispatch answer` and `dispatch questions`: answering workers from any
//! terminal, while `dispatch run` goes on elsewhere.

use std::path::PathBuf;

use serde::Serialize;

use super::{exit, print_stdout, AnswerArgs, QuestionsArgs};
use crate::ipc::questions::{self, AnswerError};
use crate::record::snapshot;
use crate::state::StateDir;

/// A question still waiting, for `dispatch questions`.
#[derive(Debug, Serialize)]
pub struct Waiting {
    pub task: String,
    pub seq: u32,
    pub question: String,
    pub asked_at: Option<String>,
    pub priority: String,
    pub model: Option<String>,
}

fn state(root: &Option<PathBuf>) -> StateDir {
    super::state_dir(root.as_ref())
}

/// Every question waiting in the latest run (or `run`), higher-priority
/// tasks first, then oldest first.
pub fn waiting(state: &StateDir, run: Option<&str>) -> Result<Vec<Waiting>, String> {
    let snapshot = snapshot::load(state, run).map_err(|e| e.to_string())?;
    let redactor = snapshot::redactor(&snapshot.run);
    let mut out = Vec::new();
    for task in &snapshot.tasks {
        let ipc = state.task_dir(&task.record.id).join("ipc");
        for q in redactor.scrub(questions::waiting(&ipc).unwrap_or_default()) {
            out.push((
                task.record.rank,
                Waiting {
                    task: task.record.id.clone(),
                    seq: q.seq,
                    question: q.text,
                    asked_at: q.asked_at.map(crate::util::clock::rfc3339),
                    priority: task.record.priority.to_string(),
                    model: task.record.model.clone(),
                },
            ));
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.asked_at.cmp(&b.1.asked_at)));
    Ok(out.into_iter().map(|(_, w)| w).collect())
}

pub fn questions(args: &QuestionsArgs) -> u8 {
    let state = state(&args.root);
    match waiting(&state, args.run.as_deref()) {
        Ok(list) if args.json => {
            let mut text = crate::util::escape::json_for_terminal(
                &serde_json::to_string_pretty(&list).unwrap_or_default(),
            );
            text.push('\n');
            print_stdout(&text);
            exit::OK
        }
        Ok(list) if list.is_empty() => {
            print_stdout("No questions are waiting.\n");
            exit::OK
        }
        Ok(list) => {
            let mut text = String::new();
            for w in &list {
                let model = w
                    .model
                    .as_deref()
                    .map(|m| format!(", {m}"))
                    .unwrap_or_default();
                let line = format!(
                    "{} #{} ({}{model}): {}",
                    w.task, w.seq, w.priority, w.question
                );
                text.push_str(&crate::util::escape::one_line(&line));
                text.push('\n');
            }
            text.push_str("Answer with: dispatch answer TASK [--seq N] \"TEXT\"\n");
            print_stdout(&text);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

pub fn answer(args: &AnswerArgs) -> u8 {
    let state = state(&args.root);
    let ipc = state.task_dir(&args.task).join("ipc");
    if !state.task_dir(&args.task).is_dir() {
        eprintln!(
            "error: no task `{}` under {}\n  = help: `dispatch questions` lists what is waiting",
            args.task,
            state.tasks_dir().display()
        );
        return exit::USAGE;
    }
    let seq = match args.seq {
        Some(seq) => seq,
        None => match questions::waiting(&ipc).unwrap_or_default().first() {
            Some(q) => q.seq,
            None => {
                eprintln!("error: task `{}` has no question waiting\n  = help: `dispatch questions` lists what is waiting", args.task);
                return exit::USAGE;
            }
        },
    };
    match questions::answer(&ipc, seq, &args.text) {
        Ok(()) => {
            println!("answered {} #{seq}", args.task);
            exit::OK
        }
        Err(AnswerError::AlreadyAnswered(existing)) => {
            eprintln!(
                "error: {} #{seq} was already answered: {}",
                args.task,
                crate::util::escape::one_line(&existing)
            );
            exit::USAGE
        }
        Err(AnswerError::NoSuchQuestion) => {
            eprintln!("error: task `{}` has no question #{seq}\n  = help: `dispatch questions` lists what is waiting", args.task);
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
