//! `dispatch status` on a finished run reads the run's index
//! (`runs/<run>/index.json`, written when the run ends) and only the
//! folders of the tasks it shows, so a 50,000-task run answers in a blink;
//! it says the same as reading every folder, and a run the index no longer
//! speaks for (resumed since, never concluded) is read from its folders.

mod common;

use std::path::PathBuf;

use serde_json::Value;

use common::Project;

/// 25 tasks (more than status lists in full): one fails, the rest
/// complete.
fn finished_run() -> Project {
    let project = Project::new();
    project.manifest(
        "version: 1\nconcurrency: 4\ntasks:\n  t:\n    matrix: { n: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, u, v, w, x, y] }\n    command: [sh, -c, ': > \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Nothing]\n  broken:\n    command: [AGENT, 'fail-item:disk full']\n    plan: [Work]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    project
}

fn run_dir(project: &Project) -> PathBuf {
    let runs = project.path().join(".dispatch/runs");
    let entry = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .next()
        .expect("one run");
    entry.path()
}

fn status(project: &Project, args: &[&str]) -> String {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    let output = project.command(&all).output().expect("status runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What status says, with and without each filter.
fn views(project: &Project) -> Vec<String> {
    [
        &[][..],
        &["--failed"],
        &["--status", "complete"],
        &["--task", "t-?"],
    ]
    .iter()
    .map(|args| status(project, args))
    .collect()
}

#[test]
fn the_index_lists_every_task_with_its_status_and_attention() {
    let project = finished_run();
    let text = std::fs::read_to_string(run_dir(&project).join("index.json")).expect("index.json");
    let index: Value = serde_json::from_str(&text).expect("json");
    let tasks = index["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 25);
    let broken = tasks
        .iter()
        .find(|t| t["id"] == "broken")
        .expect("broken is listed");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["attention"], true);
    let fine = tasks.iter().find(|t| t["id"] == "t-a").expect("t-a");
    assert_eq!(fine["status"], "complete");
    assert!(fine.get("attention").is_none(), "{fine}");
    let run: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(&project).join("run.json")).expect("run.json"),
    )
    .expect("json");
    assert_eq!(index["ended_at"], run["ended_at"]);
}

#[test]
fn status_from_the_index_says_what_reading_every_folder_says() {
    let project = finished_run();
    let with_index = views(&project);
    assert!(
        with_index[0].contains("25 tasks: 24 complete, 1 failed"),
        "{}",
        with_index[0]
    );
    assert!(
        with_index[0].contains("● broken — FAILED"),
        "{}",
        with_index[0]
    );
    std::fs::remove_file(run_dir(&project).join("index.json")).expect("remove the index");
    assert_eq!(views(&project), with_index);
}

#[test]
fn status_of_a_finished_run_reads_only_the_tasks_it_shows() {
    let project = finished_run();
    let before = status(&project, &[]);
    // A complete task's record made unreadable: reading every folder would
    // leave it out (24 tasks); the index still counts it, and it is not
    // shown, so its folder is never read.
    let record = project.path().join(".dispatch/tasks/t-a/task.json");
    std::fs::write(&record, "not json").expect("spoil t-a's record");
    assert_eq!(status(&project, &[]), before);
    // A filter that shows it reads its folder, and finds nothing there.
    let shown = status(&project, &["--task", "t-a"]);
    assert!(shown.contains("no task matches"), "{shown}");
}

#[test]
fn a_run_resumed_since_its_index_was_written_is_read_from_its_folders() {
    let project = finished_run();
    // As a resume would: a task's record changes and run.json says it was
    // resumed, with the index left from the first end.
    let record_path = project.path().join(".dispatch/tasks/t-b/task.json");
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).expect("t-b")).expect("json");
    record["status"] = Value::from("timed-out");
    record["reason"] = Value::from("no end within 1s");
    std::fs::write(&record_path, record.to_string()).expect("write t-b");
    let run_path = run_dir(&project).join("run.json");
    let mut run: Value =
        serde_json::from_str(&std::fs::read_to_string(&run_path).expect("run.json")).expect("json");
    run["resumed_at"] = serde_json::json!(["2026-12-03T10:00:00.000Z"]);
    std::fs::write(&run_path, run.to_string()).expect("write run.json");
    let text = status(&project, &[]);
    assert!(
        text.contains("● t-b — TIMED-OUT: no end within 1s"),
        "{text}"
    );
    assert!(text.contains("23 complete"), "{text}");
}

#[test]
fn a_run_that_never_concluded_ignores_an_index() {
    let project = finished_run();
    // As a kill -9 during a resume leaves it: no end in run.json.
    let run_path = run_dir(&project).join("run.json");
    let mut run: Value =
        serde_json::from_str(&std::fs::read_to_string(&run_path).expect("run.json")).expect("json");
    run["ended_at"] = Value::Null;
    run["exit_code"] = Value::Null;
    run["status"] = Value::from("running");
    std::fs::write(&run_path, run.to_string()).expect("write run.json");
    let record_path = project.path().join(".dispatch/tasks/t-c/task.json");
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).expect("t-c")).expect("json");
    record["status"] = Value::from("running");
    record["pid"] = Value::Null;
    std::fs::write(&record_path, record.to_string()).expect("write t-c");
    let text = status(&project, &[]);
    assert!(text.contains("interrupted (its process is gone)"), "{text}");
    assert!(
        text.contains("● t-c — CANCELLED: the run's process is gone"),
        "{text}"
    );
}
