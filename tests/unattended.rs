//! Nobody to answer: without a terminal (stdin not one, or `CI` set) and
//! with no rule that answers, a question under the default policy ends its
//! task `blocked` after `questions.timeout` instead of waiting for CI's own
//! timeout; the line that shows the question says how to answer it.

mod common;

use std::process::{Output, Stdio};

use common::Project;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The worker would wait far longer than the test: only dispatch's own
/// decision can end the task with dispatch's reason.
const ASKER: &str = "version: 1
questions: { timeout: 300ms }
tasks:
  asker:
    command: [sh, -c, 'if [ -f resumed ]; then exec AGENT read-stdin check-all; else exec AGENT ask-timeout:60s \"ask:Which region?\"; fi']
    plan: [Pick a region]
";

#[test]
fn without_a_terminal_an_unanswered_question_blocks_and_resumes_once_answered() {
    let project = Project::new();
    project.manifest(ASKER);
    // Plain output (stderr is a pipe), stdin not a terminal, no `CI`.
    let output = project
        .command(&["run", "sweep.yaml", "--grace", "300ms"])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{err}");
    assert!(
        err.contains(
            "asker: asks (#1): Which region? · answer: dispatch answer asker --seq 1 \"…\""
        ),
        "{err}"
    );
    let record = project.task_json("asker");
    assert_eq!(record["status"], "blocked", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("was not answered in time")
            && reason.contains("dispatch answer asker --seq 1"),
        "{reason}"
    );

    let answer = project
        .command(&["answer", "asker", "--seq", "1", "eu-west-1"])
        .output()
        .expect("answer");
    assert_eq!(answer.status.code(), Some(0), "{}", stderr(&answer));
    std::fs::write(project.path().join("resumed"), "").expect("write");
    let resumed = project
        .command(&["resume", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_eq!(project.task_json("asker")["status"], "complete");
}

/// On a terminal but in CI (`CI` set): nobody is watching either.
#[test]
fn with_ci_set_a_terminal_does_not_count_as_someone_to_answer() {
    let project = Project::new();
    project.manifest(ASKER);
    let command_line = format!(
        "{} run sweep.yaml --grace 300ms --root {}",
        env!("CARGO_BIN_EXE_dispatch"),
        project.path().display()
    );
    let output = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .current_dir(project.path())
        .env("HOME", project.path())
        .env("CI", "true")
        .stdin(Stdio::piped())
        .output()
        .expect("script(1) from util-linux runs the command on a pseudo-terminal");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{screen}");
    let record = project.task_json("asker");
    assert_eq!(record["status"], "blocked", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("was not answered in time"),
        "{record}"
    );
}
