//! Which tasks a person must look at after a run. The end summary,
//! `dispatch status` and the Markdown report all ask this one question, so
//! a 5,000-task sweep shows its three failures rather than 5,000 lines.

use crate::domain::status::TaskStatus;
use crate::manifest::types::{EscalationRule, Severity};
use crate::record::{RunRecord, TaskRecord};

/// Why a task needs attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attention {
    /// It ended other than complete (see [`TaskStatus::needs_attention`]).
    Status(TaskStatus),
    /// Complete, but only after an attempt that failed, timed out or
    /// failed a check ([`TaskRecord::is_flaky`]): it may fail next time.
    Flaky,
    /// Complete, with a finding at or above the escalation severity.
    Findings(Severity),
}

impl Attention {
    /// `flaky`, `failed`, `finding`: a word for the line that lists it.
    pub fn label(self) -> &'static str {
        match self {
            Attention::Status(status) => status.label(),
            Attention::Flaky => "flaky",
            Attention::Findings(_) => "findings",
        }
    }
}

/// Whether `record` needs a person's look, and why; `severity` is the run's
/// escalation severity (findings at or above it count).
pub fn attention(record: &TaskRecord, severity: Severity) -> Option<Attention> {
    let retried = record.is_flaky();
    let worst = record.findings.iter().map(|f| f.severity).max();
    attention_of(record.status, retried, worst, severity)
}

/// The rule itself, from what every view of a task has: its status,
/// whether an attempt before the last failed, and its worst finding.
pub fn attention_of(
    status: TaskStatus,
    retried: bool,
    worst: Option<Severity>,
    severity: Severity,
) -> Option<Attention> {
    if status.needs_attention() {
        return Some(Attention::Status(status));
    }
    if status != TaskStatus::Complete {
        return None;
    }
    if retried {
        return Some(Attention::Flaky);
    }
    worst.filter(|w| *w >= severity).map(Attention::Findings)
}

/// The lowest finding severity any escalation rule reacts to: findings
/// from there up need a person. Without such a rule, only critical ones
/// (the level of the rule a manifest without rules gets).
pub fn escalation_severity(rules: &[EscalationRule]) -> Severity {
    rules
        .iter()
        .filter_map(|rule| rule.when.severity)
        .min()
        .unwrap_or(Severity::Critical)
}

/// The run's escalation severity as recorded, for runs read back
/// (`dispatch status`); runs recorded before it was kept use the default.
pub fn recorded_severity(run: &RunRecord) -> Severity {
    run.attention_severity.unwrap_or(Severity::Critical)
}
