//! What a run records on disk: `task.json` per task and `run.json` per run.
//! Both are read back by `dispatch status` (and later `resume` and
//! `report`), so they hold everything needed to show a task without its
//! worker.

pub mod checks;
pub mod folder;
pub mod index;
pub mod snapshot;

use serde::{Deserialize, Serialize};

use crate::agents::stream::{Outcome, Usage};
use crate::domain::checklist::Counts;
use crate::domain::redact::{Redact, Redactor};
use crate::domain::status::{RunStatus, TaskStatus};
use crate::ipc::findings::Finding;
use crate::isolation::review::BranchRecord;
use crate::manifest::types::Budget;
use crate::supervise::process::Exit;

/// One launch of a task's worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub pid: Option<u32>,
    pub exit: Option<Exit>,
    pub status: Option<TaskStatus>,
    pub reason: Option<String>,
    pub duration_ms: Option<u64>,
    /// Its acceptance checks, in order (none when the worker did not get
    /// as far as a done plan, or the task has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<checks::CheckRecord>,
    /// Which of the run's `concurrency` worker slots it ran in (0-based):
    /// report.html draws each attempt on its lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<u32>,
}

/// `.dispatch/tasks/<id>/task.json`.
///
/// A run holds one per task from its start to its end, so what most tasks
/// never have (a branch, a budget, a verdict, a stall, an API retry) is
/// boxed: absent, each costs a pointer (`sweep/footprint.rs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    /// Shared by every record of the run, not copied into each.
    pub run_id: std::sync::Arc<str>,
    pub title: String,
    pub status: TaskStatus,
    /// Why it ended as it did, in a sentence.
    pub reason: Option<String>,
    pub model: Option<String>,
    /// Shared with its planned task and every task on the same backend.
    pub backend: std::sync::Arc<str>,
    pub worktree: bool,
    /// A worktree task's branch: where it started, what was committed on
    /// it, and what became of its folder.
    #[serde(default)]
    pub branch: Option<Box<BranchRecord>>,
    /// Shared with its planned task, as the backend is.
    pub priority: std::sync::Arc<str>,
    /// The priority as a number (higher first), for ordering questions.
    #[serde(default)]
    pub rank: i64,
    pub needs: Vec<String>,
    /// Its tags (report.html filters by them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The command line, with secret values redacted and a long prompt
    /// argument shortened.
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    /// When `pid` started (`/proc/PID/stat` field 22, clock ticks after
    /// boot): a signal goes to `pid` only while it still started then, so
    /// a reused pid is never taken for the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_time: Option<u64>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub exit: Option<Exit>,
    pub items: Counts,
    /// The item the worker is on (or stopped at).
    pub current_item: Option<String>,
    pub usage: Usage,
    /// What it may spend (its own budget, or the defaults').
    #[serde(default)]
    pub budget: Option<Box<Budget>>,
    /// The earlier run whose result this task carries unchanged (a run
    /// started with `--retry-failed` or `--rerun`).
    #[serde(default)]
    pub carried_from: Option<String>,
    /// The agent CLI's own verdict, where its events give one.
    pub outcome: Option<Box<Outcome>>,
    /// What the worker reported with `dispatch worker finding`, in order.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The questions it asked and how they were answered.
    #[serde(default)]
    pub questions: Vec<QuestionRecord>,
    pub attempts: Vec<Attempt>,
    /// Items of the plan dispatch wrote that the worker deleted: the
    /// written plan is the contract, so the task did not complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// Items nobody ticked in a task the worker declared done
    /// (`ipc/.done`): `complete`, with this warning, and never a pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unticked: Vec<String>,
    /// The escalation rules that fired on something it did, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<EscalationMark>,
    /// Processes it started that outlived it (left its process group with
    /// `setsid` or a double fork) and were stopped: at its end, its
    /// timeout, the end of the run, or before a resume ran it again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strays: Vec<crate::supervise::reaper::Stray>,
    /// A stalled task's last sign of life: what it was and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Box<crate::supervise::activity::LastActivity>>,
    /// The API call its CLI is retrying, while it runs (cleared when the
    /// model answers); `dispatch status` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_retry: Option<Box<crate::agents::evidence::ApiRetry>>,
    /// The worker ran in a bubblewrap sandbox (`sandbox:`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandboxed: bool,
    /// Names (never values) of dispatch's environment variables the worker
    /// did not get (`env_policy: scoped`), as of its last launch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_left_out: Vec<String>,
}

/// Everything in a task's record that a worker (or its agent's stream)
/// could have written.
impl Redact for TaskRecord {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.title.redact_with(redactor);
        self.reason.redact_with(redactor);
        self.argv.redact_with(redactor);
        self.current_item.redact_with(redactor);
        self.outcome.redact_with(redactor);
        self.findings.redact_with(redactor);
        for question in &mut self.questions {
            question.text.redact_with(redactor);
            question.answer.redact_with(redactor);
            question.answered_by.redact_with(redactor);
        }
        if let Some(retry) = &mut self.api_retry {
            retry.error.redact_with(redactor);
        }
        for attempt in &mut self.attempts {
            attempt.reason.redact_with(redactor);
            attempt.checks.redact_with(redactor);
        }
        for mark in &mut self.escalations {
            mark.summary.redact_with(redactor);
        }
    }
}

/// An escalation rule that fired on a task: report.html marks it on the
/// task's timeline bar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EscalationMark {
    /// The rule's name (or `rule N`).
    pub rule: String,
    /// Its one-line summary, as in `run.json`'s `escalations`.
    pub summary: String,
    /// When it fired (RFC 3339).
    pub at: String,
}

/// A question a worker asked, and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionRecord {
    pub seq: u32,
    pub text: String,
    pub answer: Option<String>,
    /// `rule N`, `a person`, `the default answer`, `dispatch answer`.
    pub answered_by: Option<String>,
    /// When the runner saw it and when it was answered (RFC 3339): how
    /// long the worker waited, drawn on report.html's timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
}

/// `.dispatch/runs/<run-id>/run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub name: String,
    pub manifest: String,
    /// The manifest's absolute path: `resume` runs that file, and only
    /// while it reads as the copy taken when the run started.
    #[serde(default)]
    pub manifest_path: Option<String>,
    pub root: String,
    pub pid: u32,
    /// When the run's process started (as a task's `pid_start_time`): the
    /// run is live only while `pid` is still that process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_time: Option<u64>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub concurrency: u32,
    pub vars: Vec<(String, String)>,
    /// The names (never the values) the manifest lists under `secrets:`,
    /// so `dispatch status` and `dispatch report` in another process
    /// redact them too.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Task ids in schedule order.
    pub tasks: Vec<String>,
    /// `running` until the run ends, then `complete`, `failed`, `blocked`,
    /// `escalated` or `interrupted`.
    pub status: RunStatus,
    pub exit_code: Option<u8>,
    /// The escalation rules that fired, as one-line summaries.
    #[serde(default)]
    pub escalations: Vec<String>,
    /// The manifest's folder (absolute), for its templates and report paths.
    #[serde(default)]
    pub manifest_dir: String,
    /// Where the manifest asked reports to go, and which findings fail JUnit.
    #[serde(default)]
    pub reports: crate::manifest::types::Reports,
    /// Whether the worktree tasks' branches merge into their bases and
    /// with each other, checked when the run ended.
    #[serde(default)]
    pub merge_readiness: Option<crate::isolation::merge_check::MergeReadiness>,
    /// The earlier run this one reruns part of, carrying the rest over.
    #[serde(default)]
    pub continues: Option<String>,
    /// When `dispatch resume` took the run up again, each time.
    #[serde(default)]
    pub resumed_at: Vec<String>,
    /// The shard this run was (`--shard K/N`).
    #[serde(default)]
    pub shard: Option<crate::plan::shard::ShardInfo>,
    /// What the whole sweep may spend.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// What the tasks on each model may spend together.
    #[serde(default)]
    pub model_budgets: indexmap::IndexMap<String, Budget>,
    /// Findings from this severity up need a person's look (the lowest
    /// severity an escalation rule reacts to); `dispatch status` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_severity: Option<crate::manifest::types::Severity>,
}

impl Attempt {
    /// Attempt `number`, begun at `started_at` on `lane`: nothing about
    /// its end known yet.
    pub fn begun(number: u32, started_at: String, lane: Option<u32>) -> Self {
        Attempt {
            number,
            started_at,
            ended_at: None,
            pid: None,
            exit: None,
            status: None,
            reason: None,
            duration_ms: None,
            checks: Vec::new(),
            lane,
        }
    }
}

impl TaskRecord {
    /// Add an attempt, growing the list by one: most tasks make a single
    /// attempt, and a vector's first push reserves room for four (about
    /// 0.5 KiB a task kept for the whole run).
    pub fn add_attempt(&mut self, attempt: Attempt) {
        self.attempts.reserve_exact(1);
        self.attempts.push(attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_room_for_the_attempts_it_made_only() {
        let mut attempts = Vec::new();
        let attempt = |number| Attempt::begun(number, String::new(), None);
        let mut record: TaskRecord = serde_json::from_value(serde_json::json!({
            "id": "a", "run_id": "r", "title": "a", "status": "pending", "reason": null,
            "model": null, "backend": "command", "worktree": false, "priority": "normal",
            "needs": [], "argv": [], "pid": null, "started_at": null, "ended_at": null,
            "duration_ms": null, "exit": null, "items": Counts::default(),
            "current_item": null, "usage": Usage::default(), "outcome": null, "attempts": [],
        }))
        .unwrap_or_else(|e| panic!("a minimal record: {e}"));
        for number in 1..=2 {
            record.add_attempt(attempt(number));
            attempts.push(number);
            assert_eq!(record.attempts.capacity(), attempts.len());
        }
    }
}
