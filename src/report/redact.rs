//! A report quotes what workers wrote: the plan as they left it, the head
//! of `output.md`, their findings and questions. `output.md` and `plan.md`
//! are read from the task folders when the report is built, never through
//! a redacted record, so the whole report passes through the run's
//! redactor before any of report.json, report.md, junit.xml, the job
//! summary or the annotations is rendered from it.

use super::{Report, TaskReport};
use crate::domain::redact::{Redact, Redactor};

impl Redact for Report {
    fn redact_with(&mut self, r: &Redactor) {
        self.name.redact_with(r);
        self.escalations.redact_with(r);
        self.tasks.redact_with(r);
    }
}

impl Redact for TaskReport {
    fn redact_with(&mut self, r: &Redactor) {
        self.title.redact_with(r);
        self.reason.redact_with(r);
        for item in &mut self.plan {
            item.text.redact_with(r);
            item.note.redact_with(r);
        }
        for finding in &mut self.findings {
            finding.title.redact_with(r);
            finding.location.redact_with(r);
            finding.detail.redact_with(r);
        }
        for question in &mut self.questions {
            question.text.redact_with(r);
            question.answer.redact_with(r);
            question.answered_by.redact_with(r);
        }
        self.output_head.redact_with(r);
        self.log_tail.redact_with(r);
        self.checks.redact_with(r);
        self.failure_tail.redact_with(r);
        for attempt in &mut self.attempt_results {
            attempt.reason.redact_with(r);
            attempt.checks.redact_with(r);
        }
    }
}
