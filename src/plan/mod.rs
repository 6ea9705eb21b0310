//! From a checked manifest to the plan of a sweep: matrix entries expanded
//! into tasks, dependencies resolved and ordered, and for each task its
//! checklist, worker prompt, backend argv and worktree, all rendered.
//!
//! `dispatch plan` prints this; `dispatch run` executes it. Rendering here
//! also catches what only rendering can: undefined template variables, unknown
//! templates, ids that collide after expansion.

pub mod balance;
pub mod checks;
pub mod confine;
pub mod matrix;
pub mod order;
mod paths;
pub mod prompt;
mod render;
pub mod select;
pub mod shard;
pub mod sources;
pub mod templates;
mod types;
mod vars;
mod worktrees;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde_json::{json, Value as Json};

use crate::agents::cli_home;
use crate::manifest::diagnostic::{did_you_mean, list_names, Diagnostic};
use crate::manifest::models::{self, Backend, Model};
use crate::manifest::types::EventFormat;
use crate::manifest::types::{CliConfig, CommitPolicy, PromptMode, Task, WorktreeSetting};
use crate::manifest::validate::{unknown_task, MAX_ID_LEN};
use crate::manifest::{Invalid, LoadedManifest};
use crate::state::layout::{self, join};
pub use paths::TaskPaths;
use templates::{explain_error, plan_template_name, Templates, DEFAULT_PLAN, WORKER_PROMPT};
pub use types::{ModelInfo, PlanOptions, PlannedTask, Prompts, SweepPlan, WorktreePlan};

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
    matrix: Arc<IndexMap<String, Json>>,
    matrix_sources: IndexMap<String, String>,
    needs: Vec<usize>,
    rank: i64,
}

/// What is known of a task before its prompt is rendered; downstream tasks
/// see it as `needs.ID`.
struct Basics {
    title: String,
    model: Option<Model>,
    backend: Arc<str>,
    paths: TaskPaths,
    worktree: bool,
    branch: Option<String>,
}

/// Expand and render the whole sweep. The loader's problems with tasks
/// that have no model come after the ones found here: every problem is
/// reported, the ones in the file's own text first.
pub fn build(loaded: &LoadedManifest, options: &PlanOptions) -> Result<SweepPlan, Invalid> {
    let built = Builder::new(loaded, options).build();
    let unused = vars::unused(loaded, &options.vars);
    if loaded.no_model.is_empty() && unused.is_empty() {
        return built;
    }
    let mut problems = built.err().map(|i| i.0).unwrap_or_default();
    problems.extend(loaded.no_model.iter().cloned());
    problems.extend(unused);
    Err(Invalid(problems))
}

struct Builder<'a> {
    loaded: &'a LoadedManifest,
    options: &'a PlanOptions,
    templates: Arc<Templates>,
    /// A lazy plan renders every prompt to check it (a project's own
    /// prompt template), not only each manifest task's largest.
    check_every_prompt: bool,
    /// Whether this plan keeps its prompts: the options' mode, made
    /// [`Prompts::Render`] or [`Prompts::Lazy`] once the tasks are counted.
    prompts: Prompts,
    /// Each manifest task's entry with the largest prompt texts: its size
    /// and index (see `prompt.rs`).
    largest: Mutex<HashMap<String, (usize, usize)>>,
    /// Shared with a [`prompt::Prompter`], which renders a prompt per
    /// launch: made afresh each time, the built-in backends' table was
    /// most of a launch's allocations.
    backends: Arc<IndexMap<String, Backend>>,
    root: String,
    /// `root` once, for every task's paths to share.
    shared_root: Arc<str>,
    /// Behind a lock: tasks are rendered on several threads.
    problems: Mutex<Vec<Diagnostic>>,
    /// The texts every entry of a matrix repeats (its manifest task, its
    /// backend, its priority), one copy each for the whole plan.
    shared: crate::util::intern::Interner,
}

impl<'a> Builder<'a> {
    fn new(loaded: &'a LoadedManifest, options: &'a PlanOptions) -> Self {
        let backends = Arc::new(models::backends(&loaded.manifest));
        Self::with_parts(loaded, options, Arc::new(templates_of(loaded)), backends)
    }

    fn with_parts(
        loaded: &'a LoadedManifest,
        options: &'a PlanOptions,
        templates: Arc<Templates>,
        backends: Arc<IndexMap<String, Backend>>,
    ) -> Self {
        Self {
            loaded,
            options,
            check_every_prompt: prompt::check_every_prompt(options.prompts, &templates),
            prompts: options.prompts,
            largest: Mutex::default(),
            templates,
            backends,
            root: options
                .root
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string()),
            shared_root: Arc::from(
                options
                    .root
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string()),
            ),
            problems: Mutex::default(),
            shared: Default::default(),
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

    fn build(mut self) -> Result<SweepPlan, Invalid> {
        let mut instances = self.expand();
        self.finish(())?;
        self.prompts = self.options.prompts.for_tasks(instances.len());
        self.check_every_prompt = prompt::check_every_prompt(self.prompts, &self.templates);
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
        if self.prompts == Prompts::Lazy && !self.check_every_prompt {
            self.check_largest_prompts(&instances, &basics);
        }
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

    /// Matrix entries become tasks; ids must stay unique and short, and
    /// the sweep within `max_tasks`.
    fn expand(&self) -> Vec<Instance<'a>> {
        let manifest = &self.loaded.manifest;
        let default_rank = manifest.defaults.priority.unwrap_or_default();
        let limit = manifest
            .max_tasks
            .map_or(matrix::DEFAULT_MAX_TASKS, |n| n as usize);
        let mut instances: Vec<Instance<'a>> = Vec::new();
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut repository: Option<PathBuf> = None;
        for (source_id, task) in &manifest.tasks {
            let Some(keys) = self.matrix_keys(source_id, task, &mut repository) else {
                continue;
            };
            let remaining = limit.saturating_sub(instances.len());
            let entries = match matrix::entries(source_id, &keys, &task.matrix, remaining) {
                Ok(entries) => entries,
                Err(too_many) => {
                    self.fail(self.too_many(
                        source_id,
                        task,
                        &keys,
                        too_many,
                        (instances.len(), limit),
                    ));
                    break;
                }
            };
            let show_sources = task.matrix.reads_data() || !task.matrix.include.is_empty();
            instances.reserve(entries.len());
            for entry in entries {
                if entry.id.len() > MAX_ID_LEN {
                    let d = self
                        .loaded
                        .error_at_key(
                            &["tasks", source_id, "matrix"],
                            format!(
                                "the matrix entry id `{}` is longer than {MAX_ID_LEN} characters, even with its values cut short",
                                entry.id
                            ),
                        )
                        .with_help("use a shorter task id, or fewer matrix keys");
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
                    matrix: Arc::new(entry.values),
                    matrix_sources: if show_sources {
                        entry.sources
                    } else {
                        IndexMap::new()
                    },
                    needs: Vec::new(),
                    rank: task.priority.unwrap_or(default_rank).rank(),
                });
            }
        }
        instances
    }

    /// Each matrix key of `task` with its values, listed or read from the
    /// manifest's repository (found once, when a task first reads data);
    /// `None` after a source failed, with the problem recorded.
    fn matrix_keys(
        &self,
        source_id: &str,
        task: &Task,
        repository: &mut Option<PathBuf>,
    ) -> Option<Vec<matrix::Key>> {
        use crate::manifest::matrix::Axis;
        let mut keys = Vec::with_capacity(task.matrix.keys.len());
        let mut failed = false;
        for (name, axis) in &task.matrix.keys {
            let items = match axis {
                Axis::Values(values) => matrix::listed(values),
                Axis::Source(source) => {
                    let repo =
                        repository.get_or_insert_with(|| sources::repository_of(&self.loaded.dir));
                    match sources::read(repo, source) {
                        Ok(items) => items,
                        Err(e) => {
                            let d = self
                                .loaded
                                .error_at(&["tasks", source_id, "matrix", name, e.field], e.message)
                                .with_help(e.help);
                            self.fail(d);
                            failed = true;
                            continue;
                        }
                    }
                }
            };
            keys.push(matrix::Key {
                name: name.clone(),
                items,
                id_field: match axis {
                    Axis::Source(source) => source.id.clone(),
                    Axis::Values(_) => None,
                },
            });
        }
        (!failed).then_some(keys)
    }

    /// The sweep would pass `max_tasks`: said at the task that passes it.
    fn too_many(
        &self,
        source_id: &str,
        task: &Task,
        keys: &[matrix::Key],
        too_many: matrix::TooMany,
        (so_far, limit): (usize, usize),
    ) -> Diagnostic {
        let counted =
            if keys.len() > 1 && task.matrix.exclude.is_empty() && task.matrix.include.is_empty() {
                format!(
                    "{} = {}",
                    keys.iter()
                        .map(|k| k.items.len().to_string())
                        .collect::<Vec<_>>()
                        .join(" × "),
                    too_many.count
                )
            } else if too_many.count == usize::MAX {
                "too many".to_owned()
            } else {
                too_many.count.to_string()
            };
        let at_least = if task.matrix.exclude.is_empty() && task.matrix.include.is_empty() {
            ""
        } else {
            "at least "
        };
        let message = if so_far == 0 {
            format!("the matrix expands to {at_least}{counted} tasks; the sweep's limit, `max_tasks`, is {limit}")
        } else {
            format!("the matrix expands to {at_least}{counted} tasks, which with the {so_far} before it passes the sweep's limit, `max_tasks`, of {limit}")
        };
        let at: &[&str] = if task.matrix.is_empty() {
            &["tasks", source_id]
        } else {
            &["tasks", source_id, "matrix"]
        };
        self.loaded.error_at_key(at, message).with_help(format!(
            "raise `max_tasks:` at the top of the manifest (default {}), narrow the matrix, or split the sweep",
            matrix::DEFAULT_MAX_TASKS
        ))
    }

    /// `needs` names a task id (all its matrix entries) or one entry's id.
    /// Both are looked up in maps made once, so a sweep of tens of
    /// thousands of entries resolves in one pass instead of one scan of
    /// every entry per need.
    fn resolve_needs(&self, instances: &mut [Instance<'a>]) {
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(instances.len());
        let mut by_source: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, x) in instances.iter().enumerate() {
            by_id.insert(x.id.as_str(), i);
            by_source.entry(x.source_id).or_default().push(i);
        }
        let mut resolved_all: Vec<Vec<usize>> = Vec::with_capacity(instances.len());
        for (index, instance) in instances.iter().enumerate() {
            let task = instance.task;
            let source_id = instance.source_id;
            let single = matches!(task.needs, crate::manifest::types::Needs::One(_));
            let mut resolved = Vec::new();
            let mut taken = std::collections::HashSet::new();
            for (n, name) in task.needs.ids().iter().enumerate() {
                let position = n.to_string();
                let path: Vec<&str> = if single {
                    vec!["tasks", source_id, "needs"]
                } else {
                    vec!["tasks", source_id, "needs", &position]
                };
                let one;
                let targets: &[usize] = match by_source.get(name.as_str()) {
                    Some(entries) => entries,
                    None => match by_id.get(name.as_str()) {
                        Some(&i) => {
                            one = [i];
                            &one
                        }
                        None => &[],
                    },
                };
                if targets.is_empty() {
                    let d = unknown_task(self.loaded, &path, name);
                    self.fail(d);
                } else if targets.contains(&index) {
                    let d = self
                        .loaded
                        .error_at(&path, format!("task `{}` needs itself", instance.id))
                        .with_help("remove it from `needs`");
                    self.fail(d);
                } else {
                    resolved.extend(targets.iter().copied().filter(|t| taken.insert(*t)));
                }
            }
            resolved_all.push(resolved);
        }
        for (instance, resolved) in instances.iter_mut().zip(resolved_all) {
            instance.needs = resolved;
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
        let paths = TaskPaths::new(&self.shared_root, &instance.id, workdir);
        let mut basics = Basics {
            title: instance.id.clone(),
            model: None,
            backend: Arc::from(""),
            paths,
            worktree,
            branch: None,
        };
        basics.model = self.model(instance, &basics);
        basics.backend = self.shared.get(
            &models::task_backend_name(manifest, task, basics.model.as_ref()).unwrap_or_default(),
        );
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
            let options = worktrees::worktree_options(task, manifest);
            let options = options.as_ref();
            let context = self.context(instance, &basics, json!({}));
            if let Some(path) = options.and_then(|o| o.path.clone()) {
                let rendered = self.render_field(
                    &["tasks", instance.source_id, "worktree", "path"],
                    &path,
                    &context,
                );
                basics
                    .paths
                    .set_workdir(if Path::new(&rendered).is_absolute() {
                        rendered
                    } else {
                        join(&self.root, &rendered)
                    });
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
}

/// The templates a manifest's tasks render with: its own folder (default
/// `templates/` beside it) in front of the built-in ones.
fn templates_of(loaded: &LoadedManifest) -> Templates {
    let override_dir = match &loaded.manifest.templates {
        Some(dir) => loaded.dir.join(dir),
        None => loaded.dir.join("templates"),
    };
    Templates::new(Some(override_dir))
}

/// A worker of an agent CLI that says nothing for this long is taken for
/// hung (a stuck API call, a tool waiting for input nobody gives).
pub const DEFAULT_IDLE_TIMEOUT: &str = "10m";

/// A task's idle timeout: its own, the defaults', else 10m for a backend
/// with an event stream (an agent CLI, which prints as it works) and none
/// for one without (`command`: a script may be silent for good reason).
pub fn idle_timeout_of(
    own: Option<&crate::manifest::types::DurationText>,
    defaults: Option<&crate::manifest::types::DurationText>,
    events: EventFormat,
) -> Option<String> {
    own.or(defaults)
        .map(|t| t.0.clone())
        .or_else(|| (events != EventFormat::None).then(|| DEFAULT_IDLE_TIMEOUT.to_owned()))
}

/// The default number of workers at once.
pub const DEFAULT_CONCURRENCY: u32 = 4;

#[cfg(test)]
mod tests;
