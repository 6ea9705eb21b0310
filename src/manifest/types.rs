//! The manifest format, version 1, as Rust types.
//!
//! These types are the single source of truth for the format: the JSON
//! Schema in `schemas/manifest.schema.json` is generated from them (doc
//! comments become the schema's descriptions, which editors show), and a test
//! fails when the checked-in file drifts from what they generate.
//!
//! The worktree settings are in `worktree.rs`, re-exported here.

use std::borrow::Cow;

use indexmap::IndexMap;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

pub use super::worktree::{
    CommitPolicy, KeepPolicy, WorktreeOptions, WorktreeSetting, WorktreeSetup,
};

pub use super::confine::{EnvPolicy, SandboxSetting};

/// The manifest format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// Task ids become folder and branch names, so they are kept to a safe
/// alphabet.
pub const ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]*$";

/// `90s`, `45m`, `2h`, `1h30m`, `500ms`, `1d`.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";

/// A sweep of agent tasks: what to do, who does it, and what happens to what
/// they find.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dispatch sweep manifest")]
pub struct Manifest {
    /// The manifest format version. Only `1` exists.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// A short name for the sweep, used in reports and branch names.
    #[serde(default)]
    pub name: Option<String>,
    /// What the sweep is for, shown at the top of reports.
    #[serde(default)]
    pub description: Option<String>,
    /// How many workers run at once (default 4): a number, or a map with
    /// `total` and caps per backend or model (`{ total: 8, claude: 3,
    /// gemini: 5 }`), so a sweep respects each provider's rate limits.
    /// `dispatch run --concurrency` overrides the total.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// Settings every task gets unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// Model names usable in tasks and roles, each mapped to a backend and the
    /// id that backend knows the model by. Extends the built-in table (`opus`,
    /// `sonnet`, `haiku` → Claude Code; `gpt-*`, `codex`, `o3`, `o4-mini` →
    /// Codex; `gemini-*` → Gemini CLI) and overrides it by name.
    #[serde(default)]
    pub models: IndexMap<String, ModelDef>,
    /// Agent programs beyond the built-in ones (claude, codex, gemini, cursor,
    /// opencode, aider, command), or overrides of them by name.
    #[serde(default)]
    pub backends: IndexMap<String, BackendDef>,
    /// Named personas: a model plus a prompt prepended to the worker prompt of
    /// every task that takes the role.
    #[serde(default)]
    pub roles: IndexMap<String, RoleDef>,
    /// Variables every template sees as `vars.NAME`. A task's own `vars` and
    /// `--var NAME=VALUE` on the command line override them.
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
    /// A folder of templates (relative to the manifest) that override the
    /// built-in ones by name. Default: `templates/` beside the manifest,
    /// when it exists.
    #[serde(default)]
    pub templates: Option<String>,
    /// How questions from workers are answered.
    #[serde(default)]
    pub questions: Questions,
    /// Rules that turn findings, task outcomes and questions into actions and
    /// exit codes. The first matching rule wins per event.
    #[serde(default)]
    pub escalation: Vec<EscalationRule>,
    /// Where the Markdown, JSON and JUnit reports go.
    #[serde(default)]
    pub reports: Reports,
    /// What the whole sweep may spend, summed over its tasks. Once it is
    /// spent no new task starts; running ones finish.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Names of environment variables whose values are secret: they are
    /// redacted from logs, `task.json` and reports, besides the usual
    /// `*_API_KEY`, `*_TOKEN`, `*_SECRET` and `*_PASSWORD`.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Which of dispatch's environment variables every worker inherits;
    /// `defaults` and tasks add to its allow list.
    #[serde(default)]
    pub env_policy: Option<EnvPolicy>,
    /// The most tasks the sweep may expand to (default 5,000, at most
    /// 1,000,000), so a glob or a matrix that matches far more than meant
    /// is refused before anything is written. Raise it for a wide sweep.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_tasks: Option<u32>,
    /// The tasks, keyed by id. An id is lower-case letters, digits and `-`,
    /// and names the task's folder under `.dispatch/tasks/` and its branch.
    #[schemars(extend("propertyNames" = { "pattern": ID_PATTERN }, "minProperties" = 1))]
    pub tasks: IndexMap<String, Task>,
}

/// Settings a task takes unless it sets its own.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The model of tasks that name neither a model nor a role with one.
    #[serde(default)]
    pub model: Option<String>,
    /// The backend of tasks that name none (otherwise the model's backend).
    #[serde(default)]
    pub backend: Option<String>,
    /// Whether tasks run in their own git worktree.
    #[serde(default)]
    pub worktree: Option<WorktreeSetting>,
    /// How long a worker may run before it is stopped.
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// How long a worker may stay quiet (no output on its pipes, no change
    /// to its plan, no event from its CLI) before it is stopped and its
    /// task ends `stalled`, unless a task sets its own. Default: 10m for
    /// agent CLIs, none for a backend without an event stream (`command`),
    /// whose programs may be silent for good reason. `0s` turns it off.
    #[serde(default)]
    pub idle_timeout: Option<DurationText>,
    /// How many times a failed worker is launched again.
    #[serde(default)]
    #[schemars(range(max = 10))]
    pub retries: Option<u32>,
    /// What each task may spend, unless it sets its own budget.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// The priority of tasks that set none (default `normal`).
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Whether agent CLIs get a config folder of their own (`private`, the
    /// default) or the user's (`user`), unless a task says.
    #[serde(default)]
    pub cli_config: Option<CliConfig>,
    /// Acceptance checks every task runs after its worker ends (a task's
    /// own `checks:` add to these; see the task's `checks`).
    #[serde(default)]
    pub checks: Option<Vec<super::checks::CheckSpec>>,
    /// Which of dispatch's environment variables tasks inherit.
    #[serde(default)]
    pub env_policy: Option<EnvPolicy>,
    /// Whether tasks run in a bubblewrap sandbox.
    #[serde(default)]
    pub sandbox: Option<SandboxSetting>,
}

/// Which configuration a built-in agent CLI sees. `private`: a folder of
/// the task's own (`.dispatch/tasks/<id>/cli/`), into which only the
/// user's login is linked, so the user's settings, hooks, memory files and
/// MCP servers neither shape the sweep nor are written by it, and parallel
/// workers never write the same state file. `user`: the user's own folder,
/// as when they run the CLI by hand. Cursor's `agent` and `command` workers
/// always see the user's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CliConfig {
    #[default]
    Private,
    User,
}

/// A model name mapped to the backend that runs it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelDef {
    /// The backend (built-in or under `backends:`) that runs this model.
    pub backend: String,
    /// The model id passed to the backend (`--model ID`). Default: the name.
    #[serde(default)]
    pub id: Option<String>,
    /// What all the sweep's tasks on this model may spend together; once
    /// spent, no new task on it starts.
    #[serde(default)]
    pub budget: Option<Budget>,
}

/// An agent program and how to talk to it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendDef {
    /// The program and its arguments. Each is a template that sees `model.id`,
    /// `model.name`, `task`, `paths` and, where the prompt goes in an argument,
    /// `prompt` or `prompt_file`.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// How the worker prompt reaches the program: on standard input, as the
    /// last argument, or as the path of a file (the last argument), unless an
    /// argument already places `{{ prompt }}` or `{{ prompt_file }}`.
    #[serde(default)]
    pub prompt: PromptMode,
    /// Extra environment variables for the program.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Which agent CLI's event stream the program prints on stdout, so
    /// turns, tokens, cost and errors are read from it (for a wrapper around
    /// a real CLI). Default: the built-in backend of the same name's, else
    /// `none`.
    #[serde(default)]
    pub events: Option<EventFormat>,
}

/// How a backend takes its prompt: `stdin`, `arg` or `file`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromptMode {
    #[default]
    Stdin,
    Arg,
    File,
}

/// A persona: a model and a prompt that comes before the task's own.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// The model tasks in this role use, unless they name one.
    #[serde(default)]
    pub model: Option<String>,
    /// The role prompt, prepended to each worker prompt (a template).
    pub prompt: String,
}

/// How questions from workers are answered when no person is at hand.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Questions {
    /// How long a question may wait for an answer before `on_unanswered`
    /// decides (default 10m).
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// What happens to a question nobody answered in time. Unset, it is
    /// `wait` when a person can answer (a terminal, or `--answer-here`) and
    /// `block` without one (stdin not a terminal, or `CI` set), so CI never
    /// waits for its own timeout. Write `wait` to wait without a terminal
    /// too (for `dispatch answer` from elsewhere).
    #[serde(default)]
    pub on_unanswered: Option<OnUnanswered>,
    /// The answer given when `on_unanswered` is `default`.
    #[serde(default)]
    pub default_answer: Option<String>,
    /// Rules that answer matching questions at once, for every task.
    #[serde(default)]
    pub answers: Vec<AnswerRule>,
}

/// What happens to an unanswered question: `wait` (keep waiting), `default`
/// (send `default_answer`), `block` (the task ends blocked, exit code 4) or
/// `fail` (the task fails).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnUnanswered {
    Wait,
    Default,
    Block,
    Fail,
}

/// An automatic answer: when a question matches, this answer is sent.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRule {
    /// A regular expression searched for in the question (case-insensitive).
    #[serde(default, rename = "match")]
    pub pattern: Option<String>,
    /// Words that must all appear in the question (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The answer sent to the worker.
    pub answer: String,
}

/// One escalation rule: when its condition holds, its actions run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    /// A name for the rule, shown in banners and reports.
    #[serde(default)]
    pub name: Option<String>,
    /// The condition. At least one of `severity`, `status` or `question`.
    pub when: Condition,
    /// What the sweep does: `notify` (a banner only), `halt` (start no new
    /// tasks; running ones finish), `cancel` (stop running workers too) or
    /// `fail` (the sweep fails but goes on).
    #[serde(default)]
    pub action: Option<Action>,
    /// Show a banner at once (default true).
    #[serde(default)]
    pub notify: Option<bool>,
    /// A command run when the rule fires; it gets the event as JSON on
    /// standard input. A string runs through `sh -c`; a list is an argv.
    #[serde(default)]
    pub run: Option<CommandLine>,
    /// The exit code of `dispatch run` when this rule fired (default 3). The
    /// highest-ranking fired rule decides.
    #[serde(default)]
    #[schemars(range(min = 1, max = 125))]
    pub exit_code: Option<u8>,
}

/// When an escalation rule fires.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A finding at this severity or above.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// A task ending with one of these statuses.
    #[serde(default)]
    pub status: Vec<EndStatus>,
    /// A question matching this regular expression (case-insensitive).
    #[serde(default)]
    pub question: Option<String>,
    /// Only for these task ids (a matrix task's id covers all its entries).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Only for tasks with one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An escalation action: `notify`, `halt`, `cancel` or `fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Notify,
    Halt,
    Cancel,
    Fail,
}

/// How bad a finding is: `critical`, `high`, `medium`, `low` or `info`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// A task outcome an escalation rule can react to: `failed`, `blocked`,
/// `timed-out`, `stalled`, `incomplete` or `skipped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EndStatus {
    Failed,
    Blocked,
    TimedOut,
    /// Stopped for going quiet past its `idle_timeout`.
    Stalled,
    Incomplete,
    Skipped,
}

/// A command: a string run through `sh -c`, or an argv list.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

/// Where reports are written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// A folder (relative to the manifest) that receives copies of all four
    /// reports (`report.md`, `report.json`, `junit.xml`, `report.html`),
    /// besides the run's own folder under `.dispatch/runs/`.
    #[serde(default)]
    pub dir: Option<String>,
    /// The path of the Markdown report.
    #[serde(default)]
    pub markdown: Option<String>,
    /// The path of the JSON report.
    #[serde(default)]
    pub json: Option<String>,
    /// The path of the JUnit XML file.
    #[serde(default)]
    pub junit: Option<String>,
    /// The path of the HTML report (one self-contained file).
    #[serde(default)]
    pub html: Option<String>,
    /// Findings at this severity or above become failed JUnit test cases
    /// (default `high`).
    #[serde(default)]
    pub junit_fail_severity: Option<Severity>,
}

/// One unit of work for one worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// A one-line title: the plan's heading and the name in reports (a
    /// template). Default: the id.
    #[serde(default)]
    pub title: Option<String>,
    /// What the worker is asked to do (a template).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The model that does the task (built-in or under `models:`).
    #[serde(default)]
    pub model: Option<String>,
    /// A role under `roles:`: its model (unless `model` is set) and its prompt.
    #[serde(default)]
    pub role: Option<String>,
    /// The backend, when not the model's own.
    #[serde(default)]
    pub backend: Option<String>,
    /// For the `command` backend: the program and its arguments (templates).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Run the worker in its own git worktree: `true`, or settings.
    #[serde(default)]
    pub worktree: Option<WorktreeSetting>,
    /// Run the worker in a bubblewrap sandbox: `true`, or settings.
    #[serde(default)]
    pub sandbox: Option<SandboxSetting>,
    /// Which of dispatch's environment variables the worker inherits.
    #[serde(default)]
    pub env_policy: Option<EnvPolicy>,
    /// Which ready task starts first: `critical`, `high`, `normal`, `low`, or
    /// a number (the levels are 30, 20, 10 and 0; higher goes first).
    #[serde(default)]
    pub priority: Option<Priority>,
    /// A plan template by name (built-in, or in the templates folder as
    /// `plans/NAME.md.j2`).
    #[serde(default)]
    pub template: Option<String>,
    /// Variables for this task's templates (`vars.NAME`).
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
    /// Checklist items. Without `template` they are the plan; with one, the
    /// template places them (the built-in ones before the final report item).
    #[serde(default)]
    pub plan: Vec<String>,
    /// Task ids that must complete before this one starts. A matrix task's id
    /// stands for all its entries.
    #[serde(default)]
    pub needs: Needs,
    /// Run the task once per combination of these values (listed, or read
    /// from data: see [`super::matrix`]).
    #[serde(default)]
    pub matrix: super::matrix::Matrix,
    /// How heavy the task is compared with others (default 1), so that
    /// `--shard K/N` gives each shard a fair share of the work rather than
    /// of the task count: e.g. the expected minutes.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub weight: Option<u32>,
    /// How long the worker may run.
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// How long the worker may stay quiet (no output, plan change or CLI
    /// event) before it is stopped as `stalled`. Default: the defaults',
    /// else 10m for agent CLIs and none for the `command` backend; `0s`
    /// turns it off.
    #[serde(default)]
    pub idle_timeout: Option<DurationText>,
    /// How many times a failed worker is launched again. A failed check
    /// counts: the worker is launched again in the same folder or
    /// worktree, its plan reopened and the check's output in its prompt.
    #[serde(default)]
    #[schemars(range(max = 10))]
    pub retries: Option<u32>,
    /// Acceptance checks: shell commands run in the task's folder or
    /// worktree after its worker ends; the task is complete only when its
    /// plan is done and every check exits 0 (else `check-failed`). They
    /// run after the defaults' checks; one named like a defaults' check
    /// takes its place; `checks: []` runs none at all.
    #[serde(default)]
    pub checks: Option<Vec<super::checks::CheckSpec>>,
    /// What this task's worker may spend; past it, the worker is stopped and
    /// the task ends `budget-exceeded` (its plan and commits are kept).
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Labels for selecting tasks and scoping escalation rules.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Extra environment variables for the worker (values are templates).
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Whether the agent CLI gets a config folder of its own (`private`,
    /// the default) or the user's (`user`).
    #[serde(default)]
    pub cli_config: Option<CliConfig>,
    /// Files the worker should read first, listed in its prompt.
    #[serde(default)]
    pub context: Vec<String>,
    /// Answer rules for this task's questions, tried before the manifest's.
    #[serde(default)]
    pub answers: Vec<AnswerRule>,
}

/// Limits on what workers spend, counted by dispatch from the backends'
/// events (Claude Code, Codex, Gemini CLI, opencode and Cursor report them;
/// a `command` worker reports nothing, so its budget never trips).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most US dollars, as the backend reports cost.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub max_cost_usd: Option<f64>,
    /// Most model turns.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_turns: Option<u64>,
    /// Most tokens, input and output together.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
}

/// `needs: other-task` or `needs: [a, b]`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Needs {
    One(String),
    Many(Vec<String>),
}

impl Default for Needs {
    fn default() -> Self {
        Needs::Many(Vec::new())
    }
}

impl Needs {
    pub fn ids(&self) -> &[String] {
        match self {
            Needs::One(id) => std::slice::from_ref(id),
            Needs::Many(ids) => ids,
        }
    }
}

/// `concurrency: 8`, or `{ total: 8, claude: 3, opus: 1 }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Concurrency {
    Total(#[schemars(range(min = 1, max = 1024))] u32),
    /// `total` (default 4), and at most this many workers at once per
    /// backend name or model name.
    Caps(IndexMap<String, CapValue>),
}

/// One cap of a concurrency map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct CapValue(#[schemars(range(min = 1, max = 1024))] pub u32);

impl Concurrency {
    /// The total, if given.
    pub fn total(&self) -> Option<u32> {
        match self {
            Concurrency::Total(n) => Some(*n),
            Concurrency::Caps(caps) => caps.get("total").map(|c| c.0),
        }
    }

    /// The caps per backend or model (everything but `total`).
    pub fn caps(&self) -> IndexMap<String, u32> {
        match self {
            Concurrency::Total(_) => IndexMap::new(),
            Concurrency::Caps(caps) => caps
                .iter()
                .filter(|(k, _)| k.as_str() != "total")
                .map(|(k, v)| (k.clone(), v.0))
                .collect(),
        }
    }
}

/// `critical`, `high`, `normal`, `low`, or a number (higher goes first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Priority {
    Level(PriorityLevel),
    Value(i64),
}

/// A named priority: `critical` (30), `high` (20), `normal` (10), `low` (0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PriorityLevel {
    Critical,
    High,
    Normal,
    Low,
}

impl Priority {
    /// The number ready tasks are ordered by (higher first).
    pub fn rank(self) -> i64 {
        match self {
            Priority::Value(v) => v,
            Priority::Level(PriorityLevel::Critical) => 30,
            Priority::Level(PriorityLevel::High) => 20,
            Priority::Level(PriorityLevel::Normal) => 10,
            Priority::Level(PriorityLevel::Low) => 0,
        }
    }

    /// The name users wrote, or the number.
    pub fn label(self) -> String {
        match self {
            Priority::Value(v) => v.to_string(),
            Priority::Level(level) => {
                let name = serde_json::to_value(level).unwrap_or_default();
                name.as_str().unwrap_or_default().to_owned()
            }
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::Level(PriorityLevel::Normal)
    }
}

/// A duration as written (`45m`); parsed by [`crate::manifest::duration`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: a number and a unit (ms, s, m, h, d), e.g. `90s`, `45m`, `2h`, `1h30m`."
        })
    }
}

/// One value of a matrix key: a string, number or boolean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MatrixValue(pub serde_json::Value);

impl JsonSchema for MatrixValue {
    fn schema_name() -> Cow<'static, str> {
        "MatrixValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number", "boolean"],
            "description": "One value of a matrix key: a string, number or boolean."
        })
    }
}

/// Which CLI's event stream a worker prints, so dispatch knows how to read
/// it: `claude`, `codex`, `gemini`, `opencode`, `cursor` or `none`. Chosen
/// from the backend name with [`EventFormat::for_backend`], or set by a
/// manifest's backend with `events:`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    // Claude Code `--output-format stream-json --verbose`.
    Claude,
    // `codex exec --json`.
    Codex,
    // Gemini CLI `--output-format stream-json`.
    Gemini,
    // `opencode run --format json`.
    Opencode,
    // Cursor `agent -p --output-format stream-json`.
    Cursor,
    // aider's plain `--no-pretty` lines: `Tokens: 1.2k sent, 50 received.
    // Cost: ...` and `litellm.<Name>Error: ...` (approximate: aider rounds).
    Aider,
    // A backend without a known event stream: lines are only counted.
    #[default]
    None,
}

impl EventFormat {
    /// The event format of a backend, by its name (case-insensitive).
    ///
    /// Unknown backends get [`EventFormat::None`] so that a new or custom
    /// backend still runs; it just reports no usage or outcome.
    pub fn for_backend(name: &str) -> EventFormat {
        match name.trim().to_ascii_lowercase().as_str() {
            "claude" => EventFormat::Claude,
            "codex" => EventFormat::Codex,
            "gemini" => EventFormat::Gemini,
            "opencode" => EventFormat::Opencode,
            "cursor" => EventFormat::Cursor,
            "aider" => EventFormat::Aider,
            _ => EventFormat::None,
        }
    }
}

/// The rules in force when the manifest has no `escalation:` section at
/// all: a critical finding fails the sweep with exit code 3, because a
/// critical finding that passes silently must never happen. (A manifest
/// that writes its own rules takes responsibility for this itself.)
pub fn default_rules() -> Vec<EscalationRule> {
    vec![EscalationRule {
        name: Some("critical finding".to_owned()),
        when: Condition {
            severity: Some(Severity::Critical),
            ..Condition::default()
        },
        action: Some(Action::Fail),
        notify: Some(true),
        run: None,
        exit_code: Some(crate::domain::exit::ESCALATED),
    }]
}
