//! What a plan is made of: the sweep's settings and, per task, everything
//! rendered for it. `mod.rs` builds these from a checked manifest; the
//! engine, `dispatch plan` and the reports read them.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value as Json;

use super::{checks, confine, TaskPaths};
use crate::manifest::types::{
    AnswerRule, Budget, CommitPolicy, EscalationRule, EventFormat, KeepPolicy, PromptMode,
    Questions,
};

/// Settings of one expansion that do not come from the manifest.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// `--var NAME=VALUE`, overriding every `vars:` of the manifest.
    pub vars: Vec<(String, String)>,
    /// The run the plan is for; `dry-run` for `dispatch plan`.
    pub run_id: String,
    /// The project root that paths are made absolute against; `None` keeps
    /// them relative (`.dispatch/tasks/ID/plan.md`) for reviewable output.
    pub root: Option<PathBuf>,
    /// Whether each task's worker prompt is rendered into the plan.
    pub prompts: Prompts,
}

/// Whether a plan holds its tasks' worker prompts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prompts {
    /// Rendered and kept in each task (`dispatch plan` shows them).
    #[default]
    Render,
    /// Checked but not kept: `dispatch run` renders each at its launch
    /// ([`super::prompt::Prompter`]), and `dispatch validate` needs none.
    Lazy,
    /// [`Prompts::Render`] for a plan of at most this many tasks,
    /// [`Prompts::Lazy`] past it (see [`super::prompt::RENDERED_UP_TO`]).
    RenderUpTo(usize),
}

impl Prompts {
    /// The mode for a plan of `tasks` tasks.
    pub fn for_tasks(self, tasks: usize) -> Prompts {
        match self {
            Prompts::RenderUpTo(most) if tasks <= most => Prompts::Render,
            Prompts::RenderUpTo(_) => Prompts::Lazy,
            mode => mode,
        }
    }
}

/// Everything a sweep will do, in the order it starts.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPlan {
    pub name: String,
    pub manifest: String,
    pub run_id: String,
    pub concurrency: u32,
    /// What the tasks on each model may spend together.
    pub model_budgets: IndexMap<String, Budget>,
    /// At most this many workers at once per backend or model name.
    pub caps: IndexMap<String, u32>,
    /// What the whole sweep may spend.
    pub budget: Option<Budget>,
    /// Names of variables whose values are redacted.
    pub secrets: Vec<String>,
    /// User config files that filled in models, backends or roles.
    pub user_config: Vec<String>,
    /// How questions are answered, and the rules that answer them.
    pub questions: Questions,
    /// The escalation rules (the built-in one when the manifest has none).
    pub escalation: Vec<EscalationRule>,
    pub tasks: Vec<Arc<PlannedTask>>,
}

/// One task, ready to launch.
///
/// A sweep holds one per task for the whole run, so what most tasks leave
/// unset and is large (a worktree, a model, a budget) is boxed: each costs
/// a pointer where it is absent (see the size test in `sweep/footprint.rs`).
#[derive(Clone, Debug, Serialize)]
pub struct PlannedTask {
    pub id: String,
    /// The manifest task it came from (differs from `id` for matrix entries).
    pub source_id: Arc<str>,
    pub title: String,
    /// 1-based position in the schedule.
    pub position: usize,
    /// 1 for tasks that need nothing; one more than the latest of its needs.
    pub stage: usize,
    pub priority: Arc<str>,
    pub rank: i64,
    pub needs: Vec<String>,
    pub tags: Vec<String>,
    /// Shared with the expansion it came from, not copied per task.
    pub matrix: Arc<IndexMap<String, Json>>,
    /// Where each matrix value came from (`rows.csv, line 7`), for tasks
    /// whose matrix reads data or has `include` entries.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub matrix_sources: IndexMap<String, String>,
    /// The task's `weight:` (1 unless it says), which `--shard` balances.
    #[serde(skip_serializing_if = "is_one")]
    pub weight: u32,
    pub model: Option<Box<ModelInfo>>,
    pub backend: Arc<str>,
    /// The program and its arguments, with the prompt in place.
    pub argv: Vec<String>,
    /// The argv with [`super::prompt::MARKER`] where the prompt goes, for
    /// the record, when the prompt sits inside a longer argument of a plan
    /// that keeps prompts. `None` otherwise: the record shows `argv`, an
    /// argument that is the prompt shown as the marker.
    #[serde(skip)]
    pub argv_recorded: Option<Vec<String>>,
    pub prompt_via: PromptMode,
    /// How the worker's stdout is read for usage and errors.
    pub events: EventFormat,
    pub env: IndexMap<String, String>,
    /// The agent CLI's private config folder (`cli_config: private` on a
    /// built-in backend that can be moved); `None` where it sees the
    /// user's own.
    pub cli_home: Option<String>,
    pub budget: Option<Box<Budget>>,
    /// This task's own answer rules, tried before the manifest's.
    pub answers: Vec<AnswerRule>,
    pub timeout: Option<String>,
    /// How long its worker may stay quiet before it is stopped as
    /// `stalled` (`0s`: never); see [`super::idle_timeout_of`].
    pub idle_timeout: Option<String>,
    pub retries: u32,
    pub worktree: Option<Box<WorktreePlan>>,
    /// Run in a bubblewrap sandbox (`None`: unconfined).
    pub sandbox: Option<confine::SandboxPlan>,
    /// Which of dispatch's environment variables the worker inherits.
    pub env_policy: confine::EnvPlan,
    pub paths: TaskPaths,
    pub context: Vec<String>,
    /// The checklist, as written to `plan.md`.
    pub plan: String,
    /// The full worker prompt; empty in a plan built with
    /// [`Prompts::Lazy`], whose argv holds [`super::prompt::MARKER`] instead.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prompt: String,
    /// Acceptance checks, run in order after the worker ends.
    pub checks: Vec<checks::PlannedCheck>,
}

/// The model a task runs on.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub id: String,
    pub backend: String,
}

/// Where a task's worktree goes and what it starts from.
#[derive(Clone, Debug, Serialize)]
pub struct WorktreePlan {
    pub path: String,
    pub branch: String,
    pub base: String,
    pub keep: Option<KeepPolicy>,
    /// Continue on a branch or folder left from before.
    pub reuse: bool,
    pub setup: Option<crate::manifest::types::WorktreeSetup>,
    pub commit: CommitPolicy,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl PlannedTask {
    /// How long the worker may stay quiet before it is stopped as stalled;
    /// `None` when it has no idle timeout or it is zero (off), the one
    /// reading the engine and `dispatch plan` share.
    pub fn idle_limit(&self) -> Option<std::time::Duration> {
        self.idle_timeout
            .as_deref()
            .and_then(crate::manifest::duration::parse)
            .filter(|limit| !limit.is_zero())
    }
}
