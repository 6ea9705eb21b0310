//! The end of a run as people read it: one line of counts, then one line
//! per task that needs attention. Complete tasks are listed only when they
//! are few (or with `--verbose`): after a live view showed each finish,
//! 5,000 more lines would only push the three failures out of sight.

use std::time::Duration;

use super::attention::{attention, Attention};
use super::colour::{status_tone, Tone};
use super::screen::{severity_label, status_symbol};
use crate::domain::status::TaskStatus;
use crate::manifest::types::Severity;
use crate::record::TaskRecord;
use crate::util::clock;

/// Complete tasks are listed when there are at most this many.
pub const LIST_COMPLETE_UP_TO: usize = 20;
/// At most this many tasks needing attention are listed without
/// `--verbose`; the rest are counted, and `dispatch status` lists them all.
pub const ATTENTION_LINES: usize = 50;
/// At most this many ids are named in one warning line without
/// `--verbose`: at 5,000 tasks the whole list is a wall of text.
pub const NAMED_IN_A_LINE: usize = 10;

/// `a, b, c`, or the first [`NAMED_IN_A_LINE`] and how many more.
fn named(ids: &[&str], verbose: bool) -> String {
    if verbose || ids.len() <= NAMED_IN_A_LINE {
        return ids.join(", ");
    }
    format!(
        "{}, … and {} more (`--verbose` names every one)",
        ids[..NAMED_IN_A_LINE].join(", "),
        ids.len() - NAMED_IN_A_LINE
    )
}

/// What the end-of-run summary says.
pub struct Summary<'a> {
    pub name: &'a str,
    pub run_id: &'a str,
    pub records: &'a [Box<TaskRecord>],
    /// The escalation rules that fired, one line each.
    pub escalations: &'a [String],
    pub duration: Duration,
    pub exit_code: u8,
    /// Findings from this severity up need attention.
    pub severity: Severity,
    /// List every task.
    pub verbose: bool,
    /// The end of what failed tasks printed, by task id (see
    /// `report::tails`), shown under each one's line.
    pub tails: &'a [(String, String)],
}

impl Summary<'_> {
    /// The summary's lines: escalations first (the launch blocker), then
    /// the counts, then the tasks worth a look. Each line is one logical
    /// line; the reporter escapes it for where it goes.
    pub fn lines(&self) -> Vec<String> {
        self.toned_lines()
            .into_iter()
            .map(|(_, line)| line)
            .collect()
    }

    /// [`Summary::lines`], each with the colour a terminal shows it in.
    pub fn toned_lines(&self) -> Vec<(Option<Tone>, String)> {
        let mut lines: Vec<(Option<Tone>, String)> = self
            .escalations
            .iter()
            .map(|escalation| (Some(Tone::Bad), format!("ESCALATED {escalation}")))
            .collect();
        let headline = if self.exit_code == 0 {
            Tone::Good
        } else {
            Tone::Bad
        };
        lines.push((
            Some(headline),
            format!(
                "Sweep {}: {}{} in {}{} (run {}, exit code {})",
                self.name,
                counts(self.records),
                flaky(self.records),
                clock::human(self.duration),
                usage(self.records),
                self.run_id,
                self.exit_code
            ),
        ));
        let unticked: Vec<&str> = self
            .records
            .iter()
            .filter(|r| !r.unticked.is_empty())
            .map(|r| r.id.as_str())
            .collect();
        if !unticked.is_empty() {
            lines.push((
                Some(Tone::Warn),
                format!(
                    "warning: {} complete task{} declared done with items nobody ticked: {}",
                    unticked.len(),
                    if unticked.len() == 1 {
                        " was"
                    } else {
                        "s were"
                    },
                    named(&unticked, self.verbose)
                ),
            ));
        }
        let mut needing = 0;
        for record in self.records {
            if let Some(why) = attention(record, self.severity) {
                needing += 1;
                if self.verbose || needing <= ATTENTION_LINES {
                    lines.push((Some(why_tone(why)), task_line(record, Some(why))));
                    if let Some((_, tail)) = self.tails.iter().find(|(id, _)| *id == record.id) {
                        lines.extend(tail.lines().map(|line| (None, format!("    │ {line}"))));
                    }
                }
            }
        }
        if needing > ATTENTION_LINES && !self.verbose {
            lines.push((
                None,
                format!(
                    "… and {} more needing attention (`dispatch status` lists every one)",
                    needing - ATTENTION_LINES
                ),
            ));
        }
        let fine = self.records.len() - needing;
        if self.verbose || fine <= LIST_COMPLETE_UP_TO {
            lines.extend(
                self.records
                    .iter()
                    .filter(|r| attention(r, self.severity).is_none())
                    .map(|r| (Some(status_tone(r.status)), task_line(r, None))),
            );
        } else {
            lines.push((
                None,
                format!("{fine} tasks fine, not listed (`--verbose` lists them)"),
            ));
        }
        lines.push((
            None,
            "Plans, outputs and logs: .dispatch/tasks/<id>/".to_owned(),
        ));
        lines
    }

    /// The lines joined, each ending in a newline.
    pub fn text(&self) -> String {
        self.lines().into_iter().map(|l| l + "\n").collect()
    }
}

/// A task needing attention is red when it failed, yellow otherwise.
fn why_tone(why: Attention) -> Tone {
    match why {
        Attention::Status(status) => status_tone(status),
        Attention::Flaky | Attention::Findings(_) => Tone::Warn,
    }
}

/// `4997 complete, 3 failed`, in a fixed status order; `no tasks to run`
/// for none (an empty shard, say).
pub fn counts(records: &[Box<TaskRecord>]) -> String {
    status_counts(records.iter().map(|r| r.status))
}

/// [`counts`] of the statuses alone (`dispatch status` has no more of a
/// finished run's tasks than its index).
pub fn status_counts(statuses: impl IntoIterator<Item = TaskStatus>) -> String {
    let mut by = [0usize; TaskStatus::ALL.len()];
    for status in statuses {
        if let Some(i) = TaskStatus::ALL.iter().position(|s| *s == status) {
            by[i] += 1;
        }
    }
    let parts: Vec<String> = TaskStatus::ALL
        .iter()
        .zip(by)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.label()))
        .collect();
    if parts.is_empty() {
        "no tasks to run".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `, 2 flaky` (complete only on a retry), or nothing.
fn flaky(records: &[Box<TaskRecord>]) -> String {
    match records.iter().filter(|r| r.is_flaky()).count() {
        0 => String::new(),
        n => format!(" ({n} flaky)"),
    }
}

/// ` · 12345 tokens · $1.23`: what the workers reported spending; ` · cost
/// not reported` when workers ran and none reported a cost, so a missing
/// figure is never read as free.
fn usage(records: &[Box<TaskRecord>]) -> String {
    let tokens: u64 = records
        .iter()
        .map(|r| r.usage.input_tokens + r.usage.output_tokens)
        .sum();
    let cost: Option<f64> = records
        .iter()
        .filter_map(|r| r.usage.cost_usd)
        .fold(None, |sum, c| Some(sum.unwrap_or(0.0) + c));
    let mut out = String::new();
    if tokens > 0 {
        out.push_str(&format!(" · {tokens} tokens"));
    }
    match cost {
        Some(cost) => out.push_str(&format!(" · {}", crate::util::units::usd(cost))),
        None if records.iter().any(|r| !r.attempts.is_empty()) => {
            out.push_str(" · cost not reported")
        }
        None => {}
    }
    out
}

/// One task: `✗ id (model) — failed: reason; 2 findings (1 high, 1 low)`.
pub fn task_line(record: &TaskRecord, why: Option<Attention>) -> String {
    let model = record
        .model
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let reason = record.reason.as_deref().unwrap_or("");
    let (symbol, state) = match why {
        Some(Attention::Flaky) => {
            let failed = record.attempts.iter().filter(|a| {
                a.status
                    .is_some_and(crate::record::checks::failed_by_itself)
            });
            (
                "~",
                format!(
                    "flaky: complete after {} failed attempt{} of {}",
                    failed.clone().count(),
                    if failed.count() == 1 { "" } else { "s" },
                    record.attempts.len()
                ),
            )
        }
        Some(Attention::Findings(_)) => ("!", format!("complete: {reason}")),
        Some(Attention::Status(_)) | None => (
            status_symbol(record.status),
            format!("{}: {reason}", record.status.label()),
        ),
    };
    format!(
        "{symbol} {}{model} — {state}{}",
        record.id,
        findings_tally(record)
    )
}

/// `; 3 findings (1 critical, 2 high)`, or nothing.
pub fn findings_tally(record: &TaskRecord) -> String {
    if record.findings.is_empty() {
        return String::new();
    }
    let mut by: Vec<(Severity, usize)> = Vec::new();
    for finding in &record.findings {
        match by.iter_mut().find(|(s, _)| *s == finding.severity) {
            Some((_, n)) => *n += 1,
            None => by.push((finding.severity, 1)),
        }
    }
    by.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let parts: Vec<String> = by
        .iter()
        .map(|(s, n)| format!("{n} {}", severity_label(*s).to_lowercase()))
        .collect();
    let n = record.findings.len();
    format!(
        "; {n} finding{} ({})",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, status: &str, reason: &str, attempts: &[&str]) -> TaskRecord {
        let attempts: Vec<serde_json::Value> = attempts
            .iter()
            .enumerate()
            .map(|(i, status)| {
                serde_json::json!({ "number": i + 1, "started_at": "t", "ended_at": "t",
                    "pid": 1, "exit": null, "status": status, "reason": null, "duration_ms": 5 })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": id, "run_id": "r", "title": id, "status": status,
            "reason": reason,
            "model": null, "backend": "command", "worktree": false, "priority": "normal",
            "needs": [], "argv": ["sh"], "pid": null, "started_at": null, "ended_at": null,
            "duration_ms": 10, "exit": null,
            "items": { "total": 2, "done": 2, "pending": 0, "in_progress": 0, "blocked": 0, "failed": 0 },
            "current_item": null,
            "usage": { "turns": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cost_usd": null },
            "outcome": null, "attempts": attempts,
        }))
        .expect("a task record")
    }

    /// The summary a person reads after checks: the flaky count, the cost
    /// nobody reported, and the failed check's output under its task.
    #[test]
    fn a_summary_shows_failure_tails_flaky_tasks_and_the_cost() {
        let records = [
            record(
                "payments",
                "check-failed",
                "2/2 items done, but 1 of 1 check failed: `unit tests` (exit code 101)",
                &["check-failed"],
            ),
            record(
                "docs",
                "complete",
                "2/2 items done; 1 check passed",
                &["check-failed", "complete"],
            ),
            record(
                "lint",
                "complete",
                "2/2 items done; 1 check passed",
                &["complete"],
            ),
        ];
        let tails = [(
            "payments".to_owned(),
            "check `unit tests` (exit code 101):\ntest refund ... FAILED\ntest result: FAILED. 1 passed; 1 failed".to_owned(),
        )];
        let summary = Summary {
            name: "checks",
            run_id: "20261203-100000-abcd",
            records: &records.map(Box::new),
            escalations: &[],
            duration: Duration::from_secs(42),
            exit_code: 1,
            severity: Severity::High,
            verbose: false,
            tails: &tails,
        };
        insta::assert_snapshot!(summary.text());
    }

    #[test]
    fn a_summary_of_no_tasks_says_so() {
        let summary = Summary {
            name: "sweep",
            run_id: "20261125-000000-abcd",
            records: &[],
            escalations: &[],
            duration: Duration::from_millis(3),
            exit_code: 0,
            severity: Severity::High,
            verbose: false,
            tails: &[],
        };
        assert!(
            summary
                .text()
                .starts_with("Sweep sweep: no tasks to run in 3ms"),
            "{}",
            summary.text()
        );
    }

    #[test]
    fn a_long_list_of_ids_in_a_warning_names_ten_and_counts_the_rest() {
        let ids: Vec<String> = (0..5000).map(|n| format!("t{n}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            named(&ids, false),
            "t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, … and 4990 more (`--verbose` names every one)"
        );
        assert_eq!(named(&ids, true).matches(", ").count(), 4999);
        assert_eq!(named(&ids[..3], false), "t0, t1, t2");
    }
}
