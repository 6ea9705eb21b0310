//! Agent programs and the models they serve: the built-in table, what a
//! manifest adds to it, and how a task's model becomes a backend and argv.
//!
//! The built-in argv use each CLI's non-interactive mode with machine-readable
//! output, as documented in `docs/backends.md`.

use indexmap::IndexMap;

use crate::manifest::types::EventFormat;
use crate::manifest::types::{BackendDef, Manifest, PromptMode, Task};

/// The backend whose argv comes from the task's own `command:`.
pub const COMMAND_BACKEND: &str = "command";

/// A backend after merging the built-ins with the manifest's `backends:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    /// Argument templates; empty for the `command` backend.
    pub command: Vec<String>,
    pub prompt: PromptMode,
    pub env: IndexMap<String, String>,
    /// Whether the program is one of the agent CLIs this build knows.
    pub builtin: bool,
    /// How its stdout is read for turns, tokens, cost and errors.
    pub events: EventFormat,
}

impl Backend {
    /// Whether the argv templates need a model to render.
    pub fn needs_model(&self) -> bool {
        self.command.iter().any(|arg| arg.contains("model"))
    }
}

fn builtin(name: &str, command: &[&str], prompt: PromptMode) -> Backend {
    Backend {
        name: name.to_owned(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        prompt,
        env: IndexMap::new(),
        builtin: true,
        events: EventFormat::for_backend(name),
    }
}

/// The agent CLIs `dispatch` knows out of the box, with the flags that make
/// each run unattended, checked against the CLIs' own `--help` (see
/// `docs/backends.md` for why each flag is there).
pub fn builtin_backends() -> Vec<Backend> {
    use PromptMode::*;
    let mut claude = builtin(
        "claude",
        &[
            "claude",
            "-p",
            "--model",
            "{{ model.id }}",
            "--permission-mode",
            "bypassPermissions",
            "--output-format",
            "stream-json",
            "--verbose",
            "--add-dir",
            "{{ paths.state }}",
        ],
        Stdin,
    );
    // Claude Code refuses bypassPermissions as root unless told it runs in
    // a sandbox; a worker in CI often is root.
    claude.env.insert("IS_SANDBOX".to_owned(), "1".to_owned());
    vec![
        claude,
        builtin(
            "codex",
            &[
                "codex",
                "exec",
                "--model",
                "{{ model.id }}",
                "--sandbox",
                "workspace-write",
                "--cd",
                "{{ paths.workdir }}",
                "--add-dir",
                "{{ paths.state }}",
                "--skip-git-repo-check",
                "--json",
                "-",
            ],
            Stdin,
        ),
        builtin(
            "gemini",
            &[
                "gemini",
                "--skip-trust",
                "--model",
                "{{ model.id }}",
                "--approval-mode",
                "yolo",
                "--output-format",
                "stream-json",
                "--include-directories",
                "{{ paths.state }}",
                "--prompt",
                "{{ prompt }}",
            ],
            Arg,
        ),
        builtin(
            "cursor",
            &[
                "agent",
                "--print",
                "--force",
                "--output-format",
                "stream-json",
                "--model",
                "{{ model.id }}",
                "{{ prompt }}",
            ],
            Arg,
        ),
        builtin(
            "opencode",
            &[
                "opencode",
                "run",
                "--model",
                "{{ model.id }}",
                "--format",
                "json",
                "--auto",
                "{{ prompt }}",
            ],
            Arg,
        ),
        builtin(
            "aider",
            &[
                "aider",
                "--model",
                "{{ model.id }}",
                "--yes-always",
                "--no-pretty",
                "--no-stream",
                // Outside git's view: see `agents::aider` for why.
                "--no-git",
                "--no-gitignore",
                "--no-check-update",
                "--no-show-release-notes",
                "--analytics-disable",
                "--message-file",
                "{{ prompt_file }}",
            ],
            File,
        ),
        builtin(COMMAND_BACKEND, &[], Stdin),
    ]
}

/// All backends a manifest can use: the built-ins, overridden and extended
/// by its `backends:`.
pub fn backends(manifest: &Manifest) -> IndexMap<String, Backend> {
    let mut all: IndexMap<String, Backend> = builtin_backends()
        .into_iter()
        .map(|b| (b.name.clone(), b))
        .collect();
    for (name, def) in &manifest.backends {
        all.insert(name.clone(), custom(name, def));
    }
    all
}

fn custom(name: &str, def: &BackendDef) -> Backend {
    Backend {
        name: name.to_owned(),
        command: def.command.clone(),
        prompt: def.prompt,
        env: def.env.clone(),
        builtin: false,
        events: def.events.unwrap_or_else(|| EventFormat::for_backend(name)),
    }
}

/// A model name resolved to the backend that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// The name the manifest used (`opus`).
    pub name: String,
    /// The id the backend is given (`opus`, `gemini-2.5-flash`).
    pub id: String,
    pub backend: String,
}

/// Built-in model names and the backend and id each maps to.
const BUILTIN_MODELS: &[(&str, &str, &str)] = &[
    ("opus", "claude", "opus"),
    ("sonnet", "claude", "sonnet"),
    ("haiku", "claude", "haiku"),
    ("codex", "codex", "gpt-5-codex"),
    ("o3", "codex", "o3"),
    ("o4-mini", "codex", "o4-mini"),
];

/// Model-name prefixes that map to a backend with the name as the id.
const BUILTIN_MODEL_PREFIXES: &[(&str, &str)] = &[
    ("claude-", "claude"),
    ("gpt-", "codex"),
    ("gemini-", "gemini"),
];

/// Resolve a model name: the manifest's `models:` first, then the built-in
/// names, then the built-in prefixes (`gpt-*`, `gemini-*`, `claude-*`).
pub fn resolve_model(manifest: &Manifest, name: &str) -> Option<Model> {
    if let Some(def) = manifest.models.get(name) {
        return Some(Model {
            name: name.to_owned(),
            id: def.id.clone().unwrap_or_else(|| name.to_owned()),
            backend: def.backend.clone(),
        });
    }
    if let Some((_, backend, id)) = BUILTIN_MODELS.iter().find(|(n, _, _)| *n == name) {
        return Some(Model {
            name: name.to_owned(),
            id: (*id).to_owned(),
            backend: (*backend).to_owned(),
        });
    }
    BUILTIN_MODEL_PREFIXES
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix) && name.len() > prefix.len())
        .map(|(_, backend)| Model {
            name: name.to_owned(),
            id: name.to_owned(),
            backend: (*backend).to_owned(),
        })
}

/// Whether a name is a template (`"{{ matrix.model }}"`), resolved only
/// when the plan is expanded.
pub fn is_templated(name: &str) -> bool {
    name.contains("{{") || name.contains("{%")
}

/// The model names a manifest can use, for "known: …" in messages.
pub fn known_models(manifest: &Manifest) -> Vec<String> {
    let mut names: Vec<String> = manifest.models.keys().cloned().collect();
    for (name, _, _) in BUILTIN_MODELS {
        if !names.iter().any(|n| n == name) {
            names.push((*name).to_owned());
        }
    }
    for (prefix, _) in BUILTIN_MODEL_PREFIXES {
        names.push(format!("{prefix}*"));
    }
    names
}

/// Which model name a task uses: its own, its role's, or the default.
pub fn task_model_name<'a>(manifest: &'a Manifest, task: &'a Task) -> Option<&'a str> {
    task.model
        .as_deref()
        .or_else(|| {
            task.role
                .as_ref()
                .and_then(|role| manifest.roles.get(role))
                .and_then(|role| role.model.as_deref())
        })
        .or(manifest.defaults.model.as_deref())
}

/// Which backend a task uses: its own; `command` when it gives a command;
/// its model's; or the manifest's default.
pub fn task_backend_name(
    manifest: &Manifest,
    task: &Task,
    model: Option<&Model>,
) -> Option<String> {
    task.backend
        .clone()
        .or_else(|| task.command.as_ref().map(|_| COMMAND_BACKEND.to_owned()))
        .or_else(|| model.map(|m| m.backend.clone()))
        .or_else(|| manifest.defaults.backend.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::types::ModelDef;

    #[test]
    fn resolves_builtin_names_prefixes_and_manifest_models() {
        let mut manifest = Manifest::default();
        assert_eq!(
            resolve_model(&manifest, "opus").map(|m| m.backend),
            Some("claude".into())
        );
        assert_eq!(
            resolve_model(&manifest, "gpt-5").map(|m| m.backend),
            Some("codex".into())
        );
        assert_eq!(
            resolve_model(&manifest, "gemini-2.5-pro").map(|m| m.id),
            Some("gemini-2.5-pro".into())
        );
        assert_eq!(resolve_model(&manifest, "gpt-"), None);
        assert_eq!(resolve_model(&manifest, "gpt9"), None);
        manifest.models.insert(
            "opus".into(),
            ModelDef {
                backend: "opencode".into(),
                id: Some("anthropic/claude-opus".into()),
                budget: None,
            },
        );
        let model = resolve_model(&manifest, "opus").expect("resolves");
        assert_eq!(
            (model.backend.as_str(), model.id.as_str()),
            ("opencode", "anthropic/claude-opus")
        );
    }

    #[test]
    fn manifest_backends_override_builtins() {
        let mut manifest = Manifest::default();
        manifest.backends.insert(
            "claude".into(),
            BackendDef {
                command: vec!["my-claude".into()],
                prompt: PromptMode::Arg,
                env: IndexMap::new(),
                events: None,
            },
        );
        let all = backends(&manifest);
        assert_eq!(all["claude"].command, vec!["my-claude".to_owned()]);
        assert!(!all["claude"].builtin);
        assert!(all["codex"].builtin);
    }
}
