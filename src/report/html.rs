//! `report.html`: the sweep to look at rather than read. One file that
//! opens from a CI artifact or from disk with no network: the page (HTML,
//! CSS, JavaScript, in `html/`) is inlined, and the run's data is one JSON
//! blob in a `<script type="application/json">` element that the script
//! renders with `textContent` only, so nothing a worker wrote is ever
//! parsed as markup.
//!
//! The data is the JSON report's tasks (so a field added to `TaskReport`,
//! such as acceptance checks, reaches the page without a change here) plus
//! what only the records hold: each attempt's times and lane, how long
//! each question waited, the escalations a task fired, and its tags.
//! Times are milliseconds after the run started, which keeps a
//! 5,000-task page small.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use super::{Report, TaskReport, Totals};
use crate::domain::exit::RunOutcome;
use crate::domain::redact::Redactor;
use crate::domain::status::{RunStatus, TaskStatus};
use crate::isolation::merge_check::MergeReadiness;
use crate::record::snapshot::{Snapshot, TaskView};
use crate::record::TaskRecord;

const TEMPLATE: &str = include_str!("html/report.html");
const STYLE: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");
/// The largest piece of the page that is not a task's: the page is
/// written in pieces no larger than this or one task's data.
#[cfg(test)]
pub(super) const LARGEST_PART: usize = {
    let (a, b, c) = (TEMPLATE.len(), STYLE.len(), SCRIPT.len());
    let ab = if a > b { a } else { b };
    if ab > c {
        ab
    } else {
        c
    }
};

/// What the page quotes of all tasks' logs and outputs together: each
/// task's share shrinks as a sweep grows, so 5,000 tasks stay a few MB.
const TEXT_BUDGET_BYTES: usize = 2 * 1024 * 1024;
/// The least any task keeps of its log tail and output head.
const MIN_TEXT_BYTES: usize = 256;

#[derive(Serialize)]
struct RunHead<'a> {
    name: &'a str,
    run_id: &'a str,
    manifest: &'a str,
    started_at: &'a str,
    ended_at: Option<&'a str>,
    status: RunStatus,
    exit_code: Option<u8>,
    /// Why the run ended with its exit code: the rule and the task.
    why: String,
    /// Wall time in milliseconds, once it ended.
    wall_ms: Option<u64>,
    /// How many lanes the timeline has (the run's concurrency, or more if
    /// a record says so).
    lanes: u32,
    escalations: &'a [String],
    continues: Option<&'a str>,
    merge_readiness: Option<&'a MergeReadiness>,
    totals: &'a Totals,
    /// How much of each log tail and output head the page keeps.
    text_limit: usize,
}

#[derive(Serialize)]
struct TaskData {
    #[serde(flatten)]
    task: TaskReport,
    /// `TaskStatus::needs_attention`: the "failures only" filter.
    attention: bool,
    tags: Vec<String>,
    timeline: Vec<Span>,
    waits: Vec<Wait>,
    marks: Vec<Mark>,
}

/// One attempt on the timeline.
#[derive(Serialize)]
struct Span {
    number: u32,
    lane: Option<u32>,
    start: Option<u64>,
    end: Option<u64>,
    status: Option<TaskStatus>,
    reason: Option<String>,
}

/// A question's wait for its answer.
#[derive(Serialize)]
struct Wait {
    seq: u32,
    start: Option<u64>,
    end: Option<u64>,
}

/// An escalation that fired on the task.
#[derive(Serialize)]
struct Mark {
    rule: String,
    summary: String,
    at: Option<u64>,
}

/// The page of a run. `report` is already redacted; the record fields the
/// page adds pass through `redactor` here.
pub fn render(report: &Report, snapshot: &Snapshot, redactor: &Redactor) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write(report, snapshot, redactor, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`render`] written to `out` as it is made: each task's data is built,
/// written and dropped in turn, so the page's memory is one task's, not
/// the whole page three times over (its data, the data escaped, the page).
pub fn write(
    report: &Report,
    snapshot: &Snapshot,
    redactor: &Redactor,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let origin = millis(&report.started_at).unwrap_or(0);
    let at = |time: &str| millis(time).map(|t| t.saturating_sub(origin));
    let records: HashMap<&str, &TaskView> = snapshot
        .tasks
        .iter()
        .map(|view| (view.record.id.as_str(), view))
        .collect();
    let record_of = |task: &TaskReport| records.get(task.id.as_str()).map(|view| &*view.record);
    let text_limit = (TEXT_BUDGET_BYTES / report.tasks.len().max(1))
        .clamp(MIN_TEXT_BYTES, super::LOG_TAIL_BYTES as usize);
    let lanes = report
        .tasks
        .iter()
        .filter_map(record_of)
        .flat_map(|r| r.attempts.iter().filter_map(|a| a.lane))
        .map(|lane| lane + 1)
        .max()
        .unwrap_or(0)
        .max(snapshot.run.concurrency)
        .max(1);
    let wall_ms = report.ended_at.as_deref().and_then(at);
    let run = RunHead {
        name: &report.name,
        run_id: &report.run_id,
        manifest: &report.manifest,
        started_at: &report.started_at,
        ended_at: report.ended_at.as_deref(),
        status: report.status,
        exit_code: report.exit_code,
        why: why(report),
        wall_ms,
        lanes,
        escalations: &report.escalations,
        continues: report.continues.as_deref(),
        merge_readiness: report.merge_readiness.as_ref(),
        totals: &report.totals,
        text_limit,
    };
    // The page's data, `{"run":…,"tasks":[…]}`, each part escaped for the
    // script element on its own (the escape is per character, so the parts
    // escape as the whole would).
    let data = |out: &mut dyn Write| -> std::io::Result<()> {
        out.write_all(b"{\"run\":")?;
        out.write_all(script_json(&run).as_bytes())?;
        out.write_all(b",\"tasks\":[")?;
        for (i, task) in report.tasks.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            let data = task_data(task, record_of(task), &at, text_limit, redactor);
            out.write_all(script_json(&compact(&data)).as_bytes())?;
        }
        out.write_all(b"]}")
    };
    let title = html_text(&format!("{} · {} · dispatch", report.name, report.run_id));
    // One pass over the template: a placeholder inside the inserted data
    // is never replaced again.
    let mut rest = TEMPLATE;
    while let Some(start) = rest.find("{{") {
        out.write_all(&rest.as_bytes()[..start])?;
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.write_all(&rest.as_bytes()[start..])?;
            rest = "";
            break;
        };
        match &after[..end] {
            "title" => out.write_all(title.as_bytes())?,
            "style" => out.write_all(STYLE.as_bytes())?,
            "script" => out.write_all(SCRIPT.as_bytes())?,
            "data" => data(out)?,
            other => {
                out.write_all(b"{{")?;
                out.write_all(other.as_bytes())?;
                out.write_all(b"}}")?;
            }
        }
        rest = &after[end + 2..];
    }
    out.write_all(rest.as_bytes())
}

/// `value` as compact JSON, safe inside the page's script element.
fn script_json(value: &impl Serialize) -> String {
    crate::util::escape::json_for_script(&serde_json::to_string(value).unwrap_or_default())
}

fn task_data(
    task: &TaskReport,
    record: Option<&TaskRecord>,
    at: &impl Fn(&str) -> Option<u64>,
    text_limit: usize,
    redactor: &Redactor,
) -> TaskData {
    let attention = task.status.needs_attention();
    let mut task = task.clone();
    task.log_tail = keep_end(&task.log_tail, text_limit).to_owned();
    if let Some(head) = &mut task.output_head {
        *head = keep_start(head, text_limit).to_owned();
    }
    let Some(record) = record else {
        return TaskData {
            task,
            attention,
            tags: Vec::new(),
            timeline: Vec::new(),
            waits: Vec::new(),
            marks: Vec::new(),
        };
    };
    TaskData {
        task,
        attention,
        tags: record.tags.clone(),
        timeline: record
            .attempts
            .iter()
            .map(|a| Span {
                number: a.number,
                lane: a.lane,
                start: at(&a.started_at),
                end: a.ended_at.as_deref().and_then(at),
                status: a.status,
                reason: a.reason.as_deref().map(|r| redactor.redact(r).into_owned()),
            })
            .collect(),
        waits: record
            .questions
            .iter()
            .filter(|q| q.asked_at.is_some())
            .map(|q| Wait {
                seq: q.seq,
                start: q.asked_at.as_deref().and_then(at),
                end: q.answered_at.as_deref().and_then(at),
            })
            .collect(),
        marks: record
            .escalations
            .iter()
            .map(|m| Mark {
                rule: redactor.redact(&m.rule).into_owned(),
                summary: redactor.redact(&m.summary).into_owned(),
                at: at(&m.at),
            })
            .collect(),
    }
}

/// A task's data without the fields that say nothing; the page reads a
/// missing field as empty.
fn compact(task: &TaskData) -> serde_json::Value {
    let mut value = serde_json::to_value(task).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.retain(|_, v| match v {
            serde_json::Value::Null => false,
            serde_json::Value::Array(items) => !items.is_empty(),
            serde_json::Value::String(text) => !text.is_empty(),
            _ => true,
        });
    }
    value
}

/// Why the run ended with its exit code, in a sentence naming the rule or
/// the task that decided it (the precedence of `RunOutcome`).
fn why(report: &Report) -> String {
    let Some(code) = report.exit_code else {
        return "the run has not ended".to_owned();
    };
    let first = |wanted: fn(TaskStatus) -> bool| {
        let mut matching = report.tasks.iter().filter(|t| wanted(t.status));
        let task = matching.next()?;
        let more = matching.count();
        let mut line = format!("task {} {}", task.id, task.status.label());
        if let Some(reason) = &task.reason {
            line.push_str(": ");
            line.push_str(reason);
        }
        if more > 0 {
            line.push_str(&format!(" (and {more} more)"));
        }
        Some(line)
    };
    match RunOutcome::recorded(report.status, code) {
        RunOutcome::Interrupted => "interrupted before every task ended".to_owned(),
        RunOutcome::Escalated(_) => match report.escalations.first() {
            Some(rule) => format!("escalation rule {rule}"),
            None => "an escalation rule fired".to_owned(),
        },
        RunOutcome::Failed => {
            first(TaskStatus::is_failure).unwrap_or_else(|| "a task failed".to_owned())
        }
        RunOutcome::Blocked => first(|s| s == TaskStatus::Blocked)
            .map(|line| format!("{line}, a question left unanswered"))
            .unwrap_or_else(|| "a question was left unanswered".to_owned()),
        RunOutcome::Complete => "every task complete, no escalation".to_owned(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn millis(time: &str) -> Option<u64> {
    let parsed = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    u64::try_from(parsed.timestamp_millis()).ok()
}

/// The last `limit` bytes of `text`, cut at a character boundary.
fn keep_end(text: &str, limit: usize) -> &str {
    let mut start = text.len().saturating_sub(limit);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The first `limit` bytes of `text`, cut at a character boundary.
fn keep_start(text: &str, limit: usize) -> &str {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Text for an HTML element's content.
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if crate::util::escape::is_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_keep_whole_characters() {
        assert_eq!(keep_end("aé", 1), "");
        assert_eq!(keep_end("abc", 2), "bc");
        assert_eq!(keep_start("éa", 1), "");
        assert_eq!(keep_start("abc", 2), "ab");
    }

    #[test]
    fn title_text_is_escaped() {
        assert_eq!(
            html_text("</title><script>x</script>&"),
            "&lt;/title&gt;&lt;script&gt;x&lt;/script&gt;&amp;"
        );
    }

    #[test]
    fn times_are_milliseconds() {
        assert_eq!(millis("2026-11-25T16:13:42.123Z"), Some(1_795_623_222_123));
        assert_eq!(millis("not a time"), None);
    }
}
