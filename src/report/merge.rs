//! `dispatch merge`: the reports of a sweep's shards (`dispatch run --shard
//! K/N` on several machines) combined into one report, as if one machine
//! had run the whole sweep. See docs/sharding.md.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::{totals, Report, FORMAT_VERSION};
use crate::domain::exit::{self, RunOutcome};

/// The `run_id` of a merged report starts with this, followed by the
/// shards' run ids joined by `+`: `merged:20250101-120000-ab12+…`.
pub const RUN_ID_PREFIX: &str = "merged:";

/// Why reports cannot be merged. Reports are named by their 0-based
/// position in the list given to [`merge`]; [`MergeError::message`] words
/// the error with the names the caller knows them by (file names).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Empty,
    #[error("{}", self.message(|i| format!("report {}", i + 1)))]
    FormatVersion { report: usize, version: u32 },
    #[error("{}", self.message(|i| format!("report {}", i + 1)))]
    NotEnded { report: usize },
    #[error("{}", self.message(|i| format!("report {}", i + 1)))]
    DifferentSweeps {
        first: usize,
        first_name: String,
        other: usize,
        other_name: String,
    },
    #[error("{}", self.message(|i| format!("report {}", i + 1)))]
    MissingShards { count: u32, missing: Vec<u32> },
    #[error("{}", self.message(|i| format!("report {}", i + 1)))]
    DuplicateTask {
        id: String,
        first: usize,
        second: usize,
    },
}

impl MergeError {
    /// The error in words, each report called by `name(position)`.
    pub fn message(&self, name: impl Fn(usize) -> String) -> String {
        match self {
            MergeError::Empty => "no reports to merge".to_owned(),
            MergeError::FormatVersion { report, version } => format!(
                "{} has report format version {version}; this dispatch reads version {FORMAT_VERSION}",
                name(*report)
            ),
            MergeError::NotEnded { report } => {
                format!("{} is of a run that has not ended", name(*report))
            }
            MergeError::DifferentSweeps {
                first,
                first_name,
                other,
                other_name,
            } => format!(
                "{} is of sweep `{other_name}`, but {} is of sweep `{first_name}`",
                name(*other),
                name(*first)
            ),
            MergeError::MissingShards { count, missing } => format!(
                "the report of shard {} is missing",
                missing
                    .iter()
                    .map(|k| format!("{k}/{count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            MergeError::DuplicateTask { id, first, second } => format!(
                "task `{id}` is in both {} and {}",
                name(*first),
                name(*second)
            ),
        }
    }

    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            MergeError::Empty => "give the report.json of each shard",
            MergeError::FormatVersion { .. } => {
                "merge reports written by the same version of dispatch"
            }
            MergeError::NotEnded { .. } => {
                "merge the report.json that `dispatch run --report-dir` writes when the run ends"
            }
            MergeError::DifferentSweeps { .. } => "merge only the shards of one sweep",
            MergeError::MissingShards { .. } => {
                "give the report.json of every shard that has tasks; a merge without one would report a partial sweep as whole"
            }
            MergeError::DuplicateTask { .. } => {
                "the shards overlap: run every shard with the same N in --shard K/N and the same manifest and --var values, and give each shard's report once"
            }
        }
    }
}

/// Combine the reports of a sweep's shards into one, as one machine
/// running the whole sweep would have reported it:
///
/// - the tasks of every report: reports in the order they started (ties:
///   in the order given), each one's tasks in their own order;
/// - `totals` counted again over those tasks, as a run counts them (the
///   sweep's budget and each model's taken from the first report that has
///   one);
/// - `run_id` is `merged:` and the shards' run ids in that order, joined
///   by `+`; `started_at` the earliest start, `ended_at` the latest end;
/// - the escalations of every report, each once; the merge readiness of
///   every report's branches (conflicts between branches of different
///   shards are not known);
/// - the exit code by the precedence of `dispatch run`: 130 if a shard was
///   interrupted; else, if a shard escalated, the highest escalation exit
///   code; else 1 if a task failed, was incomplete, timed out, went over
///   budget, was cancelled or skipped; else 4 if a task is blocked; else
///   0. `status` says the same: `interrupted`, `escalated`, `failed`,
///   `blocked` or `complete`.
///
/// Refused: an empty list, a report of another format version, of a run
/// that has not ended, of another sweep (another `name`), and a task that
/// is in two reports (the shards overlap).
pub fn merge(reports: Vec<Report>) -> Result<Report, MergeError> {
    if reports.is_empty() {
        return Err(MergeError::Empty);
    }
    for (i, report) in reports.iter().enumerate() {
        if report.format_version != FORMAT_VERSION {
            return Err(MergeError::FormatVersion {
                report: i,
                version: report.format_version,
            });
        }
        if report.exit_code.is_none() {
            return Err(MergeError::NotEnded { report: i });
        }
        if report.name != reports[0].name {
            return Err(MergeError::DifferentSweeps {
                first: 0,
                first_name: reports[0].name.clone(),
                other: i,
                other_name: report.name.clone(),
            });
        }
    }
    if let Some(count) = reports
        .iter()
        .find_map(|r| r.shard.as_ref().map(|s| s.count))
    {
        let expected: Vec<u32> = reports
            .iter()
            .filter_map(|r| r.shard.as_ref())
            .filter(|s| s.count == count)
            .flat_map(|s| s.with_tasks.iter().copied())
            .collect();
        let mut missing: Vec<u32> = expected
            .into_iter()
            .filter(|k| {
                !reports.iter().any(|r| {
                    r.shard
                        .as_ref()
                        .is_some_and(|s| s.index == *k && s.count == count)
                })
            })
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            return Err(MergeError::MissingShards { count, missing });
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, report) in reports.iter().enumerate() {
        for task in &report.tasks {
            if let Some(&first) = seen.get(task.id.as_str()) {
                return Err(MergeError::DuplicateTask {
                    id: task.id.clone(),
                    first,
                    second: i,
                });
            }
            seen.insert(&task.id, i);
        }
    }

    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by(|&a, &b| earlier(&reports[a].started_at, &reports[b].started_at));
    let outcome = outcome(&reports);
    let budget = reports.iter().find_map(|r| r.totals.budget.clone());
    let model_budgets: Vec<_> = reports
        .iter()
        .flat_map(|r| &r.totals.models)
        .filter_map(|m| m.budget.clone().map(|b| (m.model.clone(), b)))
        .collect();
    let started_at = order
        .first()
        .map(|&i| reports[i].started_at.clone())
        .unwrap_or_default();
    let ended_at = reports
        .iter()
        .filter_map(|r| r.ended_at.as_ref())
        .max_by(|a, b| earlier(a, b))
        .cloned();
    let run_ids: Vec<&str> = order.iter().map(|&i| reports[i].run_id.as_str()).collect();
    let run_id = format!("{RUN_ID_PREFIX}{}", run_ids.join("+"));
    let mut continued: Vec<&str> = Vec::new();
    for &i in &order {
        if let Some(run) = reports[i].continues.as_deref() {
            if !continued.contains(&run) {
                continued.push(run);
            }
        }
    }
    let continues = match continued.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(format!("{RUN_ID_PREFIX}{}", many.join("+"))),
    };
    let manifest = reports[order[0]].manifest.clone();
    let name = reports[0].name.clone();

    let mut escalations: Vec<String> = Vec::new();
    let mut merge_readiness: Option<crate::isolation::merge_check::MergeReadiness> = None;
    let mut tasks = Vec::with_capacity(seen.len());
    let mut reports: Vec<Option<Report>> = reports.into_iter().map(Some).collect();
    for i in order {
        let Some(report) = reports[i].take() else {
            continue;
        };
        for escalation in report.escalations {
            if !escalations.contains(&escalation) {
                escalations.push(escalation);
            }
        }
        if let Some(readiness) = report.merge_readiness {
            let merged = merge_readiness.get_or_insert_with(Default::default);
            merged.branches.extend(readiness.branches);
            merged.conflicts.extend(readiness.conflicts);
        }
        tasks.extend(report.tasks);
    }
    let totals = totals(&tasks, budget, |model| {
        model_budgets
            .iter()
            .find(|(name, _)| name == model)
            .map(|(_, budget)| budget.clone())
    });
    Ok(Report {
        format_version: FORMAT_VERSION,
        run_id,
        name,
        manifest,
        started_at,
        ended_at,
        status: outcome.status(),
        exit_code: Some(outcome.code()),
        escalations,
        continues,
        // The merged report is the whole sweep, no longer a shard.
        shard: None,
        merge_readiness,
        totals,
        tasks,
    })
}

/// The order of two RFC 3339 times (as text when one does not parse).
fn earlier(a: &str, b: &str) -> Ordering {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// The outcome one run of the whole sweep would have ended with, by the
/// precedence of `dispatch run` ([`RunOutcome::decide`]): a shard that was
/// interrupted (or whose process is gone) interrupts the sweep; else the
/// most drastic escalation code of the shards that escalated; else the
/// tasks' statuses decide.
fn outcome(reports: &[Report]) -> RunOutcome {
    let recorded: Vec<RunOutcome> = reports
        .iter()
        .map(|r| RunOutcome::recorded(r.status, r.exit_code.unwrap_or(exit::TASK_FAILED)))
        .collect();
    let interrupted = recorded.contains(&RunOutcome::Interrupted);
    let escalation = recorded
        .iter()
        .filter_map(|o| match o {
            RunOutcome::Escalated(code) => Some(*code),
            _ => None,
        })
        .max();
    RunOutcome::decide(
        interrupted,
        escalation,
        reports.iter().flat_map(|r| &r.tasks).map(|t| t.status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::types::{Budget, Severity};
    use crate::report::{FindingReport, ModelSpend, TaskReport, UsageReport};

    fn task(id: &str, status: &str) -> TaskReport {
        TaskReport {
            id: id.to_owned(),
            title: id.to_owned(),
            status: serde_json::from_value(serde_json::json!(status)).expect("a task status"),
            reason: None,
            model: Some("sonnet".to_owned()),
            backend: "claude".to_owned(),
            worktree: false,
            branch: None,
            priority: "medium".to_owned(),
            started_at: None,
            ended_at: None,
            duration_ms: Some(10),
            attempts: 1,
            items_done: 1,
            items_total: 1,
            plan: Vec::new(),
            usage: UsageReport {
                turns: 2,
                input_tokens: 100,
                output_tokens: 10,
                cost_usd: Some(0.5),
            },
            budget: None,
            carried_from: None,
            findings: Vec::new(),
            questions: Vec::new(),
            output_path: format!(".dispatch/tasks/{id}/output.md"),
            output_head: None,
            log_tail: String::new(),
            dropped: Vec::new(),
            unticked: Vec::new(),
            last_activity: None,
            flaky: false,
            checks: Vec::new(),
            attempt_results: Vec::new(),
            failure_tail: None,
        }
    }

    fn report(
        run_id: &str,
        started: &str,
        code: u8,
        status: &str,
        tasks: Vec<TaskReport>,
    ) -> Report {
        let totals = totals(&tasks, None, |_| None);
        Report {
            format_version: FORMAT_VERSION,
            run_id: run_id.to_owned(),
            name: "sweep".to_owned(),
            manifest: "sweep.yaml".to_owned(),
            started_at: started.to_owned(),
            ended_at: Some(started.replace("T10", "T11")),
            status: serde_json::from_value(serde_json::json!(status)).expect("a run status"),
            exit_code: Some(code),
            escalations: Vec::new(),
            continues: None,
            shard: None,
            merge_readiness: None,
            totals,
            tasks,
        }
    }

    fn complete(run_id: &str, started: &str, ids: &[&str]) -> Report {
        let tasks = ids.iter().map(|id| task(id, "complete")).collect();
        report(run_id, started, 0, "complete", tasks)
    }

    #[test]
    fn refuses_nothing_to_merge() {
        assert_eq!(merge(Vec::new()), Err(MergeError::Empty));
    }

    #[test]
    fn refuses_reports_of_different_sweeps_naming_them() {
        let a = complete("r1", "2025-01-01T10:00:00Z", &["a"]);
        let mut b = complete("r2", "2025-01-01T10:00:00Z", &["b"]);
        b.name = "other".to_owned();
        let e = merge(vec![a, b]).expect_err("different sweeps");
        assert_eq!(
            e,
            MergeError::DifferentSweeps {
                first: 0,
                first_name: "sweep".to_owned(),
                other: 1,
                other_name: "other".to_owned()
            }
        );
        assert_eq!(
            e.message(|i| ["one.json", "two.json"][i].to_owned()),
            "two.json is of sweep `other`, but one.json is of sweep `sweep`"
        );
        assert_eq!(
            e.to_string(),
            "report 2 is of sweep `other`, but report 1 is of sweep `sweep`"
        );
    }

    #[test]
    fn refuses_a_task_in_two_reports() {
        let a = complete("r1", "2025-01-01T10:00:00Z", &["a", "b"]);
        let b = complete("r2", "2025-01-01T10:00:00Z", &["c"]);
        let c = complete("r3", "2025-01-01T10:00:00Z", &["b"]);
        let e = merge(vec![a, b, c]).expect_err("overlap");
        assert_eq!(e.to_string(), "task `b` is in both report 1 and report 3");
        assert!(e.help().contains("the shards overlap"), "{}", e.help());
    }

    #[test]
    fn refuses_a_run_that_has_not_ended_and_another_format() {
        let mut a = complete("r1", "2025-01-01T10:00:00Z", &["a"]);
        a.exit_code = None;
        a.status = crate::domain::status::RunStatus::Running;
        assert_eq!(merge(vec![a]), Err(MergeError::NotEnded { report: 0 }));
        let mut b = complete("r1", "2025-01-01T10:00:00Z", &["a"]);
        b.format_version = 2;
        assert!(merge(vec![b])
            .expect_err("format")
            .to_string()
            .contains("format version 2"));
    }

    #[test]
    fn combines_tasks_times_and_ids_in_start_order() {
        let late = complete("r-late", "2025-01-01T10:05:00Z", &["c"]);
        let early = complete("r-early", "2025-01-01T10:00:00+00:00", &["a", "b"]);
        let merged = merge(vec![late, early]).expect("merges");
        let ids: Vec<&str> = merged.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(merged.run_id, "merged:r-early+r-late");
        assert_eq!(merged.started_at, "2025-01-01T10:00:00+00:00");
        assert_eq!(merged.ended_at.as_deref(), Some("2025-01-01T11:05:00Z"));
        assert_eq!(
            (merged.exit_code, merged.status.label()),
            (Some(0), "complete")
        );
        assert_eq!(merged.totals.tasks, 3);
        assert_eq!(merged.totals.statuses.get("complete"), Some(&3));
        assert_eq!(merged.totals.usage.turns, 6);
        assert_eq!(merged.totals.usage.input_tokens, 300);
        assert_eq!(merged.totals.usage.cost_usd, Some(1.5));
        assert_eq!(merged.totals.models.len(), 1);
        assert_eq!(merged.totals.models[0].usage.output_tokens, 30);
    }

    #[test]
    fn totals_are_counted_as_a_run_counts_them() {
        let mut t1 = task("a", "complete");
        t1.findings.push(FindingReport {
            severity: Severity::High,
            title: "x".to_owned(),
            location: None,
            detail: None,
        });
        let mut t2 = task("b", "failed");
        t2.model = Some("haiku".to_owned());
        t2.usage.cost_usd = None;
        t2.findings.push(FindingReport {
            severity: Severity::Low,
            title: "y".to_owned(),
            location: None,
            detail: None,
        });
        let mut t3 = task("c", "skipped");
        t3.model = None;
        let budget = Budget {
            max_cost_usd: Some(5.0),
            ..Budget::default()
        };
        let mut a = report("r1", "2025-01-01T10:00:00Z", 1, "failed", vec![t1, t2]);
        a.totals.models[0].budget = Some(budget.clone());
        a.totals.budget = Some(budget.clone());
        let b = report("r2", "2025-01-01T10:01:00Z", 1, "failed", vec![t3]);
        let whole = a.tasks.iter().chain(&b.tasks).cloned().collect::<Vec<_>>();
        let merged = merge(vec![a, b]).expect("merges");
        let expected = totals(&whole, Some(budget.clone()), |m| {
            (m == "sonnet").then(|| budget.clone())
        });
        assert_eq!(merged.totals, expected);
        assert_eq!(merged.totals.findings.get("high"), Some(&1));
        assert_eq!(merged.totals.findings.get("low"), Some(&1));
        assert_eq!(merged.totals.statuses.get("skipped"), Some(&1));
        assert_eq!(
            merged.totals.models[0],
            ModelSpend {
                model: "sonnet".to_owned(),
                usage: UsageReport {
                    turns: 2,
                    input_tokens: 100,
                    output_tokens: 10,
                    cost_usd: Some(0.5),
                },
                budget: Some(budget),
            }
        );
        assert_eq!(merged.totals.models[1].model, "haiku");
        assert_eq!(merged.totals.models[1].usage.cost_usd, None);
        assert_eq!(merged.totals.usage.cost_usd, Some(1.0));
        assert_eq!(
            (merged.exit_code, merged.status.label()),
            (Some(1), "failed")
        );
    }

    /// The merged exit code and status of shards ending as given.
    fn merged_outcome(shards: &[(u8, &str, &str)]) -> (Option<u8>, String) {
        let reports = shards
            .iter()
            .enumerate()
            .map(|(i, (code, status, task_status))| {
                report(
                    &format!("r{i}"),
                    "2025-01-01T10:00:00Z",
                    *code,
                    status,
                    vec![task(&format!("t{i}"), task_status)],
                )
            })
            .collect();
        let merged = merge(reports).expect("merges");
        (merged.exit_code, merged.status.label().to_owned())
    }

    #[test]
    fn the_exit_code_follows_the_precedence_of_a_run() {
        let ok = (0, "complete", "complete");
        let failed = (1, "failed", "failed");
        let skipped = (1, "failed", "skipped");
        let blocked = (4, "blocked", "blocked");
        let escalated = (3, "escalated", "complete");
        let escalated_7 = (7, "escalated", "failed");
        let escalated_as_1 = (1, "escalated", "complete");
        let interrupted = (130, "interrupted", "cancelled");
        let outcome = |shards: &[(u8, &str, &str)]| {
            let (code, status) = merged_outcome(shards);
            (code.expect("ended"), status)
        };
        assert_eq!(outcome(&[ok, ok]), (0, "complete".into()));
        assert_eq!(outcome(&[ok, blocked]), (4, "blocked".into()));
        assert_eq!(outcome(&[blocked, failed]), (1, "failed".into()));
        assert_eq!(outcome(&[ok, skipped]), (1, "failed".into()));
        assert_eq!(outcome(&[failed, escalated]), (3, "escalated".into()));
        assert_eq!(
            outcome(&[escalated_7, escalated, failed]),
            (7, "escalated".into())
        );
        // A rule may give exit code 1; the shard's status still says so.
        assert_eq!(outcome(&[escalated_as_1, ok]), (1, "escalated".into()));
        assert_eq!(
            outcome(&[escalated_7, interrupted, ok]),
            (130, "interrupted".into())
        );
    }

    #[test]
    fn escalations_and_branches_are_kept_once() {
        let mut a = complete("r1", "2025-01-01T10:00:00Z", &["a"]);
        a.escalations = vec!["critical finding: a".to_owned(), "shared".to_owned()];
        a.merge_readiness = Some(Default::default());
        let mut b = complete("r2", "2025-01-01T10:01:00Z", &["b"]);
        b.escalations = vec!["shared".to_owned(), "critical finding: b".to_owned()];
        b.continues = Some("earlier".to_owned());
        let merged = merge(vec![a, b]).expect("merges");
        assert_eq!(
            merged.escalations,
            ["critical finding: a", "shared", "critical finding: b"]
        );
        assert_eq!(merged.merge_readiness, Some(Default::default()));
        assert_eq!(merged.continues.as_deref(), Some("earlier"));
    }
}
