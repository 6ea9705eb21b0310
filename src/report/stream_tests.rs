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
    for format in [Format::Json, Format::Markdown, Format::Html] {
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
    let text = super::markdown::render(&report(1), &templates, Severity::High);
    assert!(text.starts_with("# sweep "), "{text}");
    assert!(text.contains("so far\n"), "{text}");
    assert!(text.contains("The report template failed"), "{text}");
    assert!(!text.contains("never"), "{text}");
}
