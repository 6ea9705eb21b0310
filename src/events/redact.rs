//! Events carry worker text (questions, answers, findings, plan items,
//! reasons, warnings that quote a worker's file), and every event reaches
//! `events.jsonl`, the console and `--json`: each passes through the run's
//! redactor before it is written or shown.

use super::Event;
use crate::domain::redact::{Redact, Redactor};

impl Redact for Event {
    fn redact_with(&mut self, r: &Redactor) {
        match self {
            Event::RunStarted { name, .. } => name.redact_with(r),
            Event::RunResumed { .. }
            | Event::TaskStarted { .. }
            | Event::Interrupted { .. }
            | Event::TaskCarried { .. }
            | Event::RunEnded { .. } => {}
            Event::Item {
                text,
                note,
                current,
                ..
            } => {
                text.redact_with(r);
                note.redact_with(r);
                current.redact_with(r);
            }
            Event::TaskEnded { reason, .. } | Event::TaskSkipped { reason, .. } => {
                reason.redact_with(r)
            }
            Event::WorktreeReady { path, branch, .. }
            | Event::BranchReviewed { path, branch, .. } => {
                path.redact_with(r);
                branch.redact_with(r);
            }
            Event::Warning { message, .. } => message.redact_with(r),
            Event::ApiRetry { error, summary, .. } => {
                error.redact_with(r);
                summary.redact_with(r);
            }
            Event::CheckEnded { name, .. } => name.redact_with(r),
            Event::Question { text, .. } => text.redact_with(r),
            Event::Answered { answer, by, .. } => {
                answer.redact_with(r);
                by.redact_with(r);
            }
            Event::Finding {
                title,
                location,
                detail,
                ..
            } => {
                title.redact_with(r);
                location.redact_with(r);
                detail.redact_with(r);
            }
            Event::Escalation { summary, .. } => summary.redact_with(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_text_in_events_is_redacted() {
        let redactor = Redactor::new(
            [("MY_API_KEY".to_owned(), "sk-test-123456".to_owned())],
            &[],
        );
        let event = redactor.scrub(Event::Warning {
            task: None,
            message: "findings.jsonl line 1 skipped: invalid type: string \"sk-test-123456\""
                .to_owned(),
        });
        let shown = serde_json::to_string(&event).unwrap_or_default();
        assert!(shown.contains("[redacted MY_API_KEY]"), "{shown}");
        assert!(!shown.contains("sk-test-123456"), "{shown}");
    }
}
