//! GitHub Actions: an annotation for each escalation that fired, each
//! finding (on the diff when it has a location, on the run's page without
//! a file when not) and each question left unanswered, and the Markdown
//! report in the job summary. The annotations go to stdout, or to stderr
//! under `--json` (which owns stdout); the runner reads workflow commands
//! from both.

use super::reporter::{Github, Reporter, RunEnd, Sink};
use super::sanitize::{sanitize_for, Destination};
use super::Stamped;
use crate::manifest::types::Severity;
use crate::record::TaskRecord;

pub struct GithubReporter {
    options: Github,
    out: Sink,
}

impl GithubReporter {
    pub fn new(options: Github, out: Sink) -> Self {
        Self { options, out }
    }
}

impl Reporter for GithubReporter {
    /// Findings are annotated at the end, from the records: tasks carried
    /// over from an earlier run have no events here, but their findings
    /// belong on the diff too.
    fn report(&mut self, _stamped: &Stamped<'_>) {}

    fn finish(&mut self, end: &RunEnd<'_>) {
        if self.options.annotations {
            for line in annotations(end.summary.records, end.summary.escalations) {
                self.out.line(&line);
            }
        }
        if let Some(path) = &self.options.step_summary {
            let whole = format!(
                "`{}/report.md`",
                crate::state::layout::run_dir(end.summary.run_id)
            );
            if let Err(e) = super::job_summary::append(path, end.markdown, &whole) {
                // Said where GitHub shows it: as a warning annotation.
                self.out.line(&format!(
                    "::warning::{}",
                    sanitize_for(
                        Destination::GithubData,
                        &format!("cannot append to GITHUB_STEP_SUMMARY: {e}")
                    )
                ));
            }
        }
    }
}

/// The annotations of a run: `::error title=escalation::RULE` for each
/// escalation that fired (they set the exit code, so they lead), then per
/// task its findings, most severe first (`::error` from high up, else
/// `::warning`; `file=F,line=L` when the finding has a location, none
/// otherwise, so GitHub shows it on the run's page), and its questions
/// nobody answered (`::error`: they end the run with 4 when nothing
/// failed).
pub fn annotations(records: &[Box<TaskRecord>], escalations: &[String]) -> Vec<String> {
    let property = |text: &str| sanitize_for(Destination::GithubProperty, text).into_owned();
    let data = |text: &str| sanitize_for(Destination::GithubData, text).into_owned();
    let mut out: Vec<String> = escalations
        .iter()
        .map(|line| format!("::error title=escalation::{}", data(line)))
        .collect();
    for record in records {
        let mut findings: Vec<_> = record.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for finding in findings {
            let level = if finding.severity >= Severity::High {
                "error"
            } else {
                "warning"
            };
            let mut properties = String::new();
            if let Some(location) = &finding.location {
                let (file, line) = split_location(location);
                properties.push_str(&format!("file={},", property(file)));
                if let Some(line) = line {
                    properties.push_str(&format!("line={line},"));
                }
            }
            let severity = super::screen::severity_label(finding.severity).to_lowercase();
            properties.push_str(&format!(
                "title={}",
                property(&format!("{} {severity}", record.id))
            ));
            out.push(format!("::{level} {properties}::{}", data(&finding.title)));
        }
        for question in record.questions.iter().filter(|q| q.answer.is_none()) {
            out.push(format!(
                "::error title={}::{}",
                property(&format!("{} question unanswered", record.id)),
                data(&format!(
                    "{} (answer with: dispatch answer {} --seq {} \"...\", then dispatch resume)",
                    question.text, record.id, question.seq
                ))
            ));
        }
    }
    out
}

/// `FILE:LINE` as the file and the line; anything else is all file.
fn split_location(location: &str) -> (&str, Option<&str>) {
    match location.rsplit_once(':') {
        Some((file, line)) if line.chars().all(|c| c.is_ascii_digit()) && !line.is_empty() => {
            (file, Some(line))
        }
        _ => (location, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_cannot_forge_a_workflow_command() {
        let record: TaskRecord = serde_json::from_value(serde_json::json!({
            "id": "t", "run_id": "r", "title": "", "status": "complete", "reason": null,
            "model": null, "backend": "command", "worktree": false, "priority": "normal",
            "needs": [], "argv": [], "pid": null, "started_at": null, "ended_at": null,
            "duration_ms": null, "exit": null,
            "items": { "total": 0, "done": 0, "pending": 0, "in_progress": 0, "blocked": 0, "failed": 0 },
            "current_item": null,
            "usage": { "turns": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cost_usd": null },
            "outcome": null, "attempts": [],
            "findings": [{ "severity": "high", "title": "t\n::error::forged\u{1b}[2J",
                           "location": "a,b:c\n::stop-commands::x:12" }],
            "questions": [{ "seq": 1, "text": "q\n::error::forged", "answer": null, "answered_by": null }],
        }))
        .unwrap_or_else(|e| panic!("record: {e}"));
        assert_eq!(
            annotations(&[Box::new(record)], &["rule: t\n::error::forged".to_owned()]),
            [
                "::error title=escalation::rule: t%0A::error::forged",
                "::error file=a%2Cb%3Ac%0A%3A%3Astop-commands%3A%3Ax,line=12,title=t high::t%0A::error::forged\\x1b[2J",
                "::error title=t question unanswered::q%0A::error::forged (answer with: dispatch answer t --seq 1 \"...\", then dispatch resume)",
            ]
        );
    }
}
