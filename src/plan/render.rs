//! Rendering a task: its fields and templates (with the work and output
//! bounds of `templates`), its plan and prompt, its backend's command line
//! and its environment.

use super::*;

impl<'a> Builder<'a> {
    /// Render a string from the manifest; a failure is reported at `path`.
    pub(super) fn render_field(&self, path: &[&str], source: &str, context: &Json) -> String {
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
    pub(super) fn render_template(&self, path: &[&str], name: &str, context: &Json) -> String {
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

    /// The context a task's worker prompt is rendered in: its prompt
    /// field, plan items, plan text and role prompt filled in. Returns it
    /// with the plan text.
    pub(super) fn prompt_context(
        &self,
        instances: &[Instance<'a>],
        basics: &[Basics],
        index: usize,
    ) -> (Json, String) {
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
                        "output": up.paths.output(),
                        "plan": up.paths.plan(),
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
        (context, plan_text)
    }

    pub(super) fn render(
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
        let (context, plan_text) = self.prompt_context(instances, basics, index);
        // Lazily, the prompt is rendered when the task launches; here only
        // where its check needs it (see `prompt.rs`), and not kept.
        let worker_prompt = match self.prompts {
            Prompts::Render => self.render_template(&["tasks", src], WORKER_PROMPT, &context),
            Prompts::Lazy | Prompts::RenderUpTo(_) => {
                if self.check_every_prompt {
                    self.render_template(&["tasks", src], WORKER_PROMPT, &context);
                } else {
                    self.note_prompt_size(index, src, &context);
                }
                String::new()
            }
        };
        let in_argv = match self.prompts {
            Prompts::Render => worker_prompt.as_str(),
            Prompts::Lazy | Prompts::RenderUpTo(_) => prompt::MARKER,
        };

        let worktree = self.worktree(instance, own, &context);
        let checks = self.checks(instance, &context, worktree.as_ref());
        let (argv, prompt_via) = self.argv(instance, own, &context, in_argv);
        // A record shows the marker where the prompt goes; an argument
        // that holds the prompt among other text needs its own rendering.
        let argv_recorded = (!worker_prompt.is_empty()
            && argv
                .iter()
                .any(|a| *a != worker_prompt && a.contains(worker_prompt.as_str())))
        .then(|| self.argv(instance, own, &context, prompt::MARKER).0);
        let env = self.env(instance, own, &context);
        let sandbox = self.sandbox(task);
        let env_policy = self.env_plan(task, sandbox.is_some());
        Some(PlannedTask {
            id: instance.id.clone(),
            source_id: self.shared.get(src),
            title: own.title.clone(),
            position,
            stage,
            priority: self.shared.get(
                &task
                    .priority
                    .or(manifest.defaults.priority)
                    .unwrap_or_default()
                    .label(),
            ),
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
            matrix_sources: instance.matrix_sources.clone(),
            weight: task.weight.unwrap_or(1),
            model: own.model.as_ref().map(|m| {
                Box::new(ModelInfo {
                    name: m.name.clone(),
                    id: m.id.clone(),
                    backend: m.backend.clone(),
                })
            }),
            backend: own.backend.clone(),
            argv,
            argv_recorded,
            prompt_via,
            events: self
                .backends
                .get(&*own.backend)
                .map_or(EventFormat::None, |b| b.events),
            env,
            cli_home: self.cli_home(task, &own.backend, &own.paths),
            budget: task
                .budget
                .clone()
                .or_else(|| manifest.defaults.budget.clone())
                .map(Box::new),
            answers: task.answers.clone(),
            timeout: task
                .timeout
                .as_ref()
                .or(manifest.defaults.timeout.as_ref())
                .map(|t| t.0.clone()),
            idle_timeout: super::idle_timeout_of(
                task.idle_timeout.as_ref(),
                manifest.defaults.idle_timeout.as_ref(),
                self.backends
                    .get(&*own.backend)
                    .map_or(EventFormat::None, |b| b.events),
            ),
            retries: task.retries.or(manifest.defaults.retries).unwrap_or(0),
            worktree: worktree.map(Box::new),
            sandbox,
            env_policy,
            paths: own.paths.clone(),
            context: task.context.clone(),
            plan: plan_text,
            prompt: worker_prompt,
            checks,
        })
    }

    /// Where the task's agent CLI keeps its configuration, when it gets a
    /// folder of its own.
    pub(super) fn cli_home(&self, task: &Task, backend: &str, paths: &TaskPaths) -> Option<String> {
        let wanted = task
            .cli_config
            .or(self.loaded.manifest.defaults.cli_config)
            .unwrap_or_default();
        let builtin = self.backends.get(backend).is_some_and(|b| b.builtin);
        (wanted == CliConfig::Private && builtin && cli_home::supports(backend))
            .then(|| format!("{}/{}", paths.task_dir(), cli_home::FOLDER))
    }

    pub(super) fn render_plan(&self, task: &Task, src: &str, context: &Json) -> String {
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
        if name == DEFAULT_PLAN && !self.templates.overridden(&template) {
            // The built-in checklist, the plan of most tasks of a wide
            // sweep, without a template engine's pass per task.
            let title = context["task"]["title"].as_str().unwrap_or_default();
            let items: Vec<&str> = context["task"]["plan"]
                .as_array()
                .map(|items| items.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            if let Some(text) = templates::checklist(title, &items) {
                return text;
            }
        }
        self.render_template(&["tasks", src, "template"], &template, context)
    }

    /// The backend's argv with the prompt placed as the backend takes it.
    pub(super) fn argv(
        &self,
        instance: &Instance<'a>,
        own: &Basics,
        context: &Json,
        prompt: &str,
    ) -> (Vec<String>, PromptMode) {
        let Some(backend) = self.backends.get(&*own.backend).cloned() else {
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
                vec!["backends".into(), own.backend.to_string(), "command".into()],
            ),
        };
        let indexed = !backend.builtin || instance.task.command.is_some();
        // The context plus the prompt, made only for an argv with
        // templates: a copy of the whole context per task adds up.
        let mut with_prompt: Option<Json> = None;
        let placed = templates.iter().any(|a| a.contains("prompt"));
        let mut argv: Vec<String> = Vec::with_capacity(templates.len() + 1);
        for (i, arg) in templates.iter().enumerate() {
            let index = i.to_string();
            let mut path: Vec<&str> = origin.iter().map(String::as_str).collect();
            if indexed {
                path.push(&index);
            }
            if is_template(arg) {
                let context = with_prompt.get_or_insert_with(|| {
                    let mut context = context.clone();
                    context["prompt"] = Json::String(prompt.to_owned());
                    context["prompt_file"] = Json::String(own.paths.prompt());
                    context
                });
                argv.push(self.render_field(&path, arg, context));
            } else {
                argv.push(arg.clone());
            }
        }
        let mode = backend.prompt;
        if !placed {
            match mode {
                PromptMode::Arg => argv.push(prompt.to_owned()),
                PromptMode::File => argv.push(own.paths.prompt()),
                PromptMode::Stdin => {}
            }
        }
        (argv, mode)
    }

    pub(super) fn env(
        &self,
        instance: &Instance<'a>,
        own: &Basics,
        context: &Json,
    ) -> IndexMap<String, String> {
        let mut env = IndexMap::new();
        if let Some(backend) = self.backends.get(&*own.backend).cloned() {
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
