//! Acceptance checks and retries in the JUnit file: each check of a task's
//! last attempt is a test case beside its plan items, failing with the end
//! of its output; and the attempts before it are reruns, as Maven Surefire
//! and cargo-nextest write them: a case that passed only on a retry keeps
//! each earlier failure as `<flakyFailure>`, a case that still fails keeps
//! them as `<rerunFailure>`. CI dashboards read those as flaky.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestRerun};

use super::{clean, AttemptReport, TaskReport};
use crate::domain::status::TaskStatus;
use crate::record::checks::CheckRecord;

/// The test case name of a check: `check: unit tests`.
pub fn case_name(check: &CheckRecord) -> String {
    format!("check: {}", check.name)
}

/// One case per check of the task's last attempt.
pub fn check_cases(task: &TaskReport) -> Vec<TestCase> {
    let earlier = earlier_attempts(task);
    task.checks
        .iter()
        .map(|check| {
            let mut status = if check.passed {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_type("check-failed")
                    .set_message(clean(&format!("{} ({})", check.name, check.how())))
                    .set_description(clean(&check.tail));
                status
            };
            let reruns = earlier.iter().filter_map(|attempt| {
                let failed = attempt
                    .checks
                    .iter()
                    .find(|c| c.name == check.name && !c.passed)?;
                Some(check_rerun(attempt, failed))
            });
            status.add_reruns(reruns.collect::<Vec<_>>());
            let mut case = TestCase::new(case_name(check), status);
            case.set_classname(task.id.clone());
            case.set_time(Duration::from_millis(check.duration_ms));
            case
        })
        .collect()
}

/// A plan item's case in a task that ended only after failed attempts:
/// the attempts that failed other than by a check become its reruns (a
/// check's failure is its own case's).
pub fn add_attempt_reruns(task: &TaskReport, case: &mut TestCase) {
    let reruns: Vec<TestRerun> = earlier_attempts(task)
        .into_iter()
        .filter(|a| a.checks.iter().all(|c| c.passed))
        .map(|attempt| {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun.set_message(clean(&format!(
                "attempt {}: {}{}",
                attempt.number,
                attempt.status.map_or("unknown", TaskStatus::label),
                attempt
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )));
            rerun
        })
        .collect();
    case.status.add_reruns(reruns);
}

/// The attempts before the last that ended in a failure.
fn earlier_attempts(task: &TaskReport) -> Vec<&AttemptReport> {
    let Some((_, earlier)) = task.attempt_results.split_last() else {
        return Vec::new();
    };
    earlier
        .iter()
        .filter(|a| {
            a.status
                .is_some_and(crate::record::checks::failed_by_itself)
        })
        .collect()
}

fn check_rerun(attempt: &AttemptReport, check: &CheckRecord) -> TestRerun {
    let mut rerun = TestRerun::new(NonSuccessKind::Failure);
    rerun
        .set_type("check-failed")
        .set_message(clean(&format!(
            "attempt {}: {} ({})",
            attempt.number,
            check.name,
            check.how()
        )))
        .set_description(clean(&check.tail))
        .set_time(Duration::from_millis(check.duration_ms));
    rerun
}
