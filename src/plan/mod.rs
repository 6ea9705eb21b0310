//! From a checked manifest to the plan of a sweep: matrix entries expanded
//! into tasks, dependencies resolved and ordered, and for each task its
//! checklist, worker prompt, backend argv and worktree, all rendered.
//!
//! `dispatch plan` prints this; `dispatch run` executes it. Rendering here
//! also catches what only rendering can: undefined template variables, unknown
//! templates, ids that collide after expansion.

pub mod matrix;
pub mod order;
pub mod select;
pub mod shard;
pub mod templates;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::agents::cli_home;
use crate::manifest::diagnostic::{did_you_mean, list_names, Diagnostic};
use crate::manifest::models::{self, Backend, Model};
use crate::manifest::types::EventFormat;
use crate::manifest::types::{
    AnswerRule, Budget, CliConfig, CommitPolicy, EscalationRule, KeepPolicy, PromptMode, Questions,
    Task, WorktreeSetting,
};
use crate::manifest::validate::{unknown_task, MAX_ID_LEN};
use crate::manifest::{Invalid, LoadedManifest};
use crate::state::layout::{self, join};
use templates::{explain_error, plan_template_name, Templates, DEFAULT_PLAN, WORKER_PROMPT};

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
#[derive(Clone, Debug, Serialize)]
pub struct PlannedTask {
    pub id: String,
    /// The manifest task it came from (differs from `id` for matrix entries).
    pub source_id: String,
    pub title: String,
    /// 1-based position in the schedule.
    pub position: usize,
    /// 1 for tasks that need nothing; one more than the latest of its needs.
    pub stage: usize,
    pub priority: String,
    pub rank: i64,
    pub needs: Vec<String>,
    pub tags: Vec<String>,
    pub matrix: IndexMap<String, Json>,
    pub model: Option<ModelInfo>,
    pub backend: String,
    /// The program and its arguments, with the prompt in place.
    pub argv: Vec<String>,
    pub prompt_via: PromptMode,
    /// How the worker's stdout is read for usage and errors.
    pub events: EventFormat,
    pub env: IndexMap<String, String>,
    /// The agent CLI's private config folder (`cli_config: private` on a
    /// built-in backend that can be moved); `None` where it sees the
    /// user's own.
    pub cli_home: Option<String>,
    pub budget: Option<Budget>,
    /// This task's own answer rules, tried before the manifest's.
    pub answers: Vec<AnswerRule>,
    pub timeout: Option<String>,
    pub retries: u32,
    pub worktree: Option<WorktreePlan>,
    pub paths: TaskPaths,
    pub context: Vec<String>,
    /// The checklist, as written to `plan.md`.
    pub plan: String,
    /// The full worker prompt.
    pub prompt: String,
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

/// A task's files, compatible with the dispatch skill.
#[derive(Clone, Debug, Serialize)]
pub struct TaskPaths {
    /// The project root (`.` in dry runs).
    pub root: String,
    /// The state folder, `ROOT/.dispatch` (agents in a worktree need leave
    /// to write there).
    pub state: String,
    pub task_dir: String,
    pub plan: String,
    pub output: String,
    pub context: String,
    pub ipc: String,
    pub prompt: String,
    /// Where the worker runs: the project root or its worktree.
    pub workdir: String,
}

impl TaskPaths {
    fn new(root: &str, id: &str, workdir: String) -> Self {
        let task_dir = join(root, &layout::task_dir(id));
        let file = |name: &str| format!("{task_dir}/{name}");
        Self {
            plan: file(layout::PLAN),
            output: file(layout::OUTPUT),
            context: file(layout::CONTEXT),
            ipc: file(layout::IPC),
            prompt: file(layout::PROMPT),
            root: if root.is_empty() {
                ".".to_owned()
            } else {
                root.to_owned()
            },
            state: join(root, layout::DIR_NAME),
            task_dir,
            workdir,
        }
    }
}

/// Whether a string from the manifest holds template syntax (otherwise it
/// is used as it is, without rendering).
fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// A task after matrix expansion, before rendering.
struct Instance<'a> {
    id: String,
    source_id: &'a str,
    task: &'a Task,
    matrix: IndexMap<String, Json>,
    needs: Vec<usize>,
    rank: i64,
}

/// What is known of a task before its prompt is rendered; downstream tasks
/// see it as `needs.ID`.
struct Basics {
    title: String,
    model: Option<Model>,
    backend: String,
    paths: TaskPaths,
    worktree: bool,
    branch: Option<String>,
}

/// Expand and render the whole sweep.
pub fn build(loaded: &LoadedManifest, options: &PlanOptions) -> Result<SweepPlan, Invalid> {
    Builder::new(loaded, options).build()
}

struct Builder<'a> {
    loaded: &'a LoadedManifest,
    options: &'a PlanOptions,
    templates: Templates,
    backends: IndexMap<String, Backend>,
    root: String,
    /// Behind a lock: tasks are rendered on several threads.
    problems: Mutex<Vec<Diagnostic>>,
}

impl<'a> Builder<'a> {
    fn new(loaded: &'a LoadedManifest, options: &'a PlanOptions) -> Self {
        let override_dir = match &loaded.manifest.templates {
            Some(dir) => loaded.dir.join(dir),
            None => loaded.dir.join("templates"),
        };
        Self {
            loaded,
            options,
            templates: Templates::new(Some(override_dir)),
            backends: models::backends(&loaded.manifest),
            root: options
                .root
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string()),
            problems: Mutex::default(),
        }
    }

    fn fail(&self, d: Diagnostic) {
        self.problems().push(d);
    }

    fn problems(&self) -> std::sync::MutexGuard<'_, Vec<Diagnostic>> {
        self.problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The problems found so far, in the manifest's order whichever thread
    /// found them: two at one place (a matrix task's entries share their
    /// source) are ordered by their text, not by which thread came first.
    fn finish<T>(&self, value: T) -> Result<T, Invalid> {
        let mut problems = std::mem::take(&mut *self.problems());
        if problems.is_empty() {
            Ok(value)
        } else {
            problems.sort_by(|a, b| {
                a.location
                    .cmp(&b.location)
                    .then_with(|| a.message.cmp(&b.message))
            });
            problems.dedup();
            Err(Invalid(problems))
        }
    }

    fn build(self) -> Result<SweepPlan, Invalid> {
        let mut instances = self.expand();
        self.finish(())?;
        self.resolve_needs(&mut instances);
        self.finish(())?;
        let slots = self.order(&instances)?;
        let basics: Vec<Basics> = instances.iter().map(|i| self.basics(i)).collect();
        self.finish(())?;
        self.claim_worktrees(&instances, &basics, &slots);
        // Each task renders on its own (a thousand of them take tens of
        // milliseconds before anything can launch), so the schedule is
        // split over the cores and put back together in its order.
        let positioned: Vec<(usize, &order::Slot)> = slots.iter().enumerate().collect();
        let tasks: Vec<Arc<PlannedTask>> = crate::util::parallel::map_chunks(&positioned, |part| {
            part.iter()
                .filter_map(|&(position, slot)| {
                    self.render(&instances, &basics, slot.index, position + 1, slot.stage)
                })
                .map(Arc::new)
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        let manifest = &self.loaded.manifest;
        let plan = SweepPlan {
            name: manifest.name.clone().unwrap_or_else(|| {
                self.loaded
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            manifest: self.loaded.path.display().to_string(),
            run_id: self.options.run_id.clone(),
            concurrency: manifest
                .concurrency
                .as_ref()
                .and_then(|c| c.total())
                .unwrap_or(DEFAULT_CONCURRENCY),
            caps: manifest
                .concurrency
                .as_ref()
                .map(|c| c.caps())
                .unwrap_or_default(),
            budget: manifest.budget.clone(),
            model_budgets: manifest
                .models
                .iter()
                .filter_map(|(name, def)| def.budget.clone().map(|b| (name.clone(), b)))
                .collect(),
            questions: manifest.questions.clone(),
            escalation: if manifest.escalation.is_empty() {
                crate::manifest::types::default_rules()
            } else {
                manifest.escalation.clone()
            },
            secrets: manifest.secrets.clone(),
            user_config: self
                .loaded
                .user_config
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            tasks,
        };
        self.finish(plan)
    }

    /// Matrix entries become tasks; ids must stay unique and short.
    fn expand(&self) -> Vec<Instance<'a>> {
        let manifest = &self.loaded.manifest;
        let default_rank = manifest.defaults.priority.unwrap_or_default();
        let mut instances: Vec<Instance<'a>> = Vec::new();
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut total = 0usize;
        for (source_id, task) in &manifest.tasks {
            let count = matrix::entry_count(task);
            if count > matrix::MAX_ENTRIES_PER_TASK {
                let d = self
                    .loaded
                    .error_at_key(
                        &["tasks", source_id, "matrix"],
                        format!(
                            "the matrix expands to {} = {count} tasks; the limit is {}",
                            task.matrix
                                .values()
                                .map(|v| v.len().to_string())
                                .collect::<Vec<_>>()
                                .join(" × "),
                            matrix::MAX_ENTRIES_PER_TASK
                        ),
                    )
                    .with_help("split the task, or use fewer values per key");
                self.fail(d);
                continue;
            }
            total += count;
            if total > matrix::MAX_TASKS {
                let d = self
                    .loaded
                    .error_at(
                        &["tasks", source_id],
                        format!("the sweep expands to more than {} tasks", matrix::MAX_TASKS),
                    )
                    .with_help("split the sweep into several manifests");
                self.fail(d);
                break;
            }
            for entry in matrix::entries(source_id, task) {
                if entry.id.len() > MAX_ID_LEN {
                    let d = self
                        .loaded
                        .error_at_key(
                            &["tasks", source_id, "matrix"],
                            format!(
                                "the matrix entry id `{}` is longer than {MAX_ID_LEN} characters",
                                entry.id
                            ),
                        )
                        .with_help("use shorter matrix values or a shorter task id");
                    self.fail(d);
                    continue;
                }
                if let Some(first) = seen.get(&entry.id) {
                    let what = |source: &str| {
                        if source == entry.id {
                            format!("task `{source}`")
                        } else {
                            format!("an entry of task `{source}`'s matrix")
                        }
                    };
                    let d = self
                        .loaded
                        .error_at_key(&["tasks", source_id], format!("the id `{}` of {} is already the id of {}", entry.id, what(source_id), what(first)))
                        .with_help("rename one task, or change the matrix values so the derived ids differ");
                    self.fail(d);
                    continue;
                }
                seen.insert(entry.id.clone(), source_id);
                instances.push(Instance {
                    id: entry.id,
                    source_id,
                    task,
                    matrix: entry.values,
                    needs: Vec::new(),
                    rank: task.priority.unwrap_or(default_rank).rank(),
                });
            }
        }
        instances
    }

    /// `needs` names a task id (all its matrix entries) or one entry's id.
    fn resolve_needs(&self, instances: &mut [Instance<'a>]) {
        let by_id: HashMap<String, usize> = instances
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id.clone(), i))
            .collect();
        for index in 0..instances.len() {
            let task = instances[index].task;
            let source_id = instances[index].source_id;
            let single = matches!(task.needs, crate::manifest::types::Needs::One(_));
            let mut resolved = Vec::new();
            for (n, name) in task.needs.ids().iter().enumerate() {
                let position = n.to_string();
                let path: Vec<&str> = if single {
                    vec!["tasks", source_id, "needs"]
                } else {
                    vec!["tasks", source_id, "needs", &position]
                };
                let mut targets: Vec<usize> = instances
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.source_id == name)
                    .map(|(i, _)| i)
                    .collect();
                if targets.is_empty() {
                    if let Some(&i) = by_id.get(name) {
                        targets.push(i);
                    }
                }
                if targets.is_empty() {
                    let d = unknown_task(self.loaded, &path, name);
                    self.fail(d);
                } else if targets.contains(&index) {
                    let d = self
                        .loaded
                        .error_at(
                            &path,
                            format!("task `{}` needs itself", instances[index].id),
                        )
                        .with_help("remove it from `needs`");
                    self.fail(d);
                } else {
                    for t in targets {
                        if !resolved.contains(&t) {
                            resolved.push(t);
                        }
                    }
                }
            }
            instances[index].needs = resolved;
        }
    }

    fn order(&self, instances: &[Instance<'a>]) -> Result<Vec<order::Slot>, Invalid> {
        let items: Vec<order::Item> = instances
            .iter()
            .map(|i| order::Item {
                needs: i.needs.clone(),
                rank: i.rank,
            })
            .collect();
        order::order(&items).map_err(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&i| instances[i].id.as_str()).collect();
            let first = cycle.first().map_or(0, |&i| i);
            let d = self
                .loaded
                .error_at(&["tasks", instances[first].source_id, "needs"], format!("dependency cycle: {}", names.join(" → ")))
                .with_help("a task cannot wait, directly or through others, for itself; remove one of these `needs`");
            Invalid::one(d)
        })
    }

    fn basics(&self, instance: &Instance<'a>) -> Basics {
        let manifest = &self.loaded.manifest;
        let task = instance.task;
        let worktree = match task
            .worktree
            .as_ref()
            .or(manifest.defaults.worktree.as_ref())
        {
            Some(WorktreeSetting::Enabled(on)) => *on,
            Some(WorktreeSetting::Options(_)) => true,
            None => false,
        };
        let workdir = if worktree {
            // A templated path is rendered below, once the context exists.
            join(&self.root, &layout::worktree_dir(&instance.id))
        } else if self.root.is_empty() {
            ".".to_owned()
        } else {
            self.root.clone()
        };
        let paths = TaskPaths::new(&self.root, &instance.id, workdir);
        let mut basics = Basics {
            title: instance.id.clone(),
            model: None,
            backend: String::new(),
            paths,
            worktree,
            branch: None,
        };
        basics.model = self.model(instance, &basics);
        basics.backend =
            models::task_backend_name(manifest, task, basics.model.as_ref()).unwrap_or_default();
        if let Some(title) = &task.title {
            // The context is built only for a title that needs it: most are
            // plain text, and a large sweep plans thousands of tasks.
            basics.title = if is_template(title) {
                let context = self.context(instance, &basics, json!({}));
                self.render_field(&["tasks", instance.source_id, "title"], title, &context)
            } else {
                title.clone()
            };
        }
        if worktree {
            let options = worktree_options(task, manifest);
            let options = options.as_ref();
            let context = self.context(instance, &basics, json!({}));
            if let Some(path) = options.and_then(|o| o.path.clone()) {
                let rendered = self.render_field(
                    &["tasks", instance.source_id, "worktree", "path"],
                    &path,
                    &context,
                );
                basics.paths.workdir = if Path::new(&rendered).is_absolute() {
                    rendered
                } else {
                    join(&self.root, &rendered)
                };
            }
            let template = options
                .and_then(|o| o.branch.clone())
                .unwrap_or_else(|| "dispatch/{{ task.id }}".to_owned());
            basics.branch = Some(self.render_field(
                &["tasks", instance.source_id, "worktree", "branch"],
                &template,
                &context,
            ));
        }
        basics
    }

    /// The task's model. A templated name (`model: "{{ matrix.model }}"`)
    /// is rendered first, so a matrix can run the same task on several
    /// models; its result is checked here, since only now is it known.
    fn model(&self, instance: &Instance<'a>, basics: &Basics) -> Option<Model> {
        let manifest = &self.loaded.manifest;
        let name = models::task_model_name(manifest, instance.task)?;
        if !models::is_templated(name) {
            return models::resolve_model(manifest, name);
        }
        let path = ["tasks", instance.source_id, "model"];
        let context = self.context(instance, basics, json!({}));
        let rendered = self.render_field(&path, name, &context);
        let model = models::resolve_model(manifest, &rendered);
        if model.is_none() && !rendered.is_empty() {
            let known = models::known_models(manifest);
            let d = self
                .loaded
                .error_at(
                    &path,
                    format!(
                        "task `{}`: unknown model \"{rendered}\" (known: {})",
                        instance.id,
                        list_names(known.iter().map(String::as_str), 8)
                    ),
                )
                .with_help("define it under `models:`, or change the matrix value");
            self.fail(d);
        }
        model
    }

    /// The variables every template of this task sees.
    fn context(&self, instance: &Instance<'a>, basics: &Basics, needs: Json) -> Json {
        let manifest = &self.loaded.manifest;
        let task = instance.task;
        let mut vars: serde_json::Map<String, Json> = manifest.vars.clone().into_iter().collect();
        vars.extend(task.vars.clone());
        for (name, value) in &self.options.vars {
            vars.insert(name.clone(), Json::String(value.clone()));
        }
        let priority = task
            .priority
            .or(manifest.defaults.priority)
            .unwrap_or_default();
        json!({
            "task": {
                "id": instance.id,
                "source_id": instance.source_id,
                "title": basics.title,
                "prompt": Json::Null,
                "model": basics.model.as_ref().map(|m| m.name.clone()),
                "backend": basics.backend,
                "worktree": basics.worktree,
                "branch": basics.branch,
                "priority": priority.label(),
                "tags": task.tags,
                "plan": task.plan,
                "context": task.context,
                "timeout": task.timeout.as_ref().or(manifest.defaults.timeout.as_ref()).map(|t| t.0.clone()),
            },
            "vars": vars,
            "matrix": instance.matrix,
            "paths": basics.paths,
            "run": {
                "id": self.options.run_id,
                "name": manifest.name.clone().unwrap_or_default(),
                "manifest": self.loaded.path.display().to_string(),
            },
            "model": basics.model.as_ref().map(|m| json!({"name": m.name, "id": m.id, "backend": m.backend})),
            "needs": needs,
        })
    }

    /// Render a string from the manifest; a failure is reported at `path`.
    fn render_field(&self, path: &[&str], source: &str, context: &Json) -> String {
        if !is_template(source) {
            return source.to_owned();
        }
        let value = minijinja::Value::from(minijinja::value::Serde(context));
        let name = path.join(".");
        match self
            .templates
            .env()
            .template_from_named_str(&name, source)
            .and_then(|t| templates::render_bounded(&t, value))
        {
            Ok(text) => text,
            Err(e) => {
                let (message, help) = explain_error(&e, Some(source), context);
                let d = self.loaded.error_at(path, message).with_help(help);
                self.fail(d);
                String::new()
            }
        }
    }

    /// Render a template file; a failure is reported at `path` (the key that
    /// chose the template).
    fn render_template(&self, path: &[&str], name: &str, context: &Json) -> String {
        let value = minijinja::Value::from(minijinja::value::Serde(context));
        let result = self
            .templates
            .env()
            .get_template(name)
            .and_then(|t| templates::render_bounded(&t, value));
        match result {
            // minijinja sizes its buffer from the template, often twice the
            // text; a sweep keeps every task's prompt until it launches.
            Ok(mut text) => {
                text.shrink_to_fit();
                text
            }
            Err(e) => {
                let source = self
                    .templates
                    .env()
                    .get_template(name)
                    .ok()
                    .map(|t| t.source().to_owned());
                let (message, help) = explain_error(&e, source.as_deref(), context);
                let d = self.loaded.error_at(path, message).with_help(help);
                self.fail(d);
                String::new()
            }
        }
    }

    fn render(
        &self,
        instances: &[Instance<'a>],
        basics: &[Basics],
        index: usize,
        position: usize,
        stage: usize,
    ) -> Option<PlannedTask> {
        let manifest = &self.loaded.manifest;
        let instance = &instances[index];
        let own = &basics[index];
        let task = instance.task;
        let src = instance.source_id;
        let needs: serde_json::Map<String, Json> = instance
            .needs
            .iter()
            .map(|&n| {
                let up = &basics[n];
                (
                    instances[n].id.clone(),
                    json!({
                        "id": instances[n].id,
                        "title": up.title,
                        "output": up.paths.output,
                        "plan": up.paths.plan,
                        "branch": up.branch,
                        "status": "pending",
                    }),
                )
            })
            .collect();
        let mut context = self.context(instance, own, Json::Object(needs));

        let prompt = match &task.prompt {
            Some(p) => self.render_field(&["tasks", src, "prompt"], p, &context),
            None => own.title.clone(),
        };
        context["task"]["prompt"] = Json::String(prompt);
        let items: Vec<String> = task
            .plan
            .iter()
            .enumerate()
            .map(|(i, item)| {
                self.render_field(&["tasks", src, "plan", &i.to_string()], item, &context)
            })
            .collect();
        context["task"]["plan"] = json!(items);

        let plan_text = self.render_plan(task, src, &context);
        let role_prompt = match task
            .role
            .as_ref()
            .and_then(|r| manifest.roles.get(r).map(|def| (r, def)))
        {
            Some((name, role)) => {
                self.render_field(&["roles", name, "prompt"], &role.prompt, &context)
            }
            None => String::new(),
        };
        context["plan_text"] = Json::String(plan_text.clone());
        context["role_prompt"] = Json::String(role_prompt);
        let worker_prompt = self.render_template(&["tasks", src], WORKER_PROMPT, &context);

        let worktree = self.worktree(instance, own, &context);
        let (argv, prompt_via) = self.argv(instance, own, &context, &worker_prompt);
        let env = self.env(instance, own, &context);
        Some(PlannedTask {
            id: instance.id.clone(),
            source_id: src.to_owned(),
            title: own.title.clone(),
            position,
            stage,
            priority: task
                .priority
                .or(manifest.defaults.priority)
                .unwrap_or_default()
                .label(),
            rank: instance.rank,
            needs: instance
                .needs
                .iter()
                .map(|&n| instances[n].id.clone())
                .collect(),
            tags: task
                .tags
                .iter()
                .enumerate()
                .map(|(i, tag)| {
                    self.render_field(&["tasks", src, "tags", &i.to_string()], tag, &context)
                })
                .collect(),
            matrix: instance.matrix.clone(),
            model: own.model.as_ref().map(|m| ModelInfo {
                name: m.name.clone(),
                id: m.id.clone(),
                backend: m.backend.clone(),
            }),
            backend: own.backend.clone(),
            argv,
            prompt_via,
            events: self
                .backends
                .get(&own.backend)
                .map_or(EventFormat::None, |b| b.events),
            env,
            cli_home: self.cli_home(task, &own.backend, &own.paths),
            budget: task
                .budget
                .clone()
                .or_else(|| manifest.defaults.budget.clone()),
            answers: task.answers.clone(),
            timeout: task
                .timeout
                .as_ref()
                .or(manifest.defaults.timeout.as_ref())
                .map(|t| t.0.clone()),
            retries: task.retries.or(manifest.defaults.retries).unwrap_or(0),
            worktree,
            paths: own.paths.clone(),
            context: task.context.clone(),
            plan: plan_text,
            prompt: worker_prompt,
        })
    }

    /// Where the task's agent CLI keeps its configuration, when it gets a
    /// folder of its own.
    fn cli_home(&self, task: &Task, backend: &str, paths: &TaskPaths) -> Option<String> {
        let wanted = task
            .cli_config
            .or(self.loaded.manifest.defaults.cli_config)
            .unwrap_or_default();
        let builtin = self.backends.get(backend).is_some_and(|b| b.builtin);
        (wanted == CliConfig::Private && builtin && cli_home::supports(backend))
            .then(|| format!("{}/{}", paths.task_dir, cli_home::FOLDER))
    }

    fn render_plan(&self, task: &Task, src: &str, context: &Json) -> String {
        let name = task.template.as_deref().unwrap_or(DEFAULT_PLAN);
        let template = plan_template_name(name);
        let valid_name = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name || !self.templates.exists(&template) {
            let known = self.templates.plan_names();
            let mut d = self.loaded.error_at(
                &["tasks", src, "template"],
                format!(
                    "unknown template \"{name}\" (known: {})",
                    list_names(known.iter().map(String::as_str), 12)
                ),
            );
            d = match did_you_mean(name, known.iter().map(String::as_str)) {
                Some(close) => d.with_help(format!("did you mean `{close}`?")),
                None => d.with_help(format!("add `plans/{name}.md.j2` to the project's templates folder, or use a built-in template")),
            };
            self.fail(d);
            return String::new();
        }
        self.render_template(&["tasks", src, "template"], &template, context)
    }

    /// Two tasks cannot share a worktree branch or folder: each is claimed
    /// in schedule order, and the later claimant is the one told.
    fn claim_worktrees(
        &self,
        instances: &[Instance<'a>],
        basics: &[Basics],
        slots: &[order::Slot],
    ) {
        let mut taken: HashMap<String, &str> = HashMap::new();
        for slot in slots {
            let (instance, own) = (&instances[slot.index], &basics[slot.index]);
            if !own.worktree {
                continue;
            }
            for (what, value) in [
                ("branch", own.branch.as_deref().unwrap_or_default()),
                ("path", own.paths.workdir.as_str()),
            ] {
                let key = format!("{what}\0{value}");
                match taken.get(&key) {
                    Some(other) => {
                        let d = self
                            .loaded
                            .error_at(
                                &["tasks", instance.source_id, "worktree"],
                                format!("task `{}` gets the worktree {what} `{value}`, which task `{other}` has too", instance.id),
                            )
                            .with_help(format!("give each task its own {what}, for example with `{{{{ task.id }}}}` in `worktree.{what}`"));
                        self.fail(d);
                    }
                    None => {
                        taken.insert(key, &instance.id);
                    }
                }
            }
        }
    }

    fn worktree(
        &self,
        instance: &Instance<'a>,
        own: &Basics,
        context: &Json,
    ) -> Option<WorktreePlan> {
        if !own.worktree {
            return None;
        }
        let manifest = &self.loaded.manifest;
        let options = worktree_options(instance.task, manifest);
        let options = options.as_ref();
        let path = ["tasks", instance.source_id, "worktree", "base"];
        let base = match options.and_then(|o| o.base.clone()) {
            Some(base) => {
                let rendered = self.render_field(&path, &base, context);
                if rendered.trim().is_empty() || rendered == "none" {
                    let d = self
                        .loaded
                        .error_at(&path, format!("the base `{base}` renders to nothing"))
                        .with_help("a task that is not in a worktree has no branch; give that task `worktree: true`, or start from a ref such as `main`");
                    self.fail(d);
                }
                rendered
            }
            None => "HEAD".to_owned(),
        };
        if let Some(setup) = options.and_then(|o| o.setup.as_ref()) {
            self.check_setup(instance.source_id, setup);
        }
        Some(WorktreePlan {
            path: own.paths.workdir.clone(),
            branch: own.branch.clone().unwrap_or_default(),
            base,
            keep: options.and_then(|o| o.keep),
            reuse: options.and_then(|o| o.reuse).unwrap_or(false),
            setup: options.and_then(|o| o.setup.clone()),
            commit: options
                .and_then(|o| o.commit)
                .unwrap_or(CommitPolicy::Never),
        })
    }

    /// Setup paths must stay inside the project, and its timeout parse.
    fn check_setup(&self, source_id: &str, setup: &crate::manifest::types::WorktreeSetup) {
        for (key, paths) in [("copy", &setup.copy), ("link", &setup.link)] {
            for (i, path) in paths.iter().enumerate() {
                if !crate::isolation::setup::is_inside(path) {
                    let index = i.to_string();
                    let d = self
                        .loaded
                        .error_at(
                            &["tasks", source_id, "worktree", "setup", key, &index],
                            format!("`{path}` is not a path inside the project"),
                        )
                        .with_help("give a path relative to the project root, without `..` (e.g. `.env`, `node_modules`)");
                    self.fail(d);
                }
            }
        }
        if let Some(timeout) = &setup.timeout {
            if crate::manifest::duration::parse(timeout).is_none() {
                let d = self
                    .loaded
                    .error_at(
                        &["tasks", source_id, "worktree", "setup", "timeout"],
                        format!("`{timeout}` is not a duration"),
                    )
                    .with_help("write a duration such as `90s`, `10m` or `1h30m`");
                self.fail(d);
            }
        }
    }

    /// The backend's argv with the prompt placed as the backend takes it.
    fn argv(
        &self,
        instance: &Instance<'a>,
        own: &Basics,
        context: &Json,
        prompt: &str,
    ) -> (Vec<String>, PromptMode) {
        let Some(backend) = self.backends.get(&own.backend).cloned() else {
            return (Vec::new(), PromptMode::Stdin);
        };
        let src = instance.source_id.to_owned();
        // Where each argument was written, so an error points there: the
        // task's `command:`, the manifest's backend, or (for a built-in
        // backend) the task that chose it.
        let (templates, origin): (Vec<String>, Vec<String>) = match &instance.task.command {
            Some(command) if backend.command.is_empty() => {
                (command.clone(), vec!["tasks".into(), src, "command".into()])
            }
            _ if backend.builtin => (backend.command.clone(), vec!["tasks".into(), src]),
            _ => (
                backend.command.clone(),
                vec!["backends".into(), own.backend.clone(), "command".into()],
            ),
        };
        let indexed = !backend.builtin || instance.task.command.is_some();
        let mut context = context.clone();
        context["prompt"] = Json::String(prompt.to_owned());
        context["prompt_file"] = Json::String(own.paths.prompt.clone());
        let placed = templates.iter().any(|a| a.contains("prompt"));
        let mut argv: Vec<String> = Vec::with_capacity(templates.len() + 1);
        for (i, arg) in templates.iter().enumerate() {
            let index = i.to_string();
            let mut path: Vec<&str> = origin.iter().map(String::as_str).collect();
            if indexed {
                path.push(&index);
            }
            argv.push(self.render_field(&path, arg, &context));
        }
        let mode = backend.prompt;
        if !placed {
            match mode {
                PromptMode::Arg => argv.push(prompt.to_owned()),
                PromptMode::File => argv.push(own.paths.prompt.clone()),
                PromptMode::Stdin => {}
            }
        }
        (argv, mode)
    }

    fn env(
        &self,
        instance: &Instance<'a>,
        own: &Basics,
        context: &Json,
    ) -> IndexMap<String, String> {
        let mut env = IndexMap::new();
        if let Some(backend) = self.backends.get(&own.backend).cloned() {
            for (name, value) in &backend.env {
                let rendered =
                    self.render_field(&["backends", &own.backend, "env", name], value, context);
                env.insert(name.clone(), rendered);
            }
        }
        for (name, value) in &instance.task.env {
            let rendered =
                self.render_field(&["tasks", instance.source_id, "env", name], value, context);
            env.insert(name.clone(), rendered);
        }
        env
    }
}

/// The default number of workers at once.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// A task's worktree settings: its own, each missing one taken from
/// `defaults.worktree` (so `worktree: true` gets the defaults' setup).
fn worktree_options(
    task: &Task,
    manifest: &crate::manifest::Manifest,
) -> Option<crate::manifest::types::WorktreeOptions> {
    let defaults = match &manifest.defaults.worktree {
        Some(WorktreeSetting::Options(options)) => Some(options),
        _ => None,
    };
    let own = match &task.worktree {
        Some(WorktreeSetting::Options(options)) => Some(options),
        _ => None,
    };
    match (own, defaults) {
        (Some(own), Some(defaults)) => Some(crate::manifest::types::WorktreeOptions {
            base: own.base.clone().or_else(|| defaults.base.clone()),
            branch: own.branch.clone().or_else(|| defaults.branch.clone()),
            path: own.path.clone().or_else(|| defaults.path.clone()),
            reuse: own.reuse.or(defaults.reuse),
            keep: own.keep.or(defaults.keep),
            commit: own.commit.or(defaults.commit),
            setup: own.setup.clone().or_else(|| defaults.setup.clone()),
        }),
        (own, defaults) => own.or(defaults).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep large enough to be rendered on several threads.
    fn large_sweep(extra: impl Fn(usize) -> String) -> String {
        let mut text = String::from("version: 1\ntasks:\n");
        for i in 0..crate::util::parallel::MIN_ITEMS * 3 {
            let priority = ["low", "normal", "high"][i % 3];
            text.push_str(&format!(
                "  t{i:03}:\n    command: [./work.sh]\n    prompt: \"Task {{{{ task.id }}}}\"\n    priority: {priority}\n{}",
                extra(i)
            ));
        }
        text
    }

    #[test]
    fn a_large_sweep_is_planned_in_schedule_order_each_task_with_its_own_context() {
        let loaded = crate::manifest::parse("large.yaml", &large_sweep(|_| String::new()))
            .expect("a valid manifest");
        let plan = build(&loaded, &PlanOptions::default()).expect("plans");
        let count = crate::util::parallel::MIN_ITEMS * 3;
        assert_eq!(plan.tasks.len(), count);
        for (i, task) in plan.tasks.iter().enumerate() {
            assert_eq!(task.position, i + 1, "{}", task.id);
            assert!(
                task.prompt.contains(&format!("Task {}", task.id)),
                "{} was rendered with another task's context",
                task.id
            );
        }
        // High priority first, then normal, then low; manifest order within.
        let first_normal = plan.tasks.iter().position(|t| t.priority == "normal");
        let last_high = plan.tasks.iter().rposition(|t| t.priority == "high");
        assert!(last_high < first_normal, "the schedule's order is kept");
        assert_eq!(plan.tasks[0].id, "t002");
    }

    /// A matrix task's entries share their place in the manifest, and
    /// rendered on several threads their problems arrive in any order: the
    /// list comes out the same whatever that order was.
    #[test]
    fn problems_at_one_place_come_out_in_one_order() {
        let loaded = crate::manifest::parse(
            "one.yaml",
            "version: 1\ntasks:\n  a:\n    command: [./x]\n    prompt: Go.\n",
        )
        .expect("a valid manifest");
        let options = PlanOptions::default();
        let found = |order: &[&str]| -> Vec<String> {
            let builder = Builder::new(&loaded, &options);
            for message in order {
                builder.fail(loaded.error_at(&["tasks", "a", "prompt"], message.to_string()));
            }
            builder
                .finish(())
                .expect_err("problems")
                .0
                .into_iter()
                .map(|d| d.message)
                .collect()
        };
        let expected = ["entry 1 failed", "entry 2 failed", "entry 3 failed"];
        assert_eq!(
            found(&["entry 2 failed", "entry 3 failed", "entry 1 failed"]),
            expected
        );
        assert_eq!(
            found(&["entry 3 failed", "entry 1 failed", "entry 2 failed"]),
            expected
        );
    }

    /// Tasks rendered on different threads still cannot share a worktree
    /// branch, and the later one in the schedule is the one told.
    #[test]
    fn a_worktree_branch_shared_across_a_large_sweep_blames_the_later_task() {
        let text = large_sweep(|i| {
            if i == 2 || i == 191 {
                "    worktree: { branch: shared }\n".to_owned()
            } else {
                String::new()
            }
        });
        let loaded = crate::manifest::parse("large.yaml", &text).expect("a valid manifest");
        let invalid = build(&loaded, &PlanOptions::default()).expect_err("refused");
        let messages: Vec<&str> = invalid.0.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            ["task `t191` gets the worktree branch `shared`, which task `t002` has too"]
        );
    }
}
