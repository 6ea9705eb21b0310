//! Reading a manifest: bytes → YAML with locations → JSON Schema → Rust
//! types → checks of meaning. Every problem becomes a [`Diagnostic`] that
//! points at the place in the file.

pub mod checks;
pub mod config_effects;
pub mod confine;
pub mod diagnostic;
pub mod duration;
pub mod matrix;
pub mod models;
pub mod schema;
pub mod types;
pub mod user_config;
pub mod validate;
pub mod worktree;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use types::Manifest;

use crate::manifest::diagnostic::{render_all, Diagnostic, Location, SourceFile};
use yaml::Node;

/// Manifests are written by people; anything larger than this is a mistake
/// (a log, a dump) and would only make the loader slow.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A manifest that loaded and passed the schema and the checks of meaning.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    /// The path as the user gave it.
    pub path: PathBuf,
    /// The folder relative paths in the manifest are resolved against.
    pub dir: PathBuf,
    pub source: SourceFile,
    /// The YAML tree, kept to locate later errors (templates, expansion).
    pub root: Node,
    pub manifest: Manifest,
    /// The user config files that filled in models, backends or roles.
    pub user_config: Vec<PathBuf>,
    /// Each name those files filled in ([`config_effects`] says which of
    /// them change what the manifest means).
    pub user_filled: Vec<user_config::Filled>,
    /// Tasks without a model: problems that do not stop the plan from being
    /// expanded, so [`crate::plan::build`] reports them after its own
    /// (see [`validate::check`]). A manifest with any is never run.
    pub no_model: Vec<Diagnostic>,
}

/// One or more problems with a user's input, ready to print.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct Invalid(pub Vec<Diagnostic>);

impl Invalid {
    pub fn one(diagnostic: Diagnostic) -> Self {
        Invalid(vec![diagnostic])
    }
}

/// Read and check the manifest at `path`, on its own.
pub fn load(path: &Path) -> Result<LoadedManifest, Invalid> {
    load_inner(path, false)
}

/// Read and check the manifest at `path`, with the models, backends and
/// roles of the user's config files filling in what it leaves undefined
/// (see [`user_config`]). This is what the commands use.
pub fn load_with_user_config(path: &Path) -> Result<LoadedManifest, Invalid> {
    load_inner(path, true)
}

fn load_inner(path: &Path, with_user_config: bool) -> Result<LoadedManifest, Invalid> {
    let name = path.display().to_string();
    let text = read_text(path, &name)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut loaded = parse(&name, &text)?;
    loaded.path = path.to_path_buf();
    loaded.dir = dir;
    if with_user_config {
        (loaded.user_config, loaded.user_filled) = user_config::apply(&mut loaded.manifest)?;
    }
    loaded.no_model = validate::check(&loaded)?;
    Ok(loaded)
}

/// Check a manifest given as text (the folder for relative paths is `.`).
pub fn parse(name: &str, text: &str) -> Result<LoadedManifest, Invalid> {
    let mut source = SourceFile::new(name, text);
    let root = parse_yaml(&source)?;
    let (pairs, listed) = secrets_in(&root);
    source.add_secrets(&pairs, &listed);
    let json = root.to_json();
    let problems = schema::check(&json, &root, &source);
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let manifest: Manifest = serde_json::from_value(json).map_err(|e| {
        Invalid::one(
            Diagnostic::new(name, format!("the manifest does not fit its format: {e}"))
                .with_help("run `dispatch schema` to see the format"),
        )
    })?;
    Ok(LoadedManifest {
        path: PathBuf::from(name),
        dir: PathBuf::from("."),
        source,
        root,
        manifest,
        user_config: Vec::new(),
        user_filled: Vec::new(),
        no_model: Vec::new(),
    })
}

/// The file's own secrets, for error snippets: the names under `secrets:`,
/// and every `NAME: value` entry (in `env:`, `vars:`, anywhere) whose name
/// looks secret or is listed.
fn secrets_in(root: &Node) -> (Vec<(String, String)>, Vec<String>) {
    let listed: Vec<String> = match root.get("secrets").map(|(_, v)| &v.value) {
        Some(yaml::Value::Seq(items)) => items
            .iter()
            .filter_map(|item| match &item.value {
                yaml::Value::String(name) => Some(name.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut pairs = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match &node.value {
            yaml::Value::Map(entries) => {
                for (key, value) in entries {
                    match &value.value {
                        yaml::Value::String(text)
                            if crate::domain::redact::looks_secret(&key.name)
                                || listed.contains(&key.name) =>
                        {
                            pairs.push((key.name.clone(), text.clone()))
                        }
                        yaml::Value::String(_) => {}
                        _ => stack.push(value),
                    }
                }
            }
            yaml::Value::Seq(items) => stack.extend(items),
            _ => {}
        }
    }
    (pairs, listed)
}

fn read_text(path: &Path, name: &str) -> Result<String, Invalid> {
    use std::io::Read;
    let whole_file = |message: String, help: &str| {
        Invalid::one(Diagnostic::new(name, message).with_help(help.to_owned()))
    };
    let metadata = std::fs::metadata(path).map_err(|e| {
        whole_file(
            format!("cannot read the manifest: {e}"),
            "check the path; manifests are usually checked in beside the code, e.g. `manifests/sweep.yaml`",
        )
    })?;
    if metadata.is_dir() {
        return Err(whole_file(
            "this is a folder, not a manifest file".to_owned(),
            "name the YAML file, e.g. `manifests/sweep.yaml`",
        ));
    }
    if metadata.len() > MAX_MANIFEST_BYTES {
        return Err(whole_file(
            format!(
                "the file is {:.1} MiB; a manifest may be at most 1 MiB",
                metadata.len() as f64 / (1024.0 * 1024.0)
            ),
            "is this the right file? Split a very large sweep into several manifests",
        ));
    }
    let cannot_read = |e: std::io::Error| {
        whole_file(
            format!("cannot read the manifest: {e}"),
            "check the file's permissions",
        )
    };
    // A pipe or special file has no size to check beforehand
    // (`yes | dispatch validate /dev/stdin`): the cap is applied while
    // reading, one byte past it telling that there was more.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot_read)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(whole_file(
            "the input goes on past 1 MiB; a manifest may be at most 1 MiB".to_owned(),
            "is this the right file? Split a very large sweep into several manifests",
        ));
    }
    decode(name, bytes)
}

/// UTF-8 text, or a diagnostic at the first byte that is not.
fn decode(name: &str, bytes: Vec<u8>) -> Result<String, Invalid> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = String::from_utf8_lossy(valid);
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let source = SourceFile::new(name, String::from_utf8_lossy(e.as_bytes()).into_owned());
        Invalid::one(
            Diagnostic::new(name, "the file is not valid UTF-8 text")
                .at(&source, Location::new(line, column, 1))
                .with_help(
                    "save the manifest as UTF-8 (it may be UTF-16, Latin-1 or a binary file)",
                ),
        )
    })
}

/// The YAML tree, which must be a mapping.
fn parse_yaml(source: &SourceFile) -> Result<Node, Invalid> {
    let root = load_tree(source)?;
    let Some(root) = root else {
        return Err(Invalid::one(
            Diagnostic::new(&source.name, "the manifest is empty").with_help(
                "start with `version: 1` and a `tasks:` mapping; see manifests/ for examples",
            ),
        ));
    };
    if !matches!(root.value, yaml::Value::Map(_)) {
        return Err(Invalid::one(
            Diagnostic::new(
                &source.name,
                "the manifest must be a mapping of keys (`version:`, `tasks:`, …)",
            )
            .at(source, root.location)
            .with_help(
                "start with `version: 1` and a `tasks:` mapping; see manifests/ for examples",
            ),
        ));
    }
    Ok(root)
}

/// The YAML tree of a file, or `None` when it holds no document; syntax
/// errors become located diagnostics.
fn load_tree(source: &SourceFile) -> Result<Option<Node>, Invalid> {
    let text = source.text.strip_prefix('\u{feff}').unwrap_or(&source.text);
    yaml::load(text).map_err(|e| {
        let mut d = Diagnostic::new(&source.name, e.message);
        if let Some(location) = e.location {
            d = d.at(source, location);
        }
        if let Some(help) = e.help {
            d = d.with_help(help);
        }
        Invalid::one(d)
    })
}

impl LoadedManifest {
    /// A diagnostic at the value under `segments` (or its nearest ancestor
    /// that is in the file).
    pub fn error_at<S: AsRef<str>>(
        &self,
        segments: &[S],
        message: impl Into<String>,
    ) -> Diagnostic {
        let located = self.root.locate(segments);
        let owned: Vec<String> = segments.iter().map(|s| s.as_ref().to_owned()).collect();
        Diagnostic::new(&self.source.name, message)
            .at(&self.source, located.node.location)
            .with_path(schema::dotted(&owned))
    }

    /// A diagnostic at the key of the entry under `segments`.
    pub fn error_at_key<S: AsRef<str>>(
        &self,
        segments: &[S],
        message: impl Into<String>,
    ) -> Diagnostic {
        let located = self.root.locate(segments);
        let location = match located.key {
            Some(key) if located.complete => key.location,
            _ => located.node.location,
        };
        let owned: Vec<String> = segments.iter().map(|s| s.as_ref().to_owned()).collect();
        Diagnostic::new(&self.source.name, message)
            .at(&self.source, location)
            .with_path(schema::dotted(&owned))
    }
}
