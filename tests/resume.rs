//! Resume, cancel and partial runs: `dispatch resume` after a `kill -9`,
//! `dispatch cancel` from a second process, and `--only`, `--skip`,
//! `--tag`.

mod common;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::Project;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn status_of(project: &Project, id: &str) -> String {
    project.task_json(id)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn runs_log(project: &Project) -> Vec<String> {
    std::fs::read_to_string(project.path().join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// `dispatch run` in the background.
fn spawn_run(project: &Project) -> Child {
    project
        .command(&["run", "sweep.yaml", "--json", "--grace", "300ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dispatch starts")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn task_status(project: &Project, id: &str) -> Option<String> {
    let text = project.task_file(id, "task.json");
    let value: Value = serde_json::from_str(&text).ok()?;
    value["status"].as_str().map(str::to_owned)
}

/// Kill a worker's whole process group, as a person cleaning up after a
/// crash would.
fn kill_group(project: &Project, id: &str) {
    let pid = project.task_json(id)["pid"].as_i64().expect("pid recorded");
    let group = i32::try_from(pid).expect("a pid");
    assert!(group > 1);
    // SAFETY: a negative pid signals that process group only.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

const CRASHY_SWEEP: &str = "version: 1
concurrency: 2
tasks:
  alpha:
    command: [sh, -c, 'echo alpha >> runs.log; exec AGENT finding:high:Alpha-found check-all']
    plan: [Work]
    priority: high
  beta:
    command: [sh, -c, 'echo beta >> runs.log; exec AGENT check-all']
    plan: [Work]
    priority: high
  gamma:
    command: [sh, -c, 'echo gamma >> runs.log; if [ -f resumed ]; then exec AGENT check-all; else exec AGENT check hang; fi']
    plan: [First, Second]
  delta:
    needs: gamma
    command: [sh, -c, 'echo delta >> runs.log; exec AGENT check-all']
    plan: [Work]
";

#[test]
fn resume_after_kill_9_finishes_the_sweep_without_running_a_finished_task_twice() {
    let project = Project::new();
    project.manifest(CRASHY_SWEEP);
    let mut child = spawn_run(&project);
    wait_for("gamma to check its first item", || {
        project
            .task_file("gamma", "plan.md")
            .contains("- [x] First")
            && task_status(&project, "alpha").as_deref() == Some("complete")
            && task_status(&project, "beta").as_deref() == Some("complete")
    });
    child.kill().expect("kill -9 dispatch");
    let _ = child.wait();
    kill_group(&project, "gamma");
    std::fs::write(project.path().join("resumed"), "").expect("write");

    let output = project
        .command(&["resume", "--json", "--grace", "300ms"])
        .output()
        .expect("resume");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        sorted(runs_log(&project)),
        ["alpha", "beta", "delta", "gamma", "gamma"],
        "alpha and beta never ran again"
    );
    for id in ["alpha", "beta", "gamma", "delta"] {
        assert_eq!(status_of(&project, id), "complete", "{id}");
    }
    let gamma = project.task_json("gamma");
    assert_eq!(
        gamma["attempts"].as_array().map(Vec::len),
        Some(2),
        "{gamma}"
    );
    assert!(project
        .task_file("gamma", "plan.md")
        .contains("- [x] First — done by test agent"));
    let alpha = project.task_json("alpha");
    assert_eq!(
        alpha["findings"].as_array().map(Vec::len),
        Some(1),
        "the finding is kept once"
    );

    // The same run, resumed: one run folder, its report covering it all.
    let runs: Vec<_> = std::fs::read_dir(project.path().join(".dispatch/runs"))
        .expect("runs")
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let run_dir = runs[0].path();
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(run["status"], "complete");
    assert_eq!(run["resumed_at"].as_array().map(Vec::len), Some(1));
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("report.json")).expect("report.json"),
    )
    .expect("json");
    assert_eq!(report["totals"]["statuses"]["complete"], 4, "{report}");
    assert_eq!(report["totals"]["findings"]["high"], 1);

    // Twice is harmless.
    let again = project.command(&["resume"]).output().expect("resume");
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stderr(&again).contains("nothing to resume"),
        "{}",
        stderr(&again)
    );
    assert_eq!(runs_log(&project).len(), 5);
}

#[test]
fn a_blocked_task_goes_on_once_its_question_is_answered() {
    let project = Project::new();
    project.manifest(
        "version: 1
questions: { on_unanswered: block, timeout: 200ms }
tasks:
  asker:
    command: [sh, -c, 'echo asker >> runs.log; if [ -f resumed ]; then exec AGENT read-stdin check-all; else exec AGENT ask-timeout:5s \"ask:Which region?\"; fi']
    plan: [Pick a region]
",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(status_of(&project, "asker"), "blocked");
    // Nobody answered yet: resume has nothing to do.
    let early = project.command(&["resume"]).output().expect("resume");
    assert!(
        stderr(&early).contains("nothing to resume"),
        "{}",
        stderr(&early)
    );
    let answer = project
        .command(&["answer", "asker", "eu-west-1"])
        .output()
        .expect("answer");
    assert_eq!(answer.status.code(), Some(0), "{}", stderr(&answer));
    std::fs::write(project.path().join("resumed"), "").expect("write");
    let output = project
        .command(&["resume", "--json"])
        .output()
        .expect("resume");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(status_of(&project, "asker"), "complete");
    let record = project.task_json("asker");
    assert_eq!(record["questions"][0]["answer"], "eu-west-1", "{record}");
    let prompt = project.task_file("asker", "stdin.txt");
    assert!(
        prompt.contains("Which region? → eu-west-1"),
        "the answer reaches the worker: {prompt}"
    );
}

#[test]
fn cancel_from_a_second_process_stops_one_task_then_the_run() {
    let project = Project::new();
    project.manifest(
        "version: 1
concurrency: 2
tasks:
  xray:
    command: [AGENT, check, hang]
    plan: [One, Two]
  yankee:
    command: [AGENT, check, hang]
    plan: [One, Two]
  zulu:
    command: [AGENT, check-all]
    plan: [One]
    priority: low
",
    );
    let mut child = spawn_run(&project);
    wait_for("both workers", || {
        task_status(&project, "xray").as_deref() == Some("running")
            && task_status(&project, "yankee").as_deref() == Some("running")
    });
    let output = project
        .command(&["cancel", "--task", "xray"])
        .output()
        .expect("cancel");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("asked run"));
    wait_for("xray to be cancelled", || {
        task_status(&project, "xray").as_deref() == Some("cancelled")
    });
    // zulu takes the free slot and completes; yankee goes on.
    wait_for("zulu", || {
        task_status(&project, "zulu").as_deref() == Some("complete")
    });
    assert_eq!(task_status(&project, "yankee").as_deref(), Some("running"));
    let output = project.command(&["cancel"]).output().expect("cancel");
    assert_eq!(output.status.code(), Some(0));
    let status = child.wait().expect("dispatch ends");
    assert_eq!(
        status.code(),
        Some(130),
        "a cancelled run ends as interrupted"
    );
    assert_eq!(status_of(&project, "yankee"), "cancelled");
    assert_eq!(
        project.task_json("xray")["reason"],
        "cancelled by `dispatch cancel`"
    );
    assert!(
        project.task_file("xray", "plan.md").contains("- [x] One"),
        "its plan is kept"
    );
}

#[test]
fn cancel_stops_the_workers_a_killed_run_left() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  orphan:\n    command: [AGENT, check, hang]\n    plan: [One, Two]\n",
    );
    let mut child = spawn_run(&project);
    wait_for("the worker", || {
        project.task_file("orphan", "plan.md").contains("- [x] One")
            && task_status(&project, "orphan").as_deref() == Some("running")
    });
    child.kill().expect("kill -9 dispatch");
    let _ = child.wait();
    let pid = project.task_json("orphan")["pid"].as_i64().expect("pid") as i32;
    let output = project.command(&["cancel"]).output().expect("cancel");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("stopped the workers it left: orphan"));
    wait_for("the worker to be gone", || {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) != 0 }
    });
    assert_eq!(status_of(&project, "orphan"), "cancelled");
}

#[test]
fn only_skip_and_tag_run_part_of_a_sweep_and_need_their_needs() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  base:
    command: [sh, -c, 'echo base >> runs.log; exec AGENT check-all']
    plan: [Work]
  top:
    needs: base
    command: [sh, -c, 'echo top >> runs.log; exec AGENT check-all']
    plan: [Work]
    tags: [web]
  side:
    command: [sh, -c, 'echo side >> runs.log; exec AGENT check-all']
    plan: [Work]
    tags: [web]
",
    );
    let (output, _) = project.run(&["--only", "top"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("task `top` needs `base`, which is not selected"),
        "{text}"
    );
    assert!(text.contains("--only base"), "{text}");
    assert!(runs_log(&project).is_empty(), "nothing ran");

    let (output, _) = project.run(&["--only", "base", "--only", "top"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(runs_log(&project), ["base", "top"]);

    let (output, _) = project.run(&["--skip", "top", "--skip", "base"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(runs_log(&project).last().map(String::as_str), Some("side"));

    let (output, _) = project.run(&["--tag", "web", "--skip", "top"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(runs_log(&project).len(), 4);

    let (output, _) = project.run(&["--only", "bsae"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("did you mean `base`?"),
        "{}",
        stderr(&output)
    );
}
