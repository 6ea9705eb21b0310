//! The run's redactor: the secret values of dispatch's own environment and
//! of every task's `env`, so a worker that echoes another task's key is
//! redacted too.

use crate::domain::redact::Redactor;
use crate::plan::SweepPlan;

/// One redactor for everything the run records and shows.
pub(super) fn run_redactor(plan: &SweepPlan) -> Redactor {
    let task_vars = plan
        .tasks
        .iter()
        .flat_map(|task| task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Redactor::new(
        crate::domain::redact::utf8_vars().chain(task_vars),
        &plan.secrets,
    )
}
