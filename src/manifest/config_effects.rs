//! When the user's config files change what a manifest means, say so.
//!
//! A config file only fills in names a manifest leaves undefined, yet that
//! is enough for the same manifest to mean two things: `gemini-3.1-pro`
//! runs on cursor on a laptop whose `~/.dispatch/config.yaml` routes it
//! there, and on the Gemini CLI in CI; a model, role, backend or default
//! model defined only in a config file makes a manifest valid locally and
//! invalid in CI. Each such use is a warning naming the file, the tasks,
//! and what happens without the file (`--no-user-config` shows that).

use indexmap::IndexMap;

use super::models::{self, Model};
use super::types::Manifest;
use super::user_config::{Filled, FilledKind};
use super::LoadedManifest;

/// What the files change, one sentence each; empty when nothing the
/// manifest uses came from them.
pub fn effects(loaded: &LoadedManifest) -> Vec<String> {
    if loaded.user_filled.is_empty() {
        return Vec::new();
    }
    let manifest = &loaded.manifest;
    let filled = |kind: FilledKind, name: &str| {
        loaded
            .user_filled
            .iter()
            .find(|f| f.kind == kind && f.name == name)
    };
    let mut tasks: Vec<(&str, String)> = Vec::new();
    for (id, task) in &manifest.tasks {
        let role_model = task
            .role
            .as_ref()
            .and_then(|r| manifest.roles.get(r))
            .and_then(|r| r.model.as_ref());
        if let Some(role) = task.role.as_deref() {
            if let Some(from) = filled(FilledKind::Role, role) {
                tasks.push((id, only_in(from, "role")));
            }
        }
        if task.model.is_none() && role_model.is_none() {
            if let Some(from) = manifest
                .defaults
                .model
                .as_deref()
                .and_then(|m| filled(FilledKind::DefaultModel, m))
            {
                tasks.push((id, default_model(from)));
            }
        }
        let name = models::task_model_name(manifest, task).filter(|n| !models::is_templated(n));
        let model = name.and_then(|name| models::resolve_model(manifest, name));
        if let Some(from) = name.and_then(|name| filled(FilledKind::Model, name)) {
            match (
                models::resolve_model(&Manifest::default(), &from.name),
                &model,
            ) {
                (Some(builtin), Some(here)) if !same(&builtin, here) => {
                    tasks.push((id, routed(from, here, &builtin)))
                }
                (Some(_), _) => {}
                (None, _) => tasks.push((id, only_in(from, "model"))),
            }
            // A model only the file defines: its backend is the file's
            // business, and one warning says it.
            continue;
        }
        let backend = models::task_backend_name(manifest, task, model.as_ref());
        if let Some(from) = backend
            .as_deref()
            .and_then(|b| filled(FilledKind::Backend, b))
        {
            tasks.push((id, only_in(from, "backend")));
        }
    }
    // Message → the tasks it is about, in manifest order.
    let mut found: IndexMap<String, Vec<&str>> = IndexMap::new();
    for (id, message) in tasks {
        found.entry(message).or_default().push(id);
    }
    found
        .into_iter()
        .map(|(message, tasks)| {
            // The advice ends each message: the task list goes before it.
            let (what, advice) = message.split_once(ADVICE).unwrap_or((&message, ""));
            format!(
                "{what} (tasks: {}){ADVICE}{advice}",
                super::diagnostic::list_names(tasks, 8)
            )
        })
        .collect()
}

const WITHOUT: &str = "without that file (in CI, or with --no-user-config)";
/// Between what a file changes and what to do about it.
const ADVICE: &str = ". To make the sweep the same everywhere, ";

fn same(a: &Model, b: &Model) -> bool {
    a.backend == b.backend && a.id == b.id
}

fn routed(from: &Filled, here: &Model, builtin: &Model) -> String {
    format!(
        "model `{}` runs on {} because {} says so; {WITHOUT} it runs on {}{ADVICE}define it under the manifest's `models:`",
        here.name,
        describe(here),
        shown(from),
        describe(builtin)
    )
}

fn describe(model: &Model) -> String {
    if model.id == model.name {
        format!("backend `{}`", model.backend)
    } else {
        format!("backend `{}` as `{}`", model.backend, model.id)
    }
}

fn only_in(from: &Filled, what: &str) -> String {
    format!(
        "{what} `{}` is defined only in {}; {WITHOUT} the manifest is invalid{ADVICE}define it under the manifest's `{what}s:`",
        from.name,
        shown(from)
    )
}

fn default_model(from: &Filled) -> String {
    format!(
        "tasks that name no model run on `{}`, the default model of {}; {WITHOUT} they have none and the manifest is invalid{ADVICE}set `defaults.model` in the manifest",
        from.name,
        shown(from)
    )
}

/// The file as a person recognises it: `~/.dispatch/config.yaml`.
fn shown(from: &Filled) -> String {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match home.and_then(|h| from.file.strip_prefix(h).ok().map(|p| p.to_path_buf())) {
        Some(rest) => format!("~/{}", rest.display()),
        None => from.file.display().to_string(),
    }
}
