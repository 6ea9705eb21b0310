//! The JUnit file: one `<testsuite>` per task, one `<testcase>` per plan
//! item, and a failed test case for each finding at or above the manifest's
//! `reports.junit_fail_severity`.
//!
//! Test-case names are what dashboards track a test by across runs, so
//! they hold no absolute path: a plan item that names a task's file (a
//! template's `{{ paths.output }}`) is written relative to the project.
//! The root `time` is the run's wall time, not the sum of the tasks'.
//!
//! Written with quick-junit (the crate cargo-nextest writes its JUnit
//! with): it strips the characters XML cannot hold, which agent logs are
//! full of (ANSI escapes, BEL). junit-report 0.9.1 wrote them verbatim and
//! its files did not parse.

use std::io::{self, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::{clean, severity_name, Report, TaskReport};
use crate::domain::status::TaskStatus;
use crate::manifest::types::Severity;

/// The JUnit XML of a report. `root` is the project the paths in test-case
/// names are made relative to (the run's root; for a merge, the current
/// repository); a path into a `.dispatch/` folder elsewhere (a shard run on
/// another machine) is cut to start at `.dispatch/`.
pub fn render(report: &Report, fail_severity: Severity, root: Option<&Path>) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write(report, fail_severity, root, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Runs of up to this many tasks have their document built whole and
/// written at once: one pass, about half the time of a suite at a time
/// (which builds each suite twice), for a document of a few MB.
const WHOLE_UP_TO: usize = 5_000;

/// [`render`] written to `out`. A wide run's is written a `<testsuite>`
/// at a time, line by line: neither quick-junit's document (about 85 MB
/// at 50,000 tasks) nor its text is ever whole in memory. The root's
/// counts come first in the file, so a first pass builds each suite to
/// count it and drops it; the second builds it again and writes it.
pub fn write(
    report: &Report,
    fail_severity: Severity,
    root: Option<&Path>,
    out: &mut dyn Write,
) -> io::Result<()> {
    if report.tasks.len() <= WHOLE_UP_TO {
        return write_whole(report, fail_severity, root, out);
    }
    write_by_suite(report, fail_severity, root, out)
}

/// [`write`] a suite at a time, whatever the run's size.
pub(super) fn write_by_suite(
    report: &Report,
    fail_severity: Severity,
    root: Option<&Path>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let names = Names {
        root: root.and_then(Path::to_str).map(|r| r.trim_end_matches('/')),
    };
    let suites = || {
        report
            .tasks
            .iter()
            .map(|task| suite(report, task, fail_severity, &names))
    };
    let mut junit = JUnit::new(format!("dispatch {}", report.name));
    if let Some(time) = rfc3339(&report.started_at) {
        junit.set_timestamp(time);
    }
    let mut total = Duration::ZERO;
    for (task, suite) in report.tasks.iter().zip(suites()) {
        total += Duration::from_millis(task.duration_ms.unwrap_or(0));
        // Counted as quick-junit counts, then dropped.
        junit.add_test_suite(suite);
        junit.test_suites.clear();
    }
    junit.set_time(wall_time(report).unwrap_or(total));
    let mut lines = SafeLines {
        out,
        line: Vec::new(),
    };
    if report.tasks.is_empty() {
        serialize(&junit, &mut lines)?;
        return lines.finish();
    }
    // The root with one empty suite (which counts nothing): the text
    // before that suite is the file's head, the text after it its end.
    junit.add_test_suite(TestSuite::new(""));
    let mut text = Vec::new();
    serialize(&junit, &mut text)?;
    let (head, end) = suites_within(&text)?;
    lines.write_all(&text[..head])?;
    let tail = text[end..].to_vec();
    let mut one = JUnit::new("");
    for suite in suites() {
        one.test_suites.clear();
        one.add_test_suite(suite);
        text.clear();
        serialize(&one, &mut text)?;
        let (start, end) = suites_within(&text)?;
        lines.write_all(&text[start..end])?;
    }
    lines.write_all(&tail)?;
    lines.finish()
}

/// The document built whole and serialized at once: what a run of up to
/// [`WHOLE_UP_TO`] tasks writes, and what [`write_by_suite`] must write
/// too.
pub(super) fn write_whole(
    report: &Report,
    fail_severity: Severity,
    root: Option<&Path>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut junit = JUnit::new(format!("dispatch {}", report.name));
    if let Some(time) = rfc3339(&report.started_at) {
        junit.set_timestamp(time);
    }
    let names = Names {
        root: root.and_then(Path::to_str).map(|r| r.trim_end_matches('/')),
    };
    let mut total = Duration::ZERO;
    for task in &report.tasks {
        total += Duration::from_millis(task.duration_ms.unwrap_or(0));
        junit.add_test_suite(suite(report, task, fail_severity, &names));
    }
    junit.set_time(wall_time(report).unwrap_or(total));
    let mut lines = SafeLines {
        out,
        line: Vec::new(),
    };
    serialize(&junit, &mut lines)?;
    lines.finish()
}

fn serialize(junit: &JUnit, out: &mut dyn Write) -> io::Result<()> {
    junit
        .serialize(out)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Where the suites of a serialized document start (after the root's
/// start tag: quick-xml escapes `>` in attribute values, so the first one
/// after `<testsuites` ends it) and end (the line break before the root's
/// end tag): a suite's text does not depend on the root around it.
fn suites_within(xml: &[u8]) -> io::Result<(usize, usize)> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let root = find(xml, b"<testsuites").and_then(|at| {
        let end = xml[at..].iter().position(|&b| b == b'>')?;
        Some(at + end + 1)
    });
    let end = xml
        .windows(b"\n</testsuites>".len())
        .rposition(|w| w == b"\n</testsuites>");
    match (root, end) {
        (Some(start), Some(end)) if start <= end => Ok((start, end)),
        _ => Err(io::Error::other("quick-junit wrote no <testsuites> root")),
    }
}

/// A writer that passes each line on made safe: worker text keeps its
/// newlines in XML text, and a JUnit file shown in a CI log must not start
/// a workflow command (`log_safe`); DEL and the C1 controls are legal XML
/// but a terminal may obey them, so they become character references,
/// which mean the same to a parser. Both work line by line (a line ends
/// at `\n` or `\r`, as `log_safe` reads them), so the lines come out as
/// the whole text would.
struct SafeLines<'a> {
    out: &'a mut dyn Write,
    line: Vec<u8>,
}

impl SafeLines<'_> {
    /// Pass on the line gathered. Each step borrows what it leaves as it
    /// is (almost every line), so a line costs no copy.
    fn emit(&mut self) -> io::Result<()> {
        let text = String::from_utf8_lossy(&self.line);
        let refs = xml_char_refs(&text);
        let safe = crate::util::escape::log_safe_line(&refs);
        self.out.write_all(safe.as_bytes())?;
        self.line.clear();
        Ok(())
    }

    /// Pass on the last line, which has no line break.
    fn finish(mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.emit()?;
        }
        self.out.flush()
    }
}

impl Write for SafeLines<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..=at]);
            self.emit()?;
            rest = &rest[at + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `xml` with DEL and C1 controls written as `&#N;`. They can stand only in
/// text and attribute values, where a reference is the same character.
fn xml_char_refs(xml: &str) -> std::borrow::Cow<'_, str> {
    if !xml.contains(|c| ('\u{7f}'..='\u{9f}').contains(&c)) {
        return std::borrow::Cow::Borrowed(xml);
    }
    let mut out = String::with_capacity(xml.len());
    for c in xml.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("&#{};", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// From the run's start to its end; `None` while it has not ended (then
/// the tasks' summed time stands in).
fn wall_time(report: &Report) -> Option<Duration> {
    let start = rfc3339(&report.started_at)?;
    let end = rfc3339(report.ended_at.as_deref()?)?;
    (end - start).to_std().ok()
}

/// How test-case names are made machine-independent.
struct Names<'a> {
    root: Option<&'a str>,
}

impl Names<'_> {
    /// `text` with the project root's absolute path made relative
    /// (`ROOT/x` → `x`, `ROOT` alone → `.`), and any other absolute path
    /// into a `.dispatch/` folder cut to start there.
    fn stable(&self, text: &str) -> String {
        let mut out = match self.root.filter(|r| r.starts_with('/') && r.len() > 1) {
            Some(root) => relative_to(text, root),
            None => text.to_owned(),
        };
        if out.contains("/.dispatch/") {
            static STATE_PATH: OnceLock<regex::Regex> = OnceLock::new();
            let pattern = STATE_PATH.get_or_init(|| {
                regex::Regex::new(r#"(^|[\s'"`(\[=:])/(?:[^\s'"`()\[\]]*/)?\.dispatch/"#)
                    .unwrap_or_else(|e| unreachable!("a valid pattern: {e}"))
            });
            out = pattern.replace_all(&out, "${1}.dispatch/").into_owned();
        }
        out
    }
}

/// `text` with each occurrence of the folder `root` (as a whole path
/// component) written relative to it.
fn relative_to(text: &str, root: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(root) {
        let after = &rest[at + root.len()..];
        out.push_str(&rest[..at]);
        if let Some(inside) = after.strip_prefix('/') {
            rest = inside;
        } else if after.starts_with(|c: char| c.is_alphanumeric() || "-_.~".contains(c)) {
            // `/a/b` in `/a/bc`: another folder.
            out.push_str(root);
            rest = after;
        } else {
            out.push('.');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn suite(
    report: &Report,
    task: &TaskReport,
    fail_severity: Severity,
    names: &Names<'_>,
) -> TestSuite {
    let mut suite = TestSuite::new(task.id.clone());
    if let Some(time) = task.started_at.as_deref().and_then(rfc3339) {
        suite.set_timestamp(time);
    }
    suite.set_time(Duration::from_millis(task.duration_ms.unwrap_or(0)));
    suite.add_properties([
        Property::new("model", task.model.clone().unwrap_or_default()),
        Property::new("backend", task.backend.clone()),
        Property::new("worktree", task.worktree.to_string()),
        Property::new("priority", task.priority.clone()),
        Property::new("status", task.status.label()),
        Property::new("run_id", report.run_id.clone()),
    ]);
    if let Some(branch) = &task.branch {
        suite.add_properties([
            Property::new("branch", branch.name.clone()),
            Property::new("branch_head", branch.head.clone().unwrap_or_default()),
            Property::new("commits_ahead", branch.ahead.to_string()),
            Property::new("uncommitted_files", branch.uncommitted.to_string()),
        ]);
    }
    if task.flaky {
        suite.add_property(Property::new("flaky", "true"));
    }
    for item in &task.plan {
        let mut case = item_case(
            task,
            &names.stable(&item.text),
            &item.state,
            item.note.as_deref(),
        );
        super::junit_checks::add_attempt_reruns(task, &mut case);
        suite.add_test_case(case);
    }
    for case in super::junit_checks::check_cases(task) {
        suite.add_test_case(case);
    }
    // The plan dispatch wrote is the contract: an item the worker deleted
    // stays a case, failed.
    for text in &task.dropped {
        let mut case = TestCase::new(
            names.stable(text),
            with_message(
                TestCaseStatus::non_success(NonSuccessKind::Failure),
                "removed from the plan by the worker: the item is in the plan dispatch wrote and was never done",
            ),
        );
        case.set_classname(task.id.clone());
        suite.add_test_case(case);
    }
    let mut listed = Vec::new();
    for finding in &task.findings {
        let at = finding
            .location
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        if finding.severity >= fail_severity {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type(severity_name(finding.severity));
            status.set_message(names.stable(&format!("{}{at}", finding.title)));
            if let Some(detail) = &finding.detail {
                status.set_description(detail.clone());
            }
            let mut case =
                TestCase::new(names.stable(&format!("finding: {}", finding.title)), status);
            case.set_classname(task.id.clone());
            suite.add_test_case(case);
        } else {
            listed.push(format!(
                "finding {}: {}{at}",
                severity_name(finding.severity),
                finding.title
            ));
        }
    }
    let mut out = listed.join("\n");
    if !task.log_tail.is_empty() {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&task.log_tail);
    }
    if !out.is_empty() {
        suite.set_system_out(clean(&out));
    }
    suite
}

/// One plan item as a test case: `[x]` passes, `[!]` fails with the note,
/// `[?]` is an error with the question, an open item fails (or is skipped,
/// for a task that never ran) with the reason. Only a ticked item passes:
/// an open item of a task the worker declared done (`ipc/.done`) is
/// skipped, saying so, since nobody claims to have done it.
fn item_case(task: &TaskReport, text: &str, state: &str, note: Option<&str>) -> TestCase {
    let status = match state {
        "done" => TestCaseStatus::success(),
        _ if task.status == TaskStatus::Complete => with_message(
            TestCaseStatus::skipped(),
            "not ticked: the worker declared the task done (ipc/.done) without ticking this item",
        ),
        "failed" => with_message(
            TestCaseStatus::non_success(NonSuccessKind::Failure),
            note.unwrap_or("the item failed"),
        ),
        "blocked" => with_message(
            TestCaseStatus::non_success(NonSuccessKind::Error),
            note.unwrap_or("waiting for an answer"),
        ),
        _ if task.status == TaskStatus::Skipped => with_message(
            TestCaseStatus::skipped(),
            task.reason.as_deref().unwrap_or("the task was skipped"),
        ),
        _ => with_message(
            TestCaseStatus::non_success(NonSuccessKind::Failure),
            &format!(
                "not done: task {}{}",
                task.status,
                task.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ),
    };
    let mut case = TestCase::new(text.to_owned(), status);
    case.set_classname(task.id.clone());
    case
}

fn with_message(mut status: TestCaseStatus, message: &str) -> TestCaseStatus {
    status.set_message(clean(message));
    status
}

fn rfc3339(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `render` did before it wrote line by line, to the whole text.
    fn whole(text: &str) -> String {
        crate::util::escape::log_safe(&xml_char_refs(text))
    }

    proptest! {
        /// However quick-junit splits its writes, the lines come out as
        /// the whole text made safe would.
        #[test]
        fn safe_lines_are_the_whole_text_made_safe(
            parts in proptest::collection::vec("(::|##\\[|\\s|\\r|\\n|\\x7f|\\u{9b}|\\u{85}|[a-z<&é]){0,12}", 0..8),
        ) {
            let text: String = parts.concat();
            let mut out = Vec::new();
            let mut lines = SafeLines { out: &mut out, line: Vec::new() };
            for part in &parts {
                lines.write_all(part.as_bytes()).expect("write");
            }
            lines.finish().expect("finish");
            prop_assert_eq!(String::from_utf8(out).expect("UTF-8"), whole(&text));
        }
    }

    #[test]
    fn names_lose_the_root_but_not_a_sibling_folder() {
        let names = Names {
            root: Some("/w/proj"),
        };
        assert_eq!(names.stable("see /w/proj/src/a.rs"), "see src/a.rs");
        assert_eq!(names.stable("in /w/proj, then"), "in ., then");
        assert_eq!(names.stable("not /w/project/x"), "not /w/project/x");
        assert_eq!(
            names.stable("copy of '/other/place/.dispatch/tasks/t/output.md'"),
            "copy of '.dispatch/tasks/t/output.md'"
        );
        assert_eq!(Names { root: None }.stable("/.dispatch/x"), ".dispatch/x");
    }
}
