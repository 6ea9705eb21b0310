//! Judging a task by evidence, with the scripted test agent: a worker that
//! goes quiet is stopped as `stalled` (with everything it started), signs
//! of life keep it going, an agent CLI's API retries show in `dispatch
//! status`, and a CLI's claim of success without evidence fails its task.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{alive, Project};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ended<'a>(events: &'a [Value], task: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "task-ended" && e["task"] == task)
        .unwrap_or_else(|| panic!("no end of {task}: {events:?}"))
}

#[test]
fn a_silent_worker_is_stopped_as_stalled_with_everything_it_started() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  quiet:
    command: [sh, -c, 'sleep 300 & echo $! > child.pid; exec AGENT print:working check hang']
    plan: [First, Second]
    idle_timeout: 1s
    timeout: 90s
",
    );
    let started = Instant::now();
    let (output, events) = project.run(&[]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped by its idle timeout, not its timeout"
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let end = ended(&events, "quiet");
    assert_eq!(end["status"], "stalled", "{end}");
    let record = project.task_json("quiet");
    assert_eq!(record["status"], "stalled", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no output, plan change or CLI event for")
            && reason.contains("its idle_timeout is 1.0s"),
        "{reason}"
    );
    // Its last sign of life: the plan change after the output, or the
    // output, whichever the runner saw last.
    let what = &record["last_activity"]["what"];
    assert!(what == "plan-change" || what == "output", "{record}");
    assert!(record["last_activity"]["at"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    assert!(record["last_activity"]["quiet_ms"].as_u64() >= Some(1000));
    // The whole process group went with it.
    let child: i32 = std::fs::read_to_string(project.path().join("child.pid"))
        .expect("child.pid")
        .trim()
        .parse()
        .expect("pid");
    wait_for("the worker's child to be gone", || !alive(child));
    assert!(events.iter().any(|e| e["event"] == "warning"
        && e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stalled: "))));
    // The reports say so.
    let run = std::fs::read_dir(project.path().join(".dispatch/runs"))
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .path();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap_or_default())
            .unwrap_or(Value::Null);
    let task = &report["tasks"][0];
    assert_eq!(task["status"], "stalled", "{report}");
    assert_eq!(task["last_activity"], record["last_activity"], "{report}");
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap_or_default();
    assert!(markdown.contains("Last sign of life"), "{markdown}");
}

#[test]
fn a_worker_that_prints_every_so_often_is_not_stalled() {
    let project = Project::new();
    // Quiet for 0.3 s at a time, for about 3 s in all: far longer than its
    // idle timeout, never quiet for as long.
    project.manifest(
        "version: 1
tasks:
  chatty:
    command: [sh, -c, 'for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 0.3; done; exec AGENT check-all']
    plan: [Only]
    idle_timeout: 2s
",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ended(&events, "chatty")["status"], "complete");
}

#[test]
fn plan_changes_count_as_signs_of_life() {
    let project = Project::new();
    // No output at all; an item ticked every 1.2 s, for about 4 s.
    project.manifest(
        "version: 1
tasks:
  ticking:
    command: [AGENT, sleep:1200ms, check, sleep:1200ms, check, sleep:1200ms, check, sleep:600ms]
    plan: [One, Two, Three]
    idle_timeout: 3s
",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ended(&events, "ticking")["status"], "complete");
}

#[test]
fn zero_turns_the_idle_timeout_off() {
    let project = Project::new();
    project.manifest(
        "version: 1
defaults:
  idle_timeout: 1s
tasks:
  patient:
    command: [AGENT, sleep:2500ms, check-all]
    plan: [Only]
    idle_timeout: 0s
",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ended(&events, "patient")["status"], "complete");
}

#[test]
fn a_bad_idle_timeout_is_a_located_error() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  t:
    command: [AGENT, check-all]
    plan: [Only]
    idle_timeout: soon
",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(["validate", "sweep.yaml"])
        .current_dir(project.path())
        .output()
        .expect("validate runs");
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(
        said.contains("idle_timeout") && said.contains("sweep.yaml:"),
        "{said}"
    );
}

/// A backend that prints Claude Code's stream-json; `vars.script` is the
/// agent's script.
const FAKE_CLAUDE: &str = "backends:
  fake-claude:
    command: [sh, -c, 'exec {{ vars.script }}']
    events: claude
";

#[test]
fn an_api_retry_shows_in_status_while_it_lasts() {
    let project = Project::new();
    let retry = |n: u32| {
        format!(
            "'print:{{\"type\":\"system\",\"subtype\":\"api_retry\",\"attempt\":{n},\"max_retries\":10,\"retry_delay_ms\":500,\"error_status\":529,\"error\":\"rate_limit\"}}'"
        )
    };
    let answer = "'print:{\"type\":\"assistant\",\"message\":{\"id\":\"m1\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":5}}}'";
    let result = "'print:{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1,\"result\":\"Done.\",\"usage\":{\"input_tokens\":10,\"output_tokens\":5}}'";
    project.manifest(&format!(
        "version: 1
{FAKE_CLAUDE}tasks:
  retrying:
    backend: fake-claude
    plan: [Only]
    vars:
      script: AGENT {} {} {} 'wait-file:go' {answer} check-all {result}
",
        retry(1),
        retry(2),
        retry(3)
    ));
    let run = Stopped(Some(
        project
            .command(&["run", "sweep.yaml", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dispatch runs"),
    ));
    let task_json = project.path().join(".dispatch/tasks/retrying/task.json");
    wait_for("the retry in task.json", || {
        std::fs::read_to_string(&task_json).is_ok_and(|t| t.contains("\"attempt\": 3"))
    });
    let status = project.command(&["status"]).output().expect("status runs");
    let shown = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        shown.contains("retrying: API 529, attempt 3/10"),
        "{shown}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::write(project.path().join("go"), "").expect("go");
    let output = run.wait();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let retries: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "api-retry")
        .collect();
    assert_eq!(retries.len(), 3, "{events:?}");
    assert_eq!(retries[2]["summary"], "retrying: API 529, attempt 3/10");
    assert_eq!(retries[2]["attempt"], 3);
    // The model answered: the retry is over, and the record says so.
    let record = project.task_json("retrying");
    assert_eq!(record["status"], "complete", "{record}");
    assert!(record.get("api_retry").is_none(), "{record}");
}

/// A `dispatch run` that is stopped (SIGTERM, so it stops its worker) if
/// the test fails before it ends.
struct Stopped(Option<std::process::Child>);

impl Stopped {
    fn wait(mut self) -> std::process::Output {
        let child = self.0.take().expect("a run");
        child.wait_with_output().expect("run ends")
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(child) = &self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signals the dispatch process this test started.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
    }
}

#[test]
fn a_rate_limited_success_claim_fails_the_task_whatever_the_exit_code() {
    let project = Project::new();
    let limited = "'print:{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1,\"result\":\"Claude AI usage limit reached|1760000000\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}'";
    project.manifest(&format!(
        "version: 1
{FAKE_CLAUDE}tasks:
  claimed:
    backend: fake-claude
    plan: [Only]
    vars:
      script: AGENT check-all done {limited}
"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let end = ended(&events, "claimed");
    assert_eq!(end["status"], "failed", "{end}");
    assert_eq!(
        end["reason"],
        "Claude Code claimed success, but its result is an API error: Claude AI usage limit reached|1760000000"
    );
}
