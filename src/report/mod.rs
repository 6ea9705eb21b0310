//! What a team and a pipeline read after a sweep: a JSON report (the data,
//! with a published schema), a Markdown report (for people, rendered from an
//! overridable template) and a JUnit file (for CI dashboards), all built from
//! the run's state on disk, so any past run can be reported again.

pub mod html;
pub mod junit;
mod junit_checks;
mod lazy_tasks;
pub mod markdown;
pub mod merge;
mod redact;
pub mod repair;
#[cfg(test)]
mod stream_tests;
pub mod tails;
pub mod write;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::checklist::ItemState;
use crate::domain::exit;
use crate::domain::redact::Redactor;
use crate::domain::status::{RunStatus, TaskStatus};
use crate::isolation::merge_check::MergeReadiness;
use crate::isolation::review::BranchRecord;
use crate::manifest::types::{Budget, Severity};
use crate::record::folder::Folder;
use crate::record::snapshot::{Snapshot, TaskView};
use crate::state::layout;
use crate::state::StateDir;

/// The JSON report's format version; bumped when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;
/// How much of a task's `output.md` a report quotes.
pub const OUTPUT_HEAD_BYTES: u64 = 2048;
/// How much of the end of a worker's log a report keeps.
pub const LOG_TAIL_BYTES: u64 = 4096;

/// A sweep's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// The version of this format (1).
    pub format_version: u32,
    /// The run's id (`YYYYMMDD-HHMMSS-xxxx`).
    pub run_id: String,
    /// The sweep's name.
    pub name: String,
    /// The manifest path as given to `dispatch run`.
    pub manifest: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended, if it did.
    pub ended_at: Option<String>,
    /// `running`, `complete`, `failed`, `blocked`, `escalated` or
    /// `interrupted` (also a run whose process is gone without concluding).
    pub status: RunStatus,
    /// The exit code of `dispatch run`, once it ended.
    pub exit_code: Option<u8>,
    /// The escalation rules that fired, one line each, most important first.
    pub escalations: Vec<String>,
    /// The earlier run this one reran part of (`--retry-failed`, `--rerun`);
    /// its other tasks are carried over, so this report covers the sweep.
    pub continues: Option<String>,
    /// The shard this run was (`--shard K/N`), and which shards have tasks.
    #[serde(default)]
    pub shard: Option<crate::plan::shard::ShardInfo>,
    /// Whether the worktree tasks' branches merge into their bases, and
    /// which of them conflict with each other (when the run ended).
    pub merge_readiness: Option<MergeReadiness>,
    /// Counts over all tasks.
    pub totals: Totals,
    /// The tasks in schedule order.
    pub tasks: Vec<TaskReport>,
}

/// Counts over the whole sweep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    /// How many tasks.
    pub tasks: usize,
    /// Tasks per status.
    pub statuses: IndexMap<String, usize>,
    /// Findings per severity.
    pub findings: IndexMap<String, usize>,
    /// Usage summed over the tasks.
    pub usage: UsageReport,
    /// What the whole sweep was allowed to spend.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Spend per model, against the model's budget where it has one.
    #[serde(default)]
    pub models: Vec<ModelSpend>,
    /// Tasks `complete` with a warning: declared done with items nobody
    /// ticked.
    #[serde(default)]
    pub unticked_tasks: usize,
    /// Tasks complete only on a retry: an earlier attempt failed, timed
    /// out or failed a check.
    #[serde(default)]
    pub flaky_tasks: usize,
}

/// What the tasks on one model used together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelSpend {
    /// The model name.
    pub model: String,
    /// Its tasks' usage, summed.
    pub usage: UsageReport,
    /// Its budget, if the manifest gave one.
    pub budget: Option<Budget>,
}

/// What the agent CLIs reported using.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageReport {
    /// Model turns.
    pub turns: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in US dollars, where the CLI reports one; rounded to 1e-10, so sums carry no float noise.
    #[serde(serialize_with = "crate::util::units::serialize_usd")]
    pub cost_usd: Option<f64>,
}

/// One task of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskReport {
    /// The task id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its status (see docs/state.md).
    pub status: TaskStatus,
    /// Why it ended as it did.
    pub reason: Option<String>,
    /// The model name, if any.
    pub model: Option<String>,
    /// The backend.
    pub backend: String,
    /// Whether it ran in a worktree.
    pub worktree: bool,
    /// A worktree task's branch, ready for review: commits ahead of its
    /// base, diff stat, uncommitted files, and what became of the folder.
    pub branch: Option<Box<BranchRecord>>,
    /// Its priority.
    pub priority: String,
    /// When it started and ended (RFC 3339).
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Time spent over all attempts, in milliseconds.
    pub duration_ms: Option<u64>,
    /// How many times its worker was launched.
    pub attempts: usize,
    /// Items done out of all.
    pub items_done: usize,
    /// All plan items.
    pub items_total: usize,
    /// The plan as the worker left it.
    pub plan: Vec<ItemReport>,
    /// What its worker used.
    pub usage: UsageReport,
    /// What it was allowed to spend, if it had a budget.
    pub budget: Option<Box<Budget>>,
    /// The earlier run whose result it carries unchanged.
    pub carried_from: Option<String>,
    /// Its findings, most severe first.
    pub findings: Vec<FindingReport>,
    /// The questions it asked.
    pub questions: Vec<QuestionReport>,
    /// The path of its `output.md`, relative to the project root.
    pub output_path: String,
    /// The start of `output.md` (at most 2 KiB), if it wrote one.
    pub output_head: Option<String>,
    /// The end of its worker's log (at most 4 KiB), control characters removed.
    pub log_tail: String,
    /// Items of the plan dispatch wrote that the worker deleted; the task
    /// is not complete, and JUnit keeps each as a failed case.
    #[serde(default)]
    pub dropped: Vec<String>,
    /// Items nobody ticked although the worker declared the task done
    /// (`ipc/.done`): the task is `complete` with this warning, and JUnit
    /// shows each as skipped, never passed.
    #[serde(default)]
    pub unticked: Vec<String>,
    /// A stalled task's last sign of life (output, a plan change, an API
    /// retry): what it was, when, and how long the worker was quiet after.
    /// Absent for every other task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Box<crate::supervise::activity::LastActivity>>,
    /// Complete only on a retry: an earlier attempt failed, timed out or
    /// failed a check. JUnit marks its checks' earlier failures
    /// `flakyFailure`.
    #[serde(default)]
    pub flaky: bool,
    /// The acceptance checks of its last attempt, in order: each a JUnit
    /// test case beside the plan items.
    #[serde(default)]
    pub checks: Vec<crate::record::checks::CheckRecord>,
    /// Each attempt of its worker: how it ended and what its checks said.
    #[serde(default)]
    pub attempt_results: Vec<AttemptReport>,
    /// For a failed or check-failed task: the last lines of its failed
    /// checks' output, or of its worker's log (redacted).
    #[serde(default)]
    pub failure_tail: Option<String>,
}

/// One attempt of a task's worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttemptReport {
    /// 1 for the first launch (counting earlier runs of a resumed task).
    pub number: u32,
    /// How the attempt ended (`null` while it runs).
    pub status: Option<TaskStatus>,
    /// Why, in a sentence.
    pub reason: Option<String>,
    pub duration_ms: Option<u64>,
    /// Its acceptance checks (none when its plan was not done).
    #[serde(default)]
    pub checks: Vec<crate::record::checks::CheckRecord>,
}

/// One plan item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemReport {
    /// The item's text.
    pub text: String,
    /// `pending`, `in-progress`, `done`, `blocked` or `failed`.
    pub state: String,
    /// The worker's note after the item.
    pub note: Option<String>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FindingReport {
    /// critical, high, medium, low or info.
    pub severity: Severity,
    /// What was found.
    pub title: String,
    /// Where (`file:line`).
    pub location: Option<String>,
    /// More detail.
    pub detail: Option<String>,
}

/// One question and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuestionReport {
    /// The question.
    pub text: String,
    /// The answer, if it got one.
    pub answer: Option<String>,
    /// Who answered.
    pub answered_by: Option<String>,
}

impl Report {
    /// The report with no tasks (its other fields cloned): the head of
    /// the JSON report, which is written a task at a time.
    pub fn without_tasks(&self) -> Report {
        Report {
            format_version: self.format_version,
            run_id: self.run_id.clone(),
            name: self.name.clone(),
            manifest: self.manifest.clone(),
            started_at: self.started_at.clone(),
            ended_at: self.ended_at.clone(),
            status: self.status,
            exit_code: self.exit_code,
            escalations: self.escalations.clone(),
            continues: self.continues.clone(),
            shard: self.shard.clone(),
            merge_readiness: self.merge_readiness.clone(),
            totals: self.totals.clone(),
            tasks: Vec::new(),
        }
    }
}

/// Build the report of a run from its state. Each task's part reads its
/// files (the head of `output.md`, the tail of `worker.log`), so a large
/// run's tasks are read on every core. What the workers wrote passes
/// through `redactor` before anything is rendered from it.
///
/// Each task's last plan is let go of once its part is made: the report
/// holds the plan's items from then on, and what renders after reads the
/// report and the records only (at 50,000 tasks the plans are a few MB of
/// the reports' peak).
///
/// [`Cores::One`] builds it on the calling thread. At the end of a wide
/// run that thread's heap has room the run freed, where glibc keeps it for
/// that thread; parts made on other threads take new memory instead, which
/// at 50,000 tasks raised the run's peak by about 18 MiB.
pub fn build(
    state: &StateDir,
    snapshot: &mut Snapshot,
    redactor: &Redactor,
    cores: Cores,
) -> Report {
    // In rounds, as [`build_from_disk`] reads: never every report twice.
    let mut tasks = Vec::with_capacity(snapshot.tasks.len());
    for start in (0..snapshot.tasks.len()).step_by(READ_ROUND) {
        let round = start..(start + READ_ROUND).min(snapshot.tasks.len());
        let run_id = &snapshot.run.run_id;
        let part = |views: &[TaskView]| {
            views
                .iter()
                .map(|view| task_report(state, run_id, view))
                .collect::<Vec<_>>()
        };
        let views = &snapshot.tasks[round.clone()];
        match cores {
            Cores::All => crate::util::parallel::map_chunks(views, part)
                .into_iter()
                .for_each(|part| tasks.extend(part)),
            Cores::One => tasks.extend(part(views)),
        }
        for view in &mut snapshot.tasks[round] {
            view.plan = None;
        }
    }
    assemble(snapshot, tasks, redactor)
}

/// Where [`build`] makes the tasks' parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cores {
    /// Split between the cores: the quickest.
    All,
    /// On the calling thread: the least memory at the end of a wide run.
    One,
}

/// The report of `snapshot`'s run (its tasks aside) with `tasks`, counted
/// and redacted.
fn assemble(snapshot: &Snapshot, tasks: Vec<TaskReport>, redactor: &Redactor) -> Report {
    let run = &snapshot.run;
    let totals = totals(&tasks, run.budget.clone(), |model| {
        run.model_budgets.get(model).cloned()
    });
    redactor.scrub(Report {
        format_version: FORMAT_VERSION,
        run_id: run.run_id.clone(),
        name: run.name.clone(),
        manifest: run.manifest.clone(),
        started_at: run.started_at.clone(),
        ended_at: run.ended_at.clone(),
        status: run.status,
        // A run whose process died without concluding never will: it is
        // reported as interrupted, so `merge` and CI read it as one.
        exit_code: run
            .exit_code
            .or_else(|| (!snapshot.live && run.ended_at.is_none()).then_some(exit::INTERRUPTED)),
        escalations: run.escalations.clone(),
        continues: run.continues.clone(),
        shard: run.shard.clone(),
        merge_readiness: run.merge_readiness.clone(),
        totals,
        tasks,
    })
}

/// How many tasks [`build_from_disk`] reads at a time (split between the
/// cores): enough that starting the threads costs nothing next to reading.
const READ_ROUND: usize = 4096;

/// The report of `run` read from its task folders, each task's part made
/// as its folder is read and its record then dropped (kept only with
/// `keep_records`, for the HTML page): `dispatch report` of a 50,000-task
/// run never holds every record and every report part at once. Returns
/// the report and the snapshot it was made from (its tasks only with
/// `keep_records`).
pub fn build_from_disk(
    state: &StateDir,
    run: crate::record::RunRecord,
    redactor: &Redactor,
    keep_records: bool,
) -> (Report, Snapshot) {
    use crate::record::snapshot;
    let mut head = snapshot::assemble(run, Vec::new());
    let dead = !head.live && head.run.ended_at.is_none();
    let ids: Vec<&str> = head.run.tasks.iter().map(String::as_str).collect();
    let load = |part: &[&str]| {
        let mut reports = Vec::with_capacity(part.len());
        let mut views = Vec::new();
        for id in part {
            let Some(mut view) = snapshot::load_task(state, &head.run, id, false) else {
                continue;
            };
            if dead {
                snapshot::mark_dead_task(&head.run.run_id, &mut view.record);
            }
            reports.push(task_report(state, &head.run.run_id, &view));
            if keep_records {
                // The page reads the records; the plan is in the report.
                view.plan = None;
                views.push(view);
            }
        }
        (reports, views)
    };
    // Read in rounds, each split between the cores, and moved into lists
    // made once at their full size: the parts of one read of every task
    // and the list they are joined into existed side by side, every
    // task's report twice (about 44 MB more at 50,000 tasks).
    let mut tasks = Vec::with_capacity(ids.len());
    let mut views = Vec::with_capacity(if keep_records { ids.len() } else { 0 });
    for round in ids.chunks(READ_ROUND) {
        for (reports, records) in crate::util::parallel::map_chunks(round, load) {
            tasks.extend(reports);
            views.extend(records);
        }
    }
    head.tasks = views;
    let report = assemble(&head, tasks, redactor);
    (report, head)
}

/// One task's part of the report: its record, its last plan, and the head
/// of its output and tail of its log, from its folder (or, once a later
/// run archived it, from this run's copy).
fn task_report(state: &StateDir, run_id: &str, view: &TaskView) -> TaskReport {
    let record = &view.record;
    let current = Folder::open(state.task_dir(&record.id)).ok();
    let folder = match current {
        Some(folder) if folder.has(layout::TASK_RECORD) => Some(folder),
        _ => Folder::open(state.run_dir(run_id).join("tasks").join(&record.id)).ok(),
    };
    let dir = folder.as_ref().map_or_else(
        || state.run_dir(run_id).join("tasks").join(&record.id),
        |f| f.path().to_path_buf(),
    );
    let mut findings: Vec<FindingReport> = record
        .findings
        .iter()
        .map(|f| FindingReport {
            severity: f.severity,
            title: f.title.clone(),
            location: f.location.clone(),
            detail: f.detail.clone(),
        })
        .collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let usage = UsageReport {
        turns: record.usage.turns,
        input_tokens: record.usage.input_tokens,
        output_tokens: record.usage.output_tokens,
        cost_usd: record.usage.cost_usd,
    };
    let plan: Vec<ItemReport> = view
        .plan
        .as_ref()
        .map(|p| {
            p.items
                .iter()
                .map(|i| ItemReport {
                    text: i.text.clone(),
                    state: item_state_name(i.state),
                    note: i.note.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let counts = view
        .plan
        .as_ref()
        .map(|p| p.counts())
        .unwrap_or(record.items);
    TaskReport {
        id: record.id.clone(),
        title: record.title.clone(),
        status: record.status,
        reason: record.reason.clone(),
        model: record.model.clone(),
        backend: record.backend.to_string(),
        worktree: record.worktree,
        branch: record.branch.clone(),
        priority: record.priority.to_string(),
        started_at: record.started_at.clone(),
        ended_at: record.ended_at.clone(),
        duration_ms: record.duration_ms,
        attempts: record.attempts.len(),
        items_done: counts.done,
        items_total: counts.total,
        plan,
        usage,
        budget: record.budget.clone(),
        carried_from: record.carried_from.clone(),
        findings,
        questions: record
            .questions
            .iter()
            .map(|q| QuestionReport {
                text: q.text.clone(),
                answer: q.answer.clone(),
                answered_by: q.answered_by.clone(),
            })
            .collect(),
        output_path: format!("{}/tasks/{}/output.md", crate::state::DIR_NAME, record.id),
        output_head: folder
            .as_ref()
            .and_then(|f| f.read(layout::OUTPUT, OUTPUT_HEAD_BYTES).ok())
            .map(|text| clean(&text)),
        log_tail: folder
            .as_ref()
            .and_then(|f| f.read_end(layout::WORKER_LOG, LOG_TAIL_BYTES).ok())
            .map(|bytes| clean(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default(),
        dropped: record.dropped.clone(),
        unticked: record.unticked.clone(),
        last_activity: record.last_activity.clone(),
        flaky: record.is_flaky(),
        failure_tail: tails::failure_tail(record, &dir),
        checks: record.last_checks().to_vec(),
        attempt_results: record
            .attempts
            .iter()
            .map(|a| AttemptReport {
                number: a.number,
                status: a.status,
                reason: a.reason.clone(),
                duration_ms: a.duration_ms,
                checks: a.checks.clone(),
            })
            .collect(),
    }
}

fn add_usage(sum: &mut UsageReport, usage: &UsageReport) {
    sum.turns += usage.turns;
    sum.input_tokens += usage.input_tokens;
    sum.output_tokens += usage.output_tokens;
    if let Some(cost) = usage.cost_usd {
        sum.cost_usd = Some(sum.cost_usd.unwrap_or(0.0) + cost);
    }
}

/// `critical`, `high`, … as written in manifests.
pub fn severity_name(severity: Severity) -> String {
    serde_json::to_value(severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn item_state_name(state: ItemState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The end of a (possibly huge) log: only the last `limit` bytes are read.
pub fn tail(path: &Path, limit: u64) -> String {
    let Ok(mut file) = crate::state::open_regular(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(limit)))
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.take(limit).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    clean(&String::from_utf8_lossy(&bytes))
}

/// Text fit for any report: ANSI escape sequences and control characters
/// (other than newline and tab) removed.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte; other escapes: one more char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for next in chars.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// The JSON Schema of the JSON report.
pub fn schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Report>();
    schema.to_value()
}

/// The schema as the text of `schemas/report.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The counts over a report's tasks: tasks per status and findings per
/// severity (in the order they first appear), usage summed, and spend per
/// model (in the order the models first appear), each model's budget from
/// `model_budget`. `dispatch run`'s reports and `dispatch merge` both count
/// with this.
pub fn totals(
    tasks: &[TaskReport],
    budget: Option<Budget>,
    model_budget: impl Fn(&str) -> Option<Budget>,
) -> Totals {
    let mut totals = Totals {
        tasks: tasks.len(),
        budget,
        ..Totals::default()
    };
    for task in tasks {
        *totals
            .statuses
            .entry(task.status.label().to_owned())
            .or_default() += 1;
        if !task.unticked.is_empty() {
            totals.unticked_tasks += 1;
        }
        if task.flaky {
            totals.flaky_tasks += 1;
        }
        for finding in &task.findings {
            *totals
                .findings
                .entry(severity_name(finding.severity))
                .or_default() += 1;
        }
        add_usage(&mut totals.usage, &task.usage);
        if let Some(model) = &task.model {
            let spend = match totals.models.iter().position(|m| &m.model == model) {
                Some(i) => &mut totals.models[i],
                None => {
                    totals.models.push(ModelSpend {
                        model: model.clone(),
                        budget: model_budget(model),
                        ..ModelSpend::default()
                    });
                    let last = totals.models.len() - 1;
                    &mut totals.models[last]
                }
            };
            add_usage(&mut spend.usage, &task.usage);
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_ansi_and_control_characters() {
        assert_eq!(
            clean("\u{1b}[31mred\u{1b}[0m \u{7} bell\r\nnext\tcol"),
            "red  bell\nnext\tcol"
        );
    }

    #[test]
    fn tail_reads_only_the_end() {
        let temp = tempfile::tempdir().expect("tempdir");
        let log = temp.path().join("worker.log");
        std::fs::write(&log, format!("{}END", "x".repeat(100_000))).expect("write");
        let t = tail(&log, 10);
        assert_eq!(t, "xxxxxxxEND");
    }
}
