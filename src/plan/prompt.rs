//! Worker prompts rendered when they are needed, not all up front.
//!
//! A prompt is a few KiB; a sweep of 50,000 tasks kept 150 MB of them in
//! memory from its plan to its end, and rendering them was most of what
//! `dispatch validate` cost. With [`Prompts::Lazy`] the plan keeps no
//! prompt (its argv holds [`MARKER`] where the prompt goes), and
//! [`Prompter`] renders a task's prompt and argv when it launches, from
//! the task's plan and what it needs (their title, paths and branch), in
//! the same context the plan was built in.
//!
//! Validation still finds every error a prompt can have before anything
//! runs. A project's own `worker-prompt.md.j2` may read anything (a matrix
//! field only some rows have), so it is rendered for every task, and the
//! results are dropped. The built-in template reads only variables every
//! task has; what can differ between the entries of one manifest task is
//! how long their texts are (the work and size bounds of `templates.rs`),
//! so it is rendered once per manifest task, on its largest entry.
//!
//! Rendering at launch costs the runner's thread the task's whole template
//! context again (about 35 µs a task), while the run goes on; a plan built
//! with every prompt renders them all at once, spread over the cores,
//! before the first launch. So `dispatch run` keeps the prompts of a sweep
//! of up to [`RENDERED_UP_TO`] tasks ([`Prompts::RenderUpTo`]): a few MB at
//! most, and a thousand-task sweep ran 4–6% faster. Past it, memory decides.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::templates::{Templates, WORKER_PROMPT};
use super::{Basics, Builder, Instance, PlanOptions, PlannedTask, Prompts, TaskPaths};
use crate::manifest::{models, Invalid, LoadedManifest};

/// The most tasks whose prompts `dispatch run` renders into its plan
/// (about 2 KiB each: 20 MB at this size); a wider sweep renders each at
/// its launch.
pub const RENDERED_UP_TO: usize = 10_000;

/// [`RENDERED_UP_TO`]; tests lower it (debug builds only) to run a small
/// sweep the way a wide one runs.
pub fn rendered_up_to() -> usize {
    #[cfg(debug_assertions)]
    if let Some(most) = std::env::var("DISPATCH_TEST_PROMPTS_KEPT_UP_TO")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return most;
    }
    RENDERED_UP_TO
}

/// Where the worker prompt goes in the argv of a plan built with
/// [`Prompts::Lazy`] (and what a record shows there).
pub const MARKER: &str = "<worker prompt>";

/// A task's worker prompt and the argv that carries it.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub prompt: String,
    pub argv: Vec<String>,
}

/// What a needed task shows in `needs.ID`.
#[derive(Clone, Debug)]
struct Upstream {
    source_id: String,
    title: String,
    paths: TaskPaths,
    branch: Option<String>,
}

/// Renders the prompts of a plan built with [`Prompts::Lazy`], one task at
/// a time. Made once per run; the templates it compiles are kept.
pub struct Prompter {
    loaded: Arc<LoadedManifest>,
    options: PlanOptions,
    templates: Arc<Templates>,
    backends: Arc<IndexMap<String, crate::manifest::models::Backend>>,
    /// Every task some task needs, by id (a need may be left out of the
    /// run by `--only` or `--shard`; its entry in the prompt stays).
    upstream: HashMap<String, Upstream>,
}

impl Prompter {
    /// For the tasks of `tasks` (the whole plan, before any selection).
    pub fn new(
        loaded: Arc<LoadedManifest>,
        options: PlanOptions,
        tasks: &[Arc<PlannedTask>],
    ) -> Self {
        let needed: std::collections::HashSet<&str> = tasks
            .iter()
            .flat_map(|t| t.needs.iter().map(String::as_str))
            .collect();
        let upstream = tasks
            .iter()
            .filter(|t| needed.contains(t.id.as_str()))
            .map(|t| {
                (
                    t.id.clone(),
                    Upstream {
                        source_id: t.source_id.to_string(),
                        title: t.title.clone(),
                        paths: t.paths.clone(),
                        branch: t.worktree.as_ref().map(|w| w.branch.clone()),
                    },
                )
            })
            .collect();
        let templates = Arc::new(super::templates_of(&loaded));
        let backends = Arc::new(crate::manifest::models::backends(&loaded.manifest));
        Prompter {
            loaded,
            options,
            templates,
            backends,
            upstream,
        }
    }

    /// `task`'s worker prompt and argv, as a plan built with
    /// [`Prompts::Render`] would have them.
    pub fn render(&self, task: &PlannedTask) -> Result<Rendered, Invalid> {
        let builder = Builder::with_parts(
            &self.loaded,
            &self.options,
            self.templates.clone(),
            self.backends.clone(),
        );
        let manifest = &self.loaded.manifest;
        let Some(own_task) = manifest.tasks.get(&*task.source_id) else {
            return Ok(Rendered {
                prompt: String::new(),
                argv: task.argv.clone(),
            });
        };
        let mut instances = vec![Instance {
            id: task.id.clone(),
            source_id: &task.source_id,
            task: own_task,
            matrix: task.matrix.clone(),
            matrix_sources: IndexMap::new(),
            needs: Vec::new(),
            rank: task.rank,
        }];
        let mut basics = vec![Basics {
            title: task.title.clone(),
            model: task
                .model
                .as_ref()
                .and_then(|m| models::resolve_model(manifest, &m.name)),
            backend: task.backend.clone(),
            paths: task.paths.clone(),
            worktree: task.worktree.is_some(),
            branch: task.worktree.as_ref().map(|w| w.branch.clone()),
        }];
        for need in &task.needs {
            let Some(up) = self.upstream.get(need) else {
                continue;
            };
            let Some(up_task) = manifest.tasks.get(&up.source_id) else {
                continue;
            };
            let at = instances.len();
            instances[0].needs.push(at);
            instances.push(Instance {
                id: need.clone(),
                source_id: &up.source_id,
                task: up_task,
                matrix: Arc::default(),
                matrix_sources: IndexMap::new(),
                needs: Vec::new(),
                rank: 0,
            });
            basics.push(Basics {
                title: up.title.clone(),
                model: None,
                backend: Arc::from(""),
                paths: up.paths.clone(),
                worktree: up.branch.is_some(),
                branch: up.branch.clone(),
            });
        }
        let (context, _) = builder.prompt_context(&instances, &basics, 0);
        let prompt = builder.render_template(&["tasks", &task.source_id], WORKER_PROMPT, &context);
        let (argv, _) = builder.argv(&instances[0], &basics[0], &context, &prompt);
        builder.finish(Rendered { prompt, argv })
    }
}

impl Builder<'_> {
    /// Remember the entry of each manifest task whose prompt would be the
    /// longest, to render the built-in template on it (see the top).
    pub(super) fn note_prompt_size(&self, index: usize, source_id: &str, context: &Json) {
        let text = |v: &Json| v.as_str().map_or(0, str::len);
        let size = text(&context["task"]["title"])
            + text(&context["task"]["prompt"])
            + text(&context["plan_text"])
            + text(&context["role_prompt"])
            // The paths (eight of them in the prompt) grow with the id.
            + 8 * text(&context["task"]["id"]);
        let mut largest = self.largest.lock().unwrap_or_else(|e| e.into_inner());
        let entry = largest.entry(source_id.to_owned()).or_insert((size, index));
        if size > entry.0 || (size == entry.0 && index < entry.1) {
            *entry = (size, index);
        }
    }

    /// Render the built-in prompt on each manifest task's largest entry;
    /// a problem is recorded, the text dropped.
    pub(super) fn check_largest_prompts(&self, instances: &[Instance<'_>], basics: &[Basics]) {
        let mut chosen: Vec<usize> = self
            .largest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|&(_, index)| index)
            .collect();
        chosen.sort_unstable();
        crate::util::parallel::map_chunks(&chosen, |part| {
            for &index in part {
                let (context, _) = self.prompt_context(instances, basics, index);
                let src = instances[index].source_id;
                drop(self.render_template(&["tasks", src], WORKER_PROMPT, &context));
            }
        });
    }
}

/// Whether every task's prompt must be rendered to be checked.
pub(super) fn check_every_prompt(prompts: Prompts, templates: &Templates) -> bool {
    prompts == Prompts::Lazy && templates.overridden(WORKER_PROMPT)
}
