//! The reports are written as they are rendered, a task at a time, and
//! what is written is the text the whole report renders to.
//!
//! Why these tests: at 50,000 tasks a report is tens of megabytes, and a
//! renderer that builds it whole (or builds copies of it) multiplies that
//! in memory. The writer here records the largest single write: a report
//! built whole and then written reaches it in one write.

use std::io::{self, Write};

use super::write::{Format, Renderer};
use super::*;
use crate::record::snapshot::Snapshot;
use crate::record::RunRecord;

/// A writer that keeps what it is given and the size of its largest write.
#[derive(Default)]
struct Recording {
    bytes: Vec<u8>,
    largest: usize,
    writes: usize,
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        self.writes += 1;
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Text a worker could write: JSON, HTML and terminal specials.
const HOSTILE: &str = "a \"quote\"\nline\u{2028}sep </script><!-- & \u{9b}31m \u{7f} é";

fn task(i: usize) -> TaskReport {
    let id = format!("t{i:05}");
    TaskReport {
        id: id.clone(),
        title: format!("{id} {HOSTILE}"),
        status: if i % 7 == 3 {
            TaskStatus::Failed
        } else {
            TaskStatus::Complete
        },
        reason: (i % 7 == 3).then(|| HOSTILE.to_owned()),
        model: Some("sonnet".to_owned()),
        backend: "claude".to_owned(),
        worktree: false,
        branch: None,
        priority: "medium".to_owned(),
        started_at: Some("2026-12-03T10:00:00Z".to_owned()),
        ended_at: Some("2026-12-03T10:00:01Z".to_owned()),
        duration_ms: Some(1000 + i as u64),
        attempts: 1,
        items_done: 1,
        items_total: 1,
        plan: vec![ItemReport {
            text: HOSTILE.to_owned(),
            state: "done".to_owned(),
            note: None,
        }],
        usage: UsageReport::default(),
        budget: None,
        carried_from: None,
        findings: Vec::new(),
        questions: Vec::new(),
        output_path: format!(".dispatch/tasks/{id}/output.md"),
        output_head: Some(HOSTILE.to_owned()),
        log_tail: HOSTILE.to_owned(),
        dropped: Vec::new(),
        unticked: Vec::new(),
        last_activity: None,
        flaky: false,
        checks: Vec::new(),
        attempt_results: Vec::new(),
        failure_tail: None,
    }
}

fn report(count: usize) -> Report {
    let tasks: Vec<TaskReport> = (0..count).map(task).collect();
    Report {
        format_version: FORMAT_VERSION,
        run_id: "20261203-100000-abcd".to_owned(),
        name: format!("sweep {HOSTILE}"),
        manifest: "sweep.yaml".to_owned(),
        started_at: "2026-12-03T10:00:00Z".to_owned(),
        ended_at: Some("2026-12-03T11:00:00Z".to_owned()),
        status: RunStatus::Failed,
        exit_code: Some(1),
        escalations: vec![HOSTILE.to_owned()],
        continues: None,
        shard: None,
        merge_readiness: None,
        totals: totals(&tasks, None, |_| None),
        tasks,
    }
}

fn snapshot(report: &Report) -> Snapshot {
    let run: RunRecord = serde_json::from_value(serde_json::json!({
        "run_id": report.run_id, "name": "sweep", "manifest": "sweep.yaml",
        "root": "/nonexistent-project", "pid": 1, "started_at": report.started_at,
        "ended_at": report.ended_at, "concurrency": 4, "vars": [], "tasks": [],
        "status": "failed", "exit_code": 1,
    }))
    .expect("a run record");
    Snapshot {
        run,
        live: false,
        orphaned: 0,
        tasks: Vec::new(),
    }
}

/// `report.json` as it was made before it was streamed: the whole report.
fn whole_json(report: &Report) -> String {
    let mut json = crate::util::escape::json_for_terminal(
        &serde_json::to_string_pretty(report).expect("serializes"),
    );
    json.push('\n');
    json
}

fn written(report: Report, format: Format) -> Recording {
    let snapshot = snapshot(&report);
    let redactor = crate::domain::redact::Redactor::default();
    let renderer = Renderer::from_report(report, &snapshot, &redactor);
    let mut out = Recording::default();
    renderer.write(format, &mut out).expect("writes");
    out
}

#[test]
fn the_json_report_written_a_task_at_a_time_is_the_whole_reports_json() {
    for count in [0, 1, 2, 5] {
        let out = written(report(count), Format::Json);
        let text = String::from_utf8(out.bytes).expect("UTF-8");
        assert_eq!(text, whole_json(&report(count)), "{count} tasks");
        let parsed: Report = serde_json::from_str(&text).expect("parses back");
        assert_eq!(parsed, report(count));
    }
}

#[test]
fn no_report_is_written_whole_at_once() {
    let tasks = 2000;
    let one_task = serde_json::to_string_pretty(&task(1)).expect("json").len();
    for format in [Format::Json, Format::Markdown, Format::Html, Format::Junit] {
        let out = written(report(tasks), format);
        assert!(
            out.bytes.len() > 40 * one_task,
            "{format:?}: the report holds the tasks ({} bytes)",
            out.bytes.len()
        );
        // The page's inlined script and style are the largest pieces of
        // the HTML; no piece holds more than a few tasks.
        let bound = (4 * one_task).max(super::html::LARGEST_PART);
        assert!(
            out.largest <= bound,
            "{format:?}: one write of {} bytes of {} ({} writes): rendered whole",
            out.largest,
            out.bytes.len(),
            out.writes
        );
    }
}

#[test]
fn a_template_that_fails_midway_ends_with_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(super::markdown::TEMPLATE),
        "# {{ name }} so far\n{{ 1 // 0 }}\nnever\n",
    )
    .expect("write");
    let templates = crate::plan::templates::Templates::new(Some(dir.path().to_path_buf()));
    let text = super::markdown::render(&std::sync::Arc::new(report(1)), &templates, Severity::High);
    assert!(text.starts_with("# sweep "), "{text}");
    assert!(text.contains("so far\n"), "{text}");
    assert!(text.contains("The report template failed"), "{text}");
    assert!(!text.contains("never"), "{text}");
}

/// A state folder with run `run_id`'s record, its tasks `ids` (the first
/// archived into the run's folder, each with a plan, a log and an
/// output), and a task folder holding another run's record.
fn state_with_run(root: &std::path::Path, ended: bool, ids: &[&str]) -> crate::state::StateDir {
    let state = crate::state::StateDir::new(root);
    let run_id = "20261203-100000-abcd";
    let run = serde_json::json!({
        "run_id": run_id, "name": "sweep", "manifest": "sweep.yaml",
        "root": root, "pid": 999_999_999u32, "started_at": "2026-12-03T10:00:00Z",
        "ended_at": if ended { Some("2026-12-03T11:00:00Z") } else { None },
        "concurrency": 2, "vars": [], "tasks": ids.iter().chain(&["other"]).collect::<Vec<_>>(),
        "status": if ended { "complete" } else { "running" },
        "exit_code": if ended { Some(0) } else { None },
    });
    let run_dir = state.run_dir(run_id);
    std::fs::create_dir_all(&run_dir).expect("mkdir");
    std::fs::write(run_dir.join("run.json"), run.to_string()).expect("write");
    for (i, id) in ids.iter().chain(&["other"]).enumerate() {
        let dir = if i == 0 {
            run_dir.join("tasks").join(id)
        } else {
            state.task_dir(id)
        };
        std::fs::create_dir_all(&dir).expect("mkdir");
        let owner = if *id == "other" {
            "20261202-100000-ffff"
        } else {
            run_id
        };
        let status = if i == 1 { "running" } else { "complete" };
        let record = serde_json::json!({
            "id": id, "run_id": owner, "title": format!("{id} {HOSTILE}"), "status": status,
            "reason": null, "model": "sonnet", "backend": "command", "worktree": false,
            "priority": "normal", "needs": [], "argv": [], "pid": null, "started_at": null,
            "ended_at": null, "duration_ms": 5, "exit": null,
            "items": { "total": 1, "done": 1, "pending": 0, "in_progress": 0, "blocked": 0, "failed": 0 },
            "current_item": null,
            "usage": { "turns": 1, "input_tokens": 2, "output_tokens": 3, "cached_input_tokens": 0, "cost_usd": null },
            "outcome": null, "attempts": [],
        });
        std::fs::write(dir.join("task.json"), record.to_string()).expect("write");
        std::fs::write(dir.join("plan.md"), format!("# {id}\n\n- [x] {HOSTILE}\n")).expect("write");
        std::fs::write(dir.join("worker.log"), format!("log of {id}\n{HOSTILE}\n")).expect("write");
        std::fs::write(dir.join("output.md"), format!("output of {id}")).expect("write");
    }
    state
}

#[test]
fn the_report_read_a_task_at_a_time_is_the_report_of_the_whole_snapshot() {
    for ended in [true, false] {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = state_with_run(temp.path(), ended, &["a", "b", "c", "d"]);
        let run = crate::record::snapshot::load_run(&state, None).expect("the run");
        let redactor = crate::record::snapshot::redactor(&run);
        let mut whole = crate::record::snapshot::load_for_report(&state, None).expect("snapshot");
        assert!(whole.tasks.iter().any(|view| view.plan.is_some()));
        let expected = build(&state, &mut whole, &redactor, Cores::All);
        assert!(
            whole.tasks.iter().all(|view| view.plan.is_none()),
            "the plans went into the report"
        );
        assert!(expected.tasks.iter().any(|task| !task.plan.is_empty()));
        let mut again = crate::record::snapshot::load_for_report(&state, None).expect("snapshot");
        let on_one = build(&state, &mut again, &redactor, Cores::One);
        assert_eq!(on_one, expected, "built on one thread or on all");
        assert_eq!(expected.tasks.len(), 4, "the other run's task is left out");
        assert!(
            expected.tasks[0].log_tail.starts_with("log of a\n"),
            "the archived folder is read"
        );
        assert_eq!(
            expected.tasks[0].output_head.as_deref(),
            Some("output of a")
        );
        let (report, kept) = build_from_disk(&state, run.clone(), &redactor, false);
        assert_eq!(report, expected, "ended: {ended}");
        assert!(
            kept.tasks.is_empty(),
            "no record is kept for md, json, junit"
        );
        assert_eq!(kept.run, whole.run);
        let (report, kept) = build_from_disk(&state, run, &redactor, true);
        assert_eq!(report, expected);
        assert_eq!(kept.tasks.len(), 4, "the HTML page keeps the records");
        if !ended {
            assert_eq!(report.status, RunStatus::Interrupted);
            assert_eq!(report.tasks[1].status, TaskStatus::Cancelled);
        }
    }
}

/// The Markdown template reads the tasks as it reaches them: a template
/// that reads one field of two tasks converts those two fields, not the
/// report (converting it whole held a copy of every task, about 110 MB at
/// 50,000 tasks); a field read twice from one task value is converted once.
#[test]
fn the_markdown_template_converts_only_the_task_fields_it_reads() {
    let converted = || super::lazy_tasks::CONVERTED.with(std::cell::Cell::get);
    let before = converted();
    let text = markdown_of(
        "{% set first = tasks[0] %}{{ tasks | length }} {{ first.id }} {{ first.id }} {{ tasks[4].id }}",
        5,
    );
    assert_eq!(converted() - before, 2);
    // The failed task comes first.
    assert_eq!(text.trim_end(), "5 t00003 t00003 t00004");
}

/// Reading a task's field stops at it: its first field (`id`) is found
/// without a look at the thirty after it.
#[test]
fn reading_a_task_field_looks_no_further_than_the_field() {
    let visited = || super::lazy_tasks::VISITED.with(std::cell::Cell::get);
    let before = visited();
    let text = markdown_of("{{ tasks[0].id }}", 1);
    assert_eq!(text.trim_end(), "t00000");
    assert_eq!(visited() - before, 1);
}

/// The Markdown report of `report(tasks)` rendered with `template` as the
/// project's own report template.
fn markdown_of(template: &str, tasks: usize) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(super::markdown::TEMPLATE), template).expect("write");
    let templates = crate::plan::templates::Templates::new(Some(dir.path().to_path_buf()));
    super::markdown::render(
        &std::sync::Arc::new(report(tasks)),
        &templates,
        Severity::High,
    )
}

/// A task converted field by field is the value converting it whole
/// gives: the same fields in the same order, skipped ones undefined.
#[test]
fn a_lazily_converted_task_is_the_whole_tasks_value() {
    let report = std::sync::Arc::new(report(3));
    let env = minijinja::Environment::new();
    let template = "{{ tasks | tojson }}\n{% for t in tasks %}{% for k, v in t | items %}{{ k }}={{ v }};{% endfor %}{{ t.last_activity is defined }} {{ t.nothing is defined }} {{ t | length }}\n{% endfor %}";
    let lazy = minijinja::value::Value::from_object(super::lazy_tasks::Tasks::new(
        std::sync::Arc::clone(&report),
        None,
    ));
    let eager = minijinja::value::Value::from(minijinja::value::Serde(&report.tasks));
    let render = |tasks| {
        env.render_str(template, minijinja::context! { tasks => tasks })
            .expect("render")
    };
    let (lazy, eager) = (render(lazy), render(eager));
    assert!(eager.contains("t00002"), "{eager}");
    assert_eq!(lazy, eager);
}

/// JUnit written a `<testsuite>` at a time (its document never whole) is
/// the document quick-junit serializes whole, root counts included, with
/// no tasks, one, and many (failed ones among them), whatever the names.
#[test]
fn junit_written_a_suite_at_a_time_is_the_whole_documents_text() {
    for count in [0, 1, 20] {
        let mut report = report(count);
        if let Some(task) = report.tasks.get_mut(0) {
            task.findings.push(FindingReport {
                severity: Severity::Critical,
                title: format!("{HOSTILE} >"),
                location: Some("/root/x".to_owned()),
                detail: Some(HOSTILE.to_owned()),
            });
            task.dropped.push(HOSTILE.to_owned());
        }
        let root = Some(std::path::Path::new("/root"));
        let (mut suites, mut whole) = (Vec::new(), Vec::new());
        super::junit::write_by_suite(&report, Severity::High, root, &mut suites).expect("write");
        super::junit::write_whole(&report, Severity::High, root, &mut whole).expect("write");
        assert!(whole.len() > 100, "{count}");
        assert_eq!(
            String::from_utf8_lossy(&suites),
            String::from_utf8_lossy(&whole),
            "{count}"
        );
    }
}

/// A finished run's reports rendered two at a time (a small run's way)
/// are the files rendered one at a time (a wide run's way), and the
/// Markdown handed back is `report.md`.
#[test]
fn reports_rendered_side_by_side_are_the_ones_rendered_one_at_a_time() {
    let temp = tempfile::tempdir().expect("tempdir");
    let state = state_with_run(temp.path(), true, &["a", "b", "c", "d"]);
    let snapshot = crate::record::snapshot::load_for_report(&state, None).expect("snapshot");
    let redactor = crate::record::snapshot::redactor(&snapshot.run);
    let run_dir = state.run_dir(&snapshot.run.run_id);
    let mut written = Vec::new();
    for side_by_side in [true, false] {
        let targets = super::write::Targets::default();
        let (markdown, problems) = super::write::write_finished(
            &state,
            &mut snapshot.clone(),
            &targets,
            &redactor,
            side_by_side,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let files: Vec<String> = super::repair::RUN_REPORTS
            .iter()
            .map(|name| std::fs::read_to_string(run_dir.join(name)).expect("a report"))
            .collect();
        assert_eq!(markdown, files[0]);
        assert!(files.iter().all(|text| text.contains('d')), "{files:?}");
        for name in super::repair::RUN_REPORTS {
            std::fs::remove_file(run_dir.join(name)).expect("remove");
        }
        written.push(files);
    }
    assert!(written[0][1].contains("\"id\": \"d\""), "{}", written[0][1]);
    assert_eq!(written[0], written[1]);
}
