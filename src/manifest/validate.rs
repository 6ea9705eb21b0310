//! Checks of meaning that a JSON Schema cannot express: names that must
//! refer to something, regular expressions that must compile, settings that
//! only make sense together. Dependencies and templates are checked when the
//! plan is expanded ([`crate::plan`]), since matrix ids exist only then.

use indexmap::IndexMap;
use regex::RegexBuilder;

use super::types::{AnswerRule, Manifest, OnUnanswered, Task};
use super::{duration, Invalid, LoadedManifest};
use crate::manifest::diagnostic::{did_you_mean, list_names, Diagnostic};
use crate::manifest::models::{self, Backend, COMMAND_BACKEND};

/// Longest task id: ids become branch names and folder names.
pub const MAX_ID_LEN: usize = 64;

/// Run every check; all problems are reported together. A task without a
/// model does not stop the plan from being expanded, and is the problem a
/// user config or `defaults.model` most often hides, so it is returned
/// apart (`Ok`) when it is the only kind: the plan reports it after the
/// problems only expansion finds (an unknown need, a cycle, a template),
/// which would otherwise go unseen until the model was set.
pub fn check(loaded: &LoadedManifest) -> Result<Vec<Diagnostic>, Invalid> {
    let all = models::backends(&loaded.manifest);
    let mut checker = Checker {
        loaded,
        manifest: &loaded.manifest,
        backends: &all,
        problems: Vec::new(),
        no_model: Vec::new(),
    };
    checker.run();
    checker.no_model.sort_by_key(|d| d.location);
    if checker.problems.is_empty() {
        Ok(checker.no_model)
    } else {
        checker.problems.sort_by_key(|d| d.location);
        checker.problems.append(&mut checker.no_model);
        Err(Invalid(checker.problems))
    }
}

struct Checker<'a> {
    loaded: &'a LoadedManifest,
    manifest: &'a Manifest,
    /// The built-in backends with the manifest's, made once (every task is
    /// checked against them).
    backends: &'a IndexMap<String, Backend>,
    problems: Vec<Diagnostic>,
    /// Tasks that have no model (see [`check`]).
    no_model: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn run(&mut self) {
        self.check_models_and_backends();
        self.check_concurrency();
        self.check_defaults();
        self.check_questions();
        self.check_escalation();
        self.check_templates_dir();
        for (id, task) in &self.manifest.tasks {
            self.check_task(id, task);
        }
        super::confine::check(self.loaded, &mut self.problems);
    }

    fn push(&mut self, d: Diagnostic) {
        self.problems.push(d);
    }

    fn unknown_model(&mut self, path: &[&str], name: &str) {
        let known = models::known_models(self.manifest);
        let mut d = self.loaded.error_at(
            path,
            format!(
                "unknown model \"{name}\" (known: {})",
                list_names(known.iter().map(String::as_str), 8)
            ),
        );
        d = match did_you_mean(name, known.iter().map(String::as_str)) {
            Some(close) => d.with_help(format!("did you mean `{close}`?")),
            None => d.with_help(format!(
                "define it under `models:`, e.g. `{name}: {{ backend: claude, id: MODEL-ID }}`"
            )),
        };
        self.push(d);
    }

    fn check_backend_name(&mut self, path: &[&str], name: &str) -> bool {
        if self.backends.contains_key(name) {
            return true;
        }
        let known: Vec<&str> = self.backends.keys().map(String::as_str).collect();
        let mut d = self.loaded.error_at(
            path,
            format!(
                "unknown backend \"{name}\" (known: {})",
                list_names(known.iter().copied(), 10)
            ),
        );
        d = match did_you_mean(name, known.iter().copied()) {
            Some(close) => d.with_help(format!("did you mean `{close}`?")),
            None => d.with_help(format!(
                "define it under `backends:` with the command that runs it, e.g. `{name}: {{ command: [my-agent, --model, \"{{{{ model.id }}}}\"] }}`"
            )),
        };
        self.push(d);
        false
    }

    fn check_models_and_backends(&mut self) {
        let models: Vec<(String, String)> = self
            .manifest
            .models
            .iter()
            .map(|(name, def)| (name.clone(), def.backend.clone()))
            .collect();
        for (name, backend) in models {
            self.check_backend_name(&["models", &name, "backend"], &backend);
        }
        let manifest = self.manifest;
        for (name, def) in &manifest.backends {
            for (key, _) in &def.env {
                self.check_env_name(&["backends", name, "env", key], key);
            }
        }
        for (name, role) in &manifest.roles {
            if let Some(model) = &role.model {
                if models::resolve_model(manifest, model).is_none() {
                    self.unknown_model(&["roles", name, "model"], model);
                }
            }
        }
    }

    /// Each cap of a concurrency map names a backend or a model.
    fn check_concurrency(&mut self) {
        let Some(super::types::Concurrency::Caps(caps)) = &self.manifest.concurrency else {
            return;
        };
        let models = models::known_models(self.manifest);
        let mut known: Vec<&str> = vec!["total"];
        known.extend(self.backends.keys().map(String::as_str));
        known.extend(models.iter().map(String::as_str));
        for name in caps.keys() {
            if known.contains(&name.as_str()) {
                continue;
            }
            let mut d = self.loaded.error_at_key(
                &["concurrency", name],
                format!("`{name}` is neither `total`, a backend nor a model, so it caps nothing"),
            );
            d = match did_you_mean(name, known.iter().copied()) {
                Some(close) => d.with_help(format!("did you mean `{close}`?")),
                None => d.with_help(format!(
                    "cap a backend ({}) or a model by its name",
                    list_names(self.backends.keys().map(String::as_str), 8)
                )),
            };
            self.push(d);
        }
    }

    fn check_defaults(&mut self) {
        let defaults = &self.manifest.defaults;
        if let Some(model) = &defaults.model {
            if models::resolve_model(self.manifest, model).is_none() {
                self.unknown_model(&["defaults", "model"], model);
            }
        }
        if let Some(backend) = &defaults.backend {
            self.check_backend_name(&["defaults", "backend"], backend);
        }
        if let Some(timeout) = &defaults.timeout {
            self.check_duration(&["defaults", "timeout"], &timeout.0);
        }
        if let Some(idle) = &defaults.idle_timeout {
            self.check_duration(&["defaults", "idle_timeout"], &idle.0);
        }
        if let Some(checks) = &defaults.checks {
            let problems = super::checks::problems(self.loaded, &["defaults", "checks"], checks);
            self.problems.extend(problems);
        }
    }

    fn check_duration(&mut self, path: &[&str], text: &str) {
        if duration::parse(text).is_none() {
            let d = self
                .loaded
                .error_at(path, format!("`{text}` is too long a duration"))
                .with_help("write a shorter duration, e.g. `2h`");
            self.push(d);
        }
    }

    fn check_questions(&mut self) {
        let questions = &self.manifest.questions;
        if let Some(timeout) = &questions.timeout {
            self.check_duration(&["questions", "timeout"], &timeout.0);
        }
        if questions.on_unanswered == Some(OnUnanswered::Default)
            && questions.default_answer.is_none()
        {
            let d = self
                .loaded
                .error_at(&["questions", "on_unanswered"], "`on_unanswered: default` needs a `default_answer`")
                .with_help("add `default_answer: \"...\"` under `questions:`, or choose wait, block or fail");
            self.push(d);
        }
        let rules = &self.manifest.questions.answers;
        self.check_answer_rules(&["questions", "answers"], rules);
    }

    fn check_answer_rules(&mut self, path: &[&str], rules: &[AnswerRule]) {
        for (i, rule) in rules.iter().enumerate() {
            let index = i.to_string();
            let mut here: Vec<&str> = path.to_vec();
            here.push(&index);
            if rule.pattern.is_none() && rule.keywords.is_empty() {
                let d = self
                    .loaded
                    .error_at(&here, "an answer rule needs `match` or `keywords`")
                    .with_help("add `match: \"regular expression\"` or `keywords: [word, ...]` to say which questions it answers");
                self.push(d);
            }
            if let Some(pattern) = &rule.pattern {
                here.push("match");
                self.check_regex(&here, pattern);
            }
        }
    }

    fn check_regex(&mut self, path: &[&str], pattern: &str) {
        if let Err(e) = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
        {
            let reason = e.to_string();
            let reason = reason.lines().last().unwrap_or("invalid").trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason).to_owned();
            let d = self
                .loaded
                .error_at(path, format!("not a valid regular expression: {reason}"))
                .with_help("the syntax is Rust's `regex` crate (like RE2); escape literal characters such as `(` or `[` with `\\`");
            self.push(d);
        }
    }

    fn check_escalation(&mut self) {
        let manifest = self.manifest;
        for (i, rule) in manifest.escalation.iter().enumerate() {
            let index = i.to_string();
            let when = &rule.when;
            if when.severity.is_none() && when.status.is_empty() && when.question.is_none() {
                let d = self
                    .loaded
                    .error_at(&["escalation", &index, "when"], "the condition names no event")
                    .with_help("add `severity: high` (findings), `status: [failed]` (task outcomes) or `question: \"regex\"`");
                self.push(d);
            }
            if let Some(pattern) = &when.question {
                self.check_regex(&["escalation", &index, "when", "question"], pattern);
            }
            for (j, id) in when.tasks.iter().enumerate() {
                if !manifest.tasks.contains_key(id) {
                    let d = unknown_task(
                        self.loaded,
                        &["escalation", &index, "when", "tasks", &j.to_string()],
                        id,
                    );
                    self.push(d);
                }
            }
            if rule.exit_code == Some(2) {
                let d = self
                    .loaded
                    .error_at(
                        &["escalation", &index, "exit_code"],
                        "exit code 2 means an invalid manifest or bad usage",
                    )
                    .with_help("use 3 (the default for escalations) or a code from 5 to 125");
                self.push(d);
            }
        }
    }

    fn check_templates_dir(&mut self) {
        if let Some(dir) = &self.manifest.templates {
            let full = self.loaded.dir.join(dir);
            if !full.is_dir() {
                let d = self
                    .loaded
                    .error_at(
                        &["templates"],
                        format!("the templates folder `{dir}` does not exist"),
                    )
                    .with_help(format!(
                        "create it (looked for {}) or remove the key to use the built-in templates",
                        full.display()
                    ));
                self.push(d);
            }
        }
    }

    fn check_env_name(&mut self, path: &[&str], name: &str) {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let d = self
                .loaded
                .error_at_key(
                    path,
                    format!("`{name}` is not a valid environment variable name"),
                )
                .with_help("use letters, digits and `_`, starting with a letter or `_`");
            self.push(d);
        } else if name.starts_with("DISPATCH_") {
            let d = self
                .loaded
                .error_at_key(path, format!("`{name}` is set by dispatch itself"))
                .with_help("DISPATCH_* variables tell the worker where its plan and IPC folder are; choose another name");
            self.push(d);
        }
    }

    fn check_task(&mut self, id: &str, task: &Task) {
        let manifest = self.manifest;
        if id.len() > MAX_ID_LEN {
            let d = self
                .loaded
                .error_at_key(
                    &["tasks", id],
                    format!(
                        "the task id is {} characters long; the limit is {MAX_ID_LEN}",
                        id.len()
                    ),
                )
                .with_help("ids become folder and branch names; choose a shorter one");
            self.push(d);
        }
        if let Some(role) = &task.role {
            if !manifest.roles.contains_key(role) {
                let known: Vec<&str> = manifest.roles.keys().map(String::as_str).collect();
                let mut d = self.loaded.error_at(
                    &["tasks", id, "role"],
                    format!(
                        "unknown role \"{role}\" (known: {})",
                        list_names(known.iter().copied(), 8)
                    ),
                );
                d = match did_you_mean(role, known.iter().copied()) {
                    Some(close) => d.with_help(format!("did you mean `{close}`?")),
                    None => d.with_help(format!("define it under `roles:`, e.g. `{role}: {{ model: opus, prompt: \"You are ...\" }}`")),
                };
                self.push(d);
            }
        }
        if let Some(model) = &task.model {
            if !models::is_templated(model) && models::resolve_model(manifest, model).is_none() {
                self.unknown_model(&["tasks", id, "model"], model);
            }
        }
        self.check_task_backend(id, task);
        let has_work = task.prompt.is_some()
            || task.title.is_some()
            || !task.plan.is_empty()
            || task.template.is_some()
            || task.command.is_some();
        if !has_work {
            let d = self
                .loaded
                .error_at_key(&["tasks", id], "the task says nothing to do")
                .with_help("add a `prompt:` (or a `title:`), a `plan:` list or a plan `template:`");
            self.push(d);
        }
        if let Some(timeout) = &task.timeout {
            self.check_duration(&["tasks", id, "timeout"], &timeout.0);
        }
        if let Some(idle) = &task.idle_timeout {
            self.check_duration(&["tasks", id, "idle_timeout"], &idle.0);
        }
        if let Some(checks) = &task.checks {
            let problems = super::checks::problems(self.loaded, &["tasks", id, "checks"], checks);
            self.problems.extend(problems);
        }
        for (key, _) in &task.env {
            self.check_env_name(&["tasks", id, "env", key], key);
        }
        self.check_answer_rules(&["tasks", id, "answers"], &task.answers);
        for problem in super::matrix::check(&task.matrix) {
            let mut at = vec!["tasks".to_owned(), id.to_owned(), "matrix".to_owned()];
            at.extend(problem.at);
            let d = self
                .loaded
                .error_at(&at, problem.message)
                .with_help(problem.help);
            self.push(d);
        }
    }

    fn check_task_backend(&mut self, id: &str, task: &Task) {
        let manifest = self.manifest;
        let model_name = models::task_model_name(manifest, task);
        if model_name.is_some_and(models::is_templated) {
            // Known only once the matrix is expanded; checked by the plan.
            return;
        }
        let role_unknown = task
            .role
            .as_ref()
            .is_some_and(|r| !manifest.roles.contains_key(r));
        let model_unknown =
            model_name.is_some_and(|m| models::resolve_model(manifest, m).is_none());
        if role_unknown || model_unknown {
            // Already reported where the name is written; what follows from
            // it would only repeat the problem.
            return;
        }
        let model = models::task_model_name(manifest, task)
            .and_then(|name| models::resolve_model(manifest, name));
        let Some(backend_name) = models::task_backend_name(manifest, task, model.as_ref()) else {
            let d = self
                .loaded
                .error_at_key(&["tasks", id], "the task has no model and no backend")
                .with_help("set `model:` (e.g. `model: sonnet`), a `role:` with a model, or `defaults.model`");
            self.no_model.push(d);
            return;
        };
        if task.backend.is_some()
            && !self.check_backend_name(&["tasks", id, "backend"], &backend_name)
        {
            return;
        }
        let Some(backend) = self.backends.get(&backend_name) else {
            // An unknown backend from a model or the defaults: reported there.
            return;
        };
        if backend_name == COMMAND_BACKEND && backend.builtin && task.command.is_none() {
            let d = self
                .loaded
                .error_at_key(
                    &["tasks", id],
                    "the `command` backend needs the task's `command:`",
                )
                .with_help("add `command: [program, arg, ...]`, the worker to run");
            self.push(d);
        }
        if task.command.is_some() && backend_name != COMMAND_BACKEND {
            let d = self
                .loaded
                .error_at_key(&["tasks", id, "command"], format!("`command:` is only for the `command` backend, but this task uses `{backend_name}`"))
                .with_help("remove `command:`, or set `backend: command`");
            self.push(d);
        }
        if let Some(model) = model
            .as_ref()
            .filter(|m| backend.builtin && backend_name == "opencode" && !m.id.contains('/'))
        {
            let d = self
                .loaded
                .error_at_key(&["tasks", id], format!("opencode takes models as `provider/model`, but model \"{}\" has the id \"{}\"", model.name, model.id))
                .with_help(format!("define a model for opencode, e.g. `models: {{ {}: {{ backend: opencode, id: anthropic/claude-sonnet-4-5 }} }}`", model.name));
            self.push(d);
        }
        if model.is_none() && backend.needs_model() && task.model.is_none() {
            let d = self
                .loaded
                .error_at_key(&["tasks", id], format!("backend `{backend_name}` needs a model, and this task has none"))
                .with_help("set `model:` (e.g. `model: sonnet`), a `role:` with a model, or `defaults.model`");
            self.no_model.push(d);
        }
    }
}

/// A diagnostic for an id that names no task, with the closest id.
pub fn unknown_task(loaded: &LoadedManifest, path: &[&str], id: &str) -> Diagnostic {
    let known: Vec<&str> = loaded.manifest.tasks.keys().map(String::as_str).collect();
    let d = loaded.error_at(
        path,
        format!(
            "unknown task \"{id}\" (known: {})",
            list_names(known.iter().copied(), 8)
        ),
    );
    match did_you_mean(id, known.iter().copied()) {
        Some(close) => d.with_help(format!("did you mean `{close}`?")),
        None => d.with_help("name a task id defined under `tasks:`"),
    }
}
