//! A task's `matrix:` as written: keys with their values listed or read
//! from data (files of the repository, a command's output), and the
//! `include`/`exclude` entries that add and remove combinations, as in
//! GitHub Actions. Reading the data is the plan's job (`plan/sources.rs`):
//! this file only says what the manifest may hold, and checks what can be
//! checked without touching the disk.

use std::borrow::Cow;

use indexmap::IndexMap;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::types::{DurationText, MatrixValue};

/// Keys of `matrix:` that are not matrix keys.
pub const RESERVED_KEYS: [&str; 2] = ["include", "exclude"];

/// A task's matrix: each key's values, and entries to add or remove.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// Combinations to add, or values to add to the combinations they fit
    /// (GitHub Actions' rule: an entry extends every combination whose
    /// values it does not contradict; one that fits none is a combination
    /// of its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<IndexMap<String, serde_json::Value>>,
    /// Combinations to remove: every combination whose values match all of
    /// an entry's (a row matches when its fields include the entry's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<IndexMap<String, serde_json::Value>>,
    /// Each key and its values.
    #[serde(flatten)]
    pub keys: IndexMap<String, Axis>,
}

impl Matrix {
    /// Whether the task runs once (no keys and nothing to include).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.include.is_empty()
    }

    /// Whether any value comes from outside the manifest.
    pub fn reads_data(&self) -> bool {
        self.keys.values().any(|a| matches!(a, Axis::Source(_)))
    }
}

impl JsonSchema for Matrix {
    fn schema_name() -> Cow<'static, str> {
        "Matrix".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let axis = generator.subschema_for::<Axis>();
        let entry = json_schema!({
            "type": "object",
            "minProperties": 1,
            "additionalProperties": { "type": ["string", "number", "boolean", "object"] }
        });
        json_schema!({
            "type": "object",
            "description": "Run the task once per combination of these keys' values; each entry gets the id `TASK-VALUE-...` (a readable slug, with a short hash when values would otherwise collide or be cut) and sees its values as `matrix.KEY` (a row's fields as `matrix.KEY.FIELD`). Values are listed, or read from the repository (`glob`, `lines`, `json`, `jsonl`, `csv`) or a command's output; `include` and `exclude` work as in GitHub Actions.",
            "properties": {
                "include": {
                    "type": "array",
                    "items": entry,
                    "description": "Entries to add: each extends every combination whose values it does not contradict, or, fitting none, becomes a combination of its own (as in GitHub Actions)."
                },
                "exclude": {
                    "type": "array",
                    "items": entry,
                    "description": "Combinations to remove: those whose values match all of an entry's (a row matches when its fields include the entry's). Applied before `include`."
                }
            },
            "additionalProperties": axis
        })
    }
}

/// One key's values: a list, or a source of data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Axis {
    Values(Vec<MatrixValue>),
    Source(Source),
}

impl JsonSchema for Axis {
    fn schema_name() -> Cow<'static, str> {
        "MatrixAxis".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<MatrixValue>();
        let source = generator.subschema_for::<Source>();
        json_schema!({
            "description": "A matrix key's values: a list (`[auth, billing]`), or where to read them (`{ glob: \"src/**/*.test.js\" }`).",
            "anyOf": [
                { "type": "array", "items": value },
                source
            ]
        })
    }
}

/// Where a matrix key's values come from. Name exactly one of `glob`,
/// `lines`, `json`, `jsonl`, `csv` or `command`. Paths are relative to the
/// repository that holds the manifest (the nearest folder up with `.git`,
/// else the manifest's folder), and must stay inside it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The repository's files that match this glob (`src/**/*.test.js`),
    /// in path order, skipping what `.gitignore` ignores. Each value is the
    /// path from the repository's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// With `glob`: globs of files to leave out (`["src/legacy/**"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// A text file: each line is a value (surrounding spaces trimmed; blank
    /// lines and lines starting with `#` skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<String>,
    /// A JSON file holding an array: each element is a value (an object's
    /// fields are `matrix.KEY.FIELD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// A JSON Lines file: each non-blank line is a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonl: Option<String>,
    /// A CSV file whose first line names the fields: each further row is a
    /// value with those fields (as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
    /// A shell command run with `sh -c` in the repository's root when the
    /// sweep is planned (`validate`, `plan` and `run`): each non-blank line
    /// of its output is a value. It is the manifest author's command, run
    /// with their rights, like a `Makefile`'s; no worker has a say in it. A
    /// non-zero exit refuses the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// With `command`: how long it may run (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationText>,
    /// For rows (`json`, `jsonl`, `csv`): the field that names each entry in
    /// its task id (default: the row's first field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// What a source reads, by the key that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Glob,
    Lines,
    Json,
    Jsonl,
    Csv,
    Command,
}

impl SourceKind {
    /// The manifest key that names this kind.
    pub fn key(self) -> &'static str {
        match self {
            SourceKind::Glob => "glob",
            SourceKind::Lines => "lines",
            SourceKind::Json => "json",
            SourceKind::Jsonl => "jsonl",
            SourceKind::Csv => "csv",
            SourceKind::Command => "command",
        }
    }

    /// Whether the values are rows with fields.
    pub fn rows(self) -> bool {
        matches!(self, SourceKind::Json | SourceKind::Jsonl | SourceKind::Csv)
    }
}

impl Source {
    /// Every kind the source names, with its text (exactly one is valid).
    pub fn kinds(&self) -> Vec<(SourceKind, &str)> {
        [
            (SourceKind::Glob, &self.glob),
            (SourceKind::Lines, &self.lines),
            (SourceKind::Json, &self.json),
            (SourceKind::Jsonl, &self.jsonl),
            (SourceKind::Csv, &self.csv),
            (SourceKind::Command, &self.command),
        ]
        .into_iter()
        .filter_map(|(kind, text)| text.as_deref().map(|t| (kind, t)))
        .collect()
    }
}

/// A problem with a matrix found without reading any data: the path below
/// `tasks.ID.matrix` it is at, what is wrong, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixProblem {
    pub at: Vec<String>,
    pub message: String,
    pub help: String,
}

/// The checks of a matrix that need no disk: keys with no values, sources
/// that name no kind or several, options that do not fit their kind, and
/// `include`/`exclude` entries naming no key.
pub fn check(matrix: &Matrix) -> Vec<MatrixProblem> {
    let mut out = Vec::new();
    let mut problem = |at: Vec<String>, message: String, help: &str| {
        out.push(MatrixProblem {
            at,
            message,
            help: help.to_owned(),
        })
    };
    for (key, axis) in &matrix.keys {
        match axis {
            Axis::Values(values) if values.is_empty() => problem(
                vec![key.clone()],
                format!("matrix key `{key}` has no values"),
                "list at least one value, e.g. `[auth, billing]`, or remove the key",
            ),
            Axis::Values(_) => {}
            Axis::Source(source) => {
                let kinds = source.kinds();
                let names: Vec<&str> = kinds.iter().map(|(k, _)| k.key()).collect();
                match kinds.as_slice() {
                    [] => problem(
                        vec![key.clone()],
                        format!("matrix key `{key}` names no source of values"),
                        "add one of `glob`, `lines`, `json`, `jsonl`, `csv` or `command`",
                    ),
                    [(kind, text)] => {
                        let at = |field: &str| vec![key.clone(), field.to_owned()];
                        if text.trim().is_empty() {
                            problem(
                                at(kind.key()),
                                format!("`{}` is empty", kind.key()),
                                "name a path, a glob or a command",
                            );
                        }
                        if !source.exclude.is_empty() && *kind != SourceKind::Glob {
                            problem(
                                at("exclude"),
                                format!("`exclude` works with `glob`, not with `{}`", kind.key()),
                                "remove it, or use a matrix-level `exclude:` entry",
                            );
                        }
                        if source.timeout.is_some() && *kind != SourceKind::Command {
                            problem(
                                at("timeout"),
                                format!(
                                    "`timeout` works with `command`, not with `{}`",
                                    kind.key()
                                ),
                                "remove it",
                            );
                        }
                        if source.id.is_some() && !kind.rows() {
                            problem(
                                at("id"),
                                format!("`id` names a row's field; `{}` gives no rows", kind.key()),
                                "remove it, or read rows with `json`, `jsonl` or `csv`",
                            );
                        }
                    }
                    _ => problem(
                        vec![key.clone()],
                        format!(
                            "matrix key `{key}` names {} sources ({}); it takes one",
                            names.len(),
                            names.join(", ")
                        ),
                        "keep one, or give each its own matrix key",
                    ),
                }
            }
        }
    }
    for (list, entries) in [("include", &matrix.include), ("exclude", &matrix.exclude)] {
        for (n, entry) in entries.iter().enumerate() {
            if list == "exclude" {
                if let Some(unknown) = entry.keys().find(|k| !matrix.keys.contains_key(*k)) {
                    problem(
                        vec![list.to_owned(), n.to_string(), unknown.clone()],
                        format!("`{unknown}` is not a key of this matrix, so the entry excludes nothing"),
                        "name a key the matrix lists",
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(yaml: &str) -> Matrix {
        let loaded = crate::manifest::parse(
            "m.yaml",
            &format!("version: 1\ntasks:\n  t:\n    prompt: p\n    matrix: {yaml}\n"),
        )
        .expect("parses");
        loaded.manifest.tasks["t"].matrix.clone()
    }

    #[test]
    fn reads_lists_sources_and_entries() {
        let m = matrix(
            "{ file: { glob: 'src/**', exclude: [a] }, os: [linux], include: [{ os: mac }], exclude: [{ os: linux }] }",
        );
        assert_eq!(m.keys.len(), 2);
        assert!(matches!(&m.keys["file"], Axis::Source(s) if s.glob.as_deref() == Some("src/**")));
        assert_eq!(m.include.len(), 1);
        assert_eq!(m.exclude.len(), 1);
        assert!(m.reads_data());
    }

    #[test]
    fn a_source_names_one_kind_and_only_its_options() {
        let problems = |yaml: &str| -> Vec<String> {
            check(&matrix(yaml))
                .into_iter()
                .map(|p| p.message)
                .collect()
        };
        assert_eq!(
            problems("{ f: { glob: a, lines: b } }"),
            ["matrix key `f` names 2 sources (glob, lines); it takes one"]
        );
        assert_eq!(
            problems("{ f: { exclude: [a] } }"),
            ["matrix key `f` names no source of values"]
        );
        assert_eq!(
            problems("{ f: { lines: a, exclude: [b], id: x, timeout: 1s } }"),
            [
                "`exclude` works with `glob`, not with `lines`",
                "`timeout` works with `command`, not with `lines`",
                "`id` names a row's field; `lines` gives no rows"
            ]
        );
        assert_eq!(
            problems("{ f: [a], exclude: [{ g: a }] }"),
            ["`g` is not a key of this matrix, so the entry excludes nothing"]
        );
        assert!(problems("{ f: { csv: a.csv, id: name } }").is_empty());
    }
}
