//! A person's own models, backends and roles, outside any manifest:
//! `~/.config/dispatch/config.yaml` (this tool's format), and the dispatch
//! skill's `~/.dispatch/config.yaml`, so the skill's users keep their setup.
//!
//! A manifest always wins: user settings only fill in names the manifest
//! does not define. A team manifest that validates in CI (where no user
//! config exists) therefore stays valid on every laptop. It can still mean
//! something else there (a built-in model name such as `gemini-3.1-pro`
//! routed to another CLI), and a manifest can be valid only thanks to a
//! file: [`super::config_effects`] says so, and `--no-user-config` (or
//! `DISPATCH_NO_USER_CONFIG`) reads manifests as CI does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use serde::Deserialize;

use super::types::{BackendDef, Manifest, ModelDef, PromptMode, RoleDef};
use super::{load_tree, read_text, Invalid};
use crate::manifest::diagnostic::{Diagnostic, SourceFile};

/// `~/.config/dispatch/config.yaml`: the manifest's sections that describe
/// a person's tools rather than a sweep.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The model of tasks that name none, when the manifest sets no default.
    #[serde(default)]
    pub default_model: Option<String>,
    #[serde(default)]
    pub models: IndexMap<String, ModelDef>,
    #[serde(default)]
    pub backends: IndexMap<String, BackendDef>,
    #[serde(default)]
    pub roles: IndexMap<String, RoleDef>,
}

/// The dispatch skill's `~/.dispatch/config.yaml`. Unknown keys are
/// ignored: the skill owns that format.
#[derive(Debug, Default, Deserialize)]
pub struct SkillConfig {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub backends: IndexMap<String, SkillBackend>,
    #[serde(default)]
    pub models: IndexMap<String, SkillModel>,
    #[serde(default)]
    pub aliases: IndexMap<String, SkillAlias>,
}

#[derive(Debug, Deserialize)]
pub struct SkillBackend {
    /// A shell command line; the skill appends `--model ID` (except for its
    /// `claude` backend) and the prompt as the last argument.
    pub command: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SkillModel {
    #[serde(default)]
    pub backend: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SkillAlias {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
}

/// The environment variable that makes every command read a manifest as
/// CI does, without the user's config files (like `--no-user-config`).
pub const IGNORE_ENV: &str = "DISPATCH_NO_USER_CONFIG";

/// Set by `--no-user-config` for this process.
static IGNORED: AtomicBool = AtomicBool::new(false);

/// `--no-user-config`: read manifests without the user's config files, as
/// CI (where they do not exist) reads them.
pub fn set_ignored(ignored: bool) {
    IGNORED.store(ignored, Ordering::Relaxed);
}

/// Whether the user's config files are left out: `--no-user-config`, or
/// `DISPATCH_NO_USER_CONFIG` set to anything but empty, `0` or `false`.
pub fn ignored() -> bool {
    IGNORED.load(Ordering::Relaxed)
        || std::env::var(IGNORE_ENV).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// A name a user config file defined for a manifest that did not: what
/// [`crate::manifest::config_effects`] looks for among the names the
/// manifest uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filled {
    pub file: PathBuf,
    pub kind: FilledKind,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilledKind {
    Model,
    Backend,
    Role,
    /// The default model (`default_model:`, or the skill's `default:`).
    DefaultModel,
}

/// Where the two files are, from `XDG_CONFIG_HOME` and `HOME`.
pub fn paths() -> (Option<PathBuf>, Option<PathBuf>) {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    (
        config_home.map(|c| c.join("dispatch").join("config.yaml")),
        home.map(|h| h.join(".dispatch").join("config.yaml")),
    )
}

/// Fill in what the manifest leaves undefined from the user's config files
/// (none when [`ignored`]). Returns the files that were applied, and each
/// name they filled in.
pub fn apply(manifest: &mut Manifest) -> Result<(Vec<PathBuf>, Vec<Filled>), Invalid> {
    if ignored() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (own, skill) = paths();
    let mut applied = Vec::new();
    let mut filled = Vec::new();
    if let Some(path) = own.filter(|p| p.is_file()) {
        let config: UserConfig = load(&path)?;
        let before = Names::of(manifest);
        merge_own(manifest, config);
        filled.extend(before.filled(manifest, &path));
        applied.push(path);
    }
    if let Some(path) = skill.filter(|p| p.is_file()) {
        let config: SkillConfig = load(&path)?;
        let before = Names::of(manifest);
        merge_skill(manifest, config);
        filled.extend(before.filled(manifest, &path));
        applied.push(path);
    }
    Ok((applied, filled))
}

/// The names a manifest defines, before a config file is merged in.
struct Names {
    models: Vec<String>,
    backends: Vec<String>,
    roles: Vec<String>,
    default_model: bool,
}

impl Names {
    fn of(manifest: &Manifest) -> Self {
        Self {
            models: manifest.models.keys().cloned().collect(),
            backends: manifest.backends.keys().cloned().collect(),
            roles: manifest.roles.keys().cloned().collect(),
            default_model: manifest.defaults.model.is_some(),
        }
    }

    /// What merging `file` added.
    fn filled(&self, manifest: &Manifest, file: &Path) -> Vec<Filled> {
        let new = |kind, before: &[String], now: Vec<&String>| -> Vec<Filled> {
            now.into_iter()
                .filter(|n| !before.contains(n))
                .map(|name| Filled {
                    file: file.to_path_buf(),
                    kind,
                    name: name.clone(),
                })
                .collect()
        };
        let mut filled = new(
            FilledKind::Model,
            &self.models,
            manifest.models.keys().collect(),
        );
        filled.extend(new(
            FilledKind::Backend,
            &self.backends,
            manifest.backends.keys().collect(),
        ));
        filled.extend(new(
            FilledKind::Role,
            &self.roles,
            manifest.roles.keys().collect(),
        ));
        if let Some(model) = manifest
            .defaults
            .model
            .as_ref()
            .filter(|_| !self.default_model)
        {
            filled.push(Filled {
                file: file.to_path_buf(),
                kind: FilledKind::DefaultModel,
                name: model.clone(),
            });
        }
        filled
    }
}

fn load<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, Invalid> {
    let name = path.display().to_string();
    let text = read_text(path, &name)?;
    let source = SourceFile::new(&name, text);
    match load_tree(&source)? {
        // An empty file configures nothing.
        None => Ok(T::default()),
        Some(root) => serde_json::from_value(root.to_json()).map_err(|e| serde_problem(&name, e)),
    }
}

fn serde_problem(name: &str, error: serde_json::Error) -> Invalid {
    Invalid::one(
        Diagnostic::new(
            name,
            format!("this configuration file does not fit its format: {error}"),
        )
        .with_help(
            "see docs/config.md; the keys are `default_model`, `models`, `backends` and `roles`",
        ),
    )
}

fn merge_own(manifest: &mut Manifest, config: UserConfig) {
    if manifest.defaults.model.is_none() {
        manifest.defaults.model = config.default_model;
    }
    fill(&mut manifest.models, config.models);
    fill(&mut manifest.backends, config.backends);
    fill(&mut manifest.roles, config.roles);
}

/// The skill's names, in this tool's terms. A skill backend named like a
/// built-in one (claude, codex, cursor, …) is not imported: the built-in
/// runs the same CLI and also reads its event stream.
fn merge_skill(manifest: &mut Manifest, config: SkillConfig) {
    let builtin: Vec<String> = crate::manifest::models::builtin_backends()
        .into_iter()
        .map(|b| b.name)
        .collect();
    let backends = config
        .backends
        .into_iter()
        .filter(|(name, _)| !builtin.contains(name))
        .map(|(name, backend)| {
            let def = skill_backend(&backend.command);
            (name, def)
        })
        .collect();
    fill(&mut manifest.backends, backends);
    let models = config
        .models
        .into_iter()
        .filter_map(|(name, model)| {
            let backend = model.backend?;
            Some((
                name,
                ModelDef {
                    backend,
                    id: None,
                    budget: None,
                },
            ))
        })
        .collect();
    fill(&mut manifest.models, models);
    let default =
        config.default.map(
            |d| match config.aliases.get(&d).and_then(|a| a.model.clone()) {
                Some(model) => model,
                None => d,
            },
        );
    let roles = config
        .aliases
        .into_iter()
        .map(|(name, alias)| {
            (
                name,
                RoleDef {
                    model: alias.model,
                    prompt: alias.prompt.unwrap_or_default(),
                },
            )
        })
        .collect();
    fill(&mut manifest.roles, roles);
    if manifest.defaults.model.is_none() {
        manifest.defaults.model = default;
    }
}

/// The skill's shell command as an argv: `sh -c 'COMMAND --model "$1" "$2"'`
/// with the model id and the prompt as positional parameters, so neither
/// is ever parsed by the shell.
fn skill_backend(command: &str) -> BackendDef {
    BackendDef {
        command: vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("{} --model \"$1\" \"$2\"", command.trim()),
            "dispatch-worker".to_owned(),
            "{{ model.id }}".to_owned(),
            "{{ prompt }}".to_owned(),
        ],
        prompt: PromptMode::Arg,
        env: IndexMap::new(),
        events: None,
    }
}

/// Add the entries of `from` whose names `into` lacks.
fn fill<V>(into: &mut IndexMap<String, V>, from: IndexMap<String, V>) {
    for (name, value) in from {
        into.entry(name).or_insert(value);
    }
}
