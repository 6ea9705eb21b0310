//! Where a run's output goes and how much of it there is: `--json` owns
//! stdout (also on GitHub Actions), the engine writes only through its
//! reporters, and the end summary and `dispatch status` scale with what
//! needs attention rather than with the size of the sweep.

mod common;

use std::time::Duration;

use dispatch::cli::status::{render, Filter};
use dispatch::domain::status::TaskStatus;
use dispatch::events::summary::Summary;
use dispatch::manifest::types::Severity;
use dispatch::record::snapshot::{Snapshot, TaskView};
use dispatch::record::{RunRecord, TaskRecord};
use serde_json::{json, Value};

use common::Project;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn json_owns_stdout_on_github_actions_and_annotations_still_appear() {
    let project = Project::new();
    let job_summary = project.path().join("summary.md");
    project.manifest(
        "version: 1
tasks:
  hostile:
    command: [sh, -c, '\"$DISPATCH_BIN\" worker finding --severity high \"leaky, bad: thing\" --location \"src/a.rs:3\"; touch \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Look]
  broken:
    command: [AGENT, 'fail-item:disk full']
    plan: [Work]
",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--json"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &job_summary)
        .output()
        .expect("dispatch runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.lines().count() >= 4, "{stdout}");
    for line in stdout.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON on stdout: {line:?}"
        );
    }
    let stderr = text(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "::error file=src/a.rs,line=3,title=hostile high::leaky, bad: thing"),
        "the annotation goes to stderr: {stderr}"
    );
    let summary = std::fs::read_to_string(&job_summary).expect("job summary");
    assert!(summary.contains("# Sweep"), "{summary}");
}

#[test]
fn annotations_go_to_stdout_without_json() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  hostile:
    command: [sh, -c, '\"$DISPATCH_BIN\" worker finding --severity low \"odd\" --location \"src/b.rs\"; touch \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Look]
",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("dispatch runs");
    assert_eq!(
        text(&output.stdout),
        "::warning file=src/b.rs,title=hostile low::odd\n"
    );
}

/// The engine says what happened through its reporters and never prints:
/// a stray `println!` would corrupt `--json`, an `eprintln!` bypass
/// `--quiet` and the event log.
#[test]
fn the_engine_never_prints() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sweep");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/sweep") {
        let path = entry.expect("entry").path();
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if ["println!", "print!", "eprintln!", "eprint!", "dbg!"]
                .iter()
                .any(|m| code.contains(m))
            {
                offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// 5,000 tasks that touch `.done` at once, three of which fail: the end
/// summary is a handful of lines and names the three.
#[test]
fn a_5000_task_sweep_with_3_failures_ends_with_a_short_summary() {
    let project = Project::new();
    let values: Vec<String> = (0..250).map(|i| i.to_string()).collect();
    let mut manifest = String::from("version: 1\nconcurrency: 64\ntasks:\n");
    for group in 0..20 {
        manifest.push_str(&format!(
            "  g{group}:\n    matrix: {{ n: [{}] }}\n    command: [sh, -c, 'case \"$DISPATCH_TASK_ID\" in g0-7|g9-100|g19-249) exit 1;; esac; : > \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Nothing]\n",
            values.join(", ")
        ));
    }
    project.manifest(&manifest);
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("dispatch runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 30, "{} lines:\n{stderr}", lines.len());
    assert!(
        stderr.contains("Sweep sweep: 4997 complete, 3 failed in"),
        "{stderr}"
    );
    for id in ["g0-7", "g9-100", "g19-249"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("✗ {id} — failed"))),
            "{id} is named:\n{stderr}"
        );
    }
}

/// A task's record as `task.json` holds it.
fn record(id: &str, status: &str, extra: Value) -> TaskRecord {
    let mut value = json!({
        "id": id, "run_id": "20261203-100000-abcd", "title": id,
        "status": status, "reason": null, "model": null, "backend": "command",
        "worktree": false, "priority": "normal", "needs": [], "argv": ["sh"],
        "pid": null, "started_at": null, "ended_at": null, "duration_ms": 10,
        "exit": null, "items": { "total": 1, "done": 1, "pending": 0, "in_progress": 0, "blocked": 0, "failed": 0 }, "current_item": null,
        "usage": { "turns": 1, "input_tokens": 100, "output_tokens": 20,
                   "cached_input_tokens": 0, "cost_usd": 0.001 },
        "outcome": null, "attempts": [],
    });
    if let (Some(base), Some(more)) = (value.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).expect("a task record")
}

fn attempt(number: u32, status: &str) -> Value {
    json!({ "number": number, "started_at": "t", "ended_at": "t", "pid": 1,
            "exit": null, "status": status, "reason": null, "duration_ms": 5 })
}

/// A 1,000-task run: a handful failed or worse, one flaky, one blocked,
/// one complete with a high finding, one with only a low one.
fn thousand() -> Vec<TaskRecord> {
    (0..1000)
        .map(|i| {
            let id = format!("task-{i:04}");
            match i {
                17 => record(&id, "failed", json!({ "reason": "item 1 failed: disk full", "model": "opus" })),
                233 => record(&id, "timed-out", json!({ "reason": "no end within 10m" })),
                400 => record(&id, "budget-exceeded", json!({ "reason": "spent $5.10 of $5.00" })),
                512 => record(&id, "skipped", json!({ "reason": "needs task-0017, which ended failed" })),
                640 => record(&id, "blocked", json!({ "reason": "item 1 blocked: staging or prod?" })),
                700 => record(&id, "complete", json!({
                    "reason": "every item checked",
                    "attempts": [attempt(1, "failed"), attempt(2, "complete")],
                })),
                801 => record(&id, "complete", json!({
                    "reason": "every item checked",
                    "findings": [{ "severity": "high", "title": "SQL built from input", "location": "src/db.rs:9" }],
                })),
                802 => record(&id, "complete", json!({
                    "reason": "every item checked",
                    "findings": [{ "severity": "low", "title": "typo" }],
                })),
                _ => record(&id, "complete", json!({ "reason": "every item checked" })),
            }
        })
        .collect()
}

fn summary(records: &[TaskRecord], verbose: bool) -> String {
    let records = &records.iter().cloned().map(Box::new).collect::<Vec<_>>();
    Summary {
        name: "big",
        run_id: "20261203-100000-abcd",
        records,
        escalations: &[],
        duration: Duration::from_secs(83),
        exit_code: 1,
        severity: Severity::High,
        verbose,
        tails: &[],
    }
    .text()
}

#[test]
fn the_summary_of_a_1000_task_run_lists_what_needs_attention() {
    insta::assert_snapshot!(summary(&thousand(), false));
}

#[test]
fn verbose_and_small_summaries_list_every_task() {
    let records = thousand();
    assert_eq!(summary(&records, true).lines().count(), 1000 + 2);
    let few: Vec<TaskRecord> = records[15..20].to_vec();
    let text = summary(&few, false);
    assert!(text.contains("✓ task-0015 — complete"), "{text}");
    assert!(text.contains("✗ task-0017 (opus) — failed"), "{text}");
}

fn snapshot_of(records: Vec<TaskRecord>) -> Snapshot {
    let run: RunRecord = serde_json::from_value(json!({
        "run_id": "20261203-100000-abcd", "name": "big", "manifest": "sweep.yaml",
        "root": "/project", "pid": 1, "started_at": "2026-12-03T10:00:00.000Z",
        "ended_at": "2026-12-03T10:01:23.000Z", "concurrency": 8, "vars": [],
        "tasks": records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "status": "failed", "exit_code": 1, "attention_severity": "high",
    }))
    .expect("a run record");
    Snapshot {
        run,
        live: false,
        orphaned: 0,
        tasks: records
            .into_iter()
            .map(|record| TaskView {
                record: Box::new(record),
                plan: None,
                waiting: Vec::new(),
            })
            .collect(),
    }
}

#[test]
fn status_of_a_1000_task_run_shows_counts_and_what_needs_attention() {
    insta::assert_snapshot!(render(&snapshot_of(thousand()), &Filter::default()));
}

#[test]
fn status_filters_by_failure_status_and_id_glob() {
    let snapshot = snapshot_of(thousand());
    let failed = render(
        &snapshot,
        &Filter {
            failed: true,
            ..Filter::default()
        },
    );
    let shown: Vec<&str> = failed.lines().filter(|l| l.starts_with("● ")).collect();
    assert_eq!(shown.len(), 4, "{failed}");
    let blocked = render(
        &snapshot,
        &Filter {
            statuses: vec![TaskStatus::Blocked],
            ..Filter::default()
        },
    );
    assert!(blocked.contains("● task-0640 — BLOCKED"), "{blocked}");
    assert_eq!(blocked.matches("● ").count(), 1, "{blocked}");
    let glob = render(
        &snapshot,
        &Filter {
            tasks: vec!["task-09?9".to_owned(), "task-000*".to_owned()],
            ..Filter::default()
        },
    );
    assert_eq!(glob.matches("● ").count(), 10 + 10, "{glob}");
}

#[test]
fn status_refuses_a_task_filter_that_matches_nothing() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  audit:\n    command: [AGENT, check-all]\n    plan: [Look]\n",
    );
    let (run, _) = project.run(&[]);
    assert_eq!(run.status.code(), Some(0));
    let output = project
        .command(&["status", "--task", "audti"])
        .output()
        .expect("status runs");
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(err.contains("did you mean `audit`?"), "{err}");
    let bad = project
        .command(&["status", "--status", "done"])
        .output()
        .expect("status runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("use one of complete, failed"));
}

#[test]
fn verbose_lists_the_complete_tasks_of_a_larger_run() {
    let project = Project::new();
    project.manifest(
        "version: 1\nconcurrency: 8\ntasks:\n  t:\n    matrix: { n: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, u, v, w, x, y, z] }\n    command: [sh, -c, ': > \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Nothing]\n",
    );
    let quiet = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("dispatch runs");
    let err = text(&quiet.stderr);
    assert!(
        err.contains("25 tasks fine, not listed (`--verbose` lists them)"),
        "{err}"
    );
    assert!(!err.contains("✓ t-a"), "{err}");
    let verbose = project
        .command(&["run", "sweep.yaml", "--quiet", "--verbose"])
        .output()
        .expect("dispatch runs");
    let err = text(&verbose.stderr);
    assert_eq!(err.matches("\n✓ t-").count(), 25, "{err}");
}
