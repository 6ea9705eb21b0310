//! The manifest's JSON Schema: generated from [`super::types`], checked with
//! jsonschema, and its errors turned into diagnostics that point at the YAML.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value as Json;

use super::types::{Manifest, DURATION_PATTERN, ID_PATTERN};
use super::yaml::Node;
use crate::manifest::diagnostic::{did_you_mean, list_names, Diagnostic, Location, SourceFile};

/// Where the schema is published: the raw file on the default branch, so
/// a manifest's `# yaml-language-server: $schema=` line keeps working in
/// any repository and for every release (the format is versioned inside
/// the manifest, `version: 1`, not by the URL). `dispatch init` writes it
/// and the docs show it; a test checks it against the crate's
/// `repository`.
pub const SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/dispatch-sweeps/dispatch/main/schemas/manifest.schema.json";

/// The schema as JSON, generated from the Rust types.
pub fn manifest_schema() -> Json {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Manifest>();
    let mut value = schema.to_value();
    tidy_schema(&mut value);
    // `$schema` and `$id` first, where people and editors look for them.
    if let Json::Object(map) = &mut value {
        for key in ["$id", "$schema"] {
            if let Some(v) = map.shift_remove(key) {
                map.shift_insert(0, key.to_owned(), v);
            }
        }
    }
    value
}

/// Make the generated schema read well in an editor: doc comments' line
/// wraps become spaces (paragraph breaks stay), and serde's `default`
/// annotations, which only repeat "empty", go.
fn tidy_schema(value: &mut Json) {
    match value {
        Json::Object(map) => {
            map.shift_remove("default");
            if let Some(Json::String(text)) = map.get_mut("description") {
                *text = text
                    .split("\n\n")
                    .map(|paragraph| paragraph.replace('\n', " "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            for (key, child) in map.iter_mut() {
                // Property names are data, not schema keywords.
                if key == "properties" || key == "$defs" {
                    if let Json::Object(children) = child {
                        children.values_mut().for_each(tidy_schema);
                    }
                } else {
                    tidy_schema(child);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(tidy_schema),
        _ => {}
    }
}

/// The schema as the text of `schemas/manifest.schema.json`.
pub fn manifest_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&manifest_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema, generated once per process: validation needs it twice
/// (to compile the validator, then to explain its errors).
fn cached_schema() -> &'static Json {
    static SCHEMA: OnceLock<Json> = OnceLock::new();
    SCHEMA.get_or_init(manifest_schema)
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(cached_schema())
            .expect("the generated manifest schema is a valid JSON Schema")
    })
}

/// Every schema violation in `instance`, located in `root`'s source.
pub fn check(instance: &Json, root: &Node, source: &SourceFile) -> Vec<Diagnostic> {
    let mapper = Mapper {
        schema: cached_schema(),
        root,
        source,
    };
    let mut out = Vec::new();
    for error in validator().iter_errors(instance) {
        mapper.explain(&error, &mut out);
    }
    drop_consequences(&mut out);
    out.sort_by_key(|d| d.location);
    // One mistake, one message: a value that is wrong in two ways (a string
    // where the number 1 must be) is reported once.
    out.dedup_by_key(|d| d.location);
    out
}

/// A misspelt required key (`task:` for `tasks:`) shows up twice: as an
/// unknown key and as a missing one. Keep the message that names both.
fn drop_consequences(out: &mut Vec<Diagnostic>) {
    let suggested: Vec<String> = out
        .iter()
        .filter_map(|d| d.help.as_deref()?.strip_prefix("did you mean `"))
        .filter_map(|rest| rest.strip_suffix("`?"))
        .map(str::to_owned)
        .collect();
    out.retain(|d| {
        let missing = d
            .message
            .strip_prefix("missing required key `")
            .and_then(|r| r.strip_suffix('`'));
        !missing.is_some_and(|name| suggested.iter().any(|s| s == name))
    });
}

/// Splits a JSON pointer into its unescaped segments.
pub fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Dotted form of a path for messages: `tasks.audit.plan[2]`.
pub fn dotted(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        let plain = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else if !plain {
            out.push_str(&format!("[{segment:?}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

struct Mapper<'a> {
    schema: &'a Json,
    root: &'a Node,
    source: &'a SourceFile,
}

impl Mapper<'_> {
    fn diagnostic(&self, segments: &[String], location: Location, message: String) -> Diagnostic {
        Diagnostic::new(&self.source.name, message)
            .at(self.source, location)
            .with_path(dotted(segments))
    }

    /// Where a value is; for a path deeper than the file, its parent.
    fn value_location(&self, segments: &[String]) -> Location {
        self.root.locate(segments).node.location
    }

    fn key_location(&self, segments: &[String]) -> Location {
        let found = self.root.locate(segments);
        match found.key {
            Some(key) if found.complete => key.location,
            _ => found.node.location,
        }
    }

    fn explain(&self, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>) {
        let segments = pointer_segments(error.instance_path().as_str());
        let instance = error.instance();
        let at_value = self.value_location(&segments);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let known = properties_at(self.schema, &segments);
                for name in unexpected {
                    let mut path = segments.clone();
                    path.push(name.clone());
                    let mut d = self.diagnostic(
                        &path,
                        self.key_location(&path),
                        format!("unknown key `{name}`"),
                    );
                    d = match did_you_mean(name, known.iter().map(String::as_str)) {
                        Some(close) => d.with_help(format!("did you mean `{close}`?")),
                        None => d.with_help(format!(
                            "the keys allowed here are: {}",
                            list_names(known.iter().map(String::as_str), 20)
                        )),
                    };
                    out.push(d);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let what = if segments.is_empty() {
                    "the manifest".to_owned()
                } else {
                    format!("`{}`", dotted(&segments))
                };
                let mut d = self.diagnostic(
                    &segments,
                    self.key_location(&segments),
                    format!("missing required key `{name}`"),
                );
                d = d.with_help(format!("add `{name}:` to {what}"));
                if segments.is_empty() {
                    d = d.with_path("");
                }
                out.push(d);
            }
            ValidationErrorKind::Type { kind } => {
                let expected = type_names(kind);
                let (message, help) =
                    duration_without_unit(&segments, instance).unwrap_or_else(|| {
                        (
                            format!("expected {expected}, found {}", describe(instance)),
                            type_help(&segments, &expected, instance),
                        )
                    });
                out.push(
                    self.diagnostic(&segments, at_value, message)
                        .with_help(help),
                );
            }
            ValidationErrorKind::Enum { options } => {
                let options: Vec<&str> = options
                    .as_array()
                    .map(|a| a.iter().filter_map(Json::as_str).collect())
                    .unwrap_or_default();
                let given = instance
                    .as_str()
                    .map_or_else(|| instance.to_string(), str::to_owned);
                let mut listed = options.join(", ");
                if segments.last().map(String::as_str) == Some("priority") {
                    listed.push_str(", or a number (higher goes first)");
                }
                let mut d = self.diagnostic(
                    &segments,
                    at_value,
                    format!("`{given}` is not one of: {listed}"),
                );
                d = match did_you_mean(&given, options.iter().copied()) {
                    Some(close) => d.with_help(format!("did you mean `{close}`?")),
                    None => d.with_help("write one of the values listed"),
                };
                out.push(d);
            }
            ValidationErrorKind::Pattern { pattern } => {
                let given = instance.as_str().unwrap_or_default();
                let (message, help) = pattern_message(pattern, given);
                out.push(
                    self.diagnostic(&segments, at_value, message)
                        .with_help(help),
                );
            }
            ValidationErrorKind::PropertyNames { error } => {
                let name = error.instance().as_str().unwrap_or_default().to_owned();
                let mut path = segments.clone();
                path.push(name.clone());
                let (message, help) = match error.kind() {
                    ValidationErrorKind::Pattern { pattern } => pattern_message(pattern, &name),
                    _ => (
                        format!("`{name}` is not allowed as a name here"),
                        "rename it".to_owned(),
                    ),
                };
                out.push(
                    self.diagnostic(&path, self.key_location(&path), message)
                        .with_help(help),
                );
            }
            ValidationErrorKind::Constant { expected_value } => {
                let d = self.diagnostic(
                    &segments,
                    at_value,
                    format!(
                        "must be {expected_value}, found {}",
                        describe_short(instance)
                    ),
                );
                out.push(if segments.first().map(String::as_str) == Some("version") {
                    d.with_help("this dispatch reads manifest format version 1; write `version: 1`")
                } else {
                    d.with_help(format!("write {expected_value}"))
                });
            }
            ValidationErrorKind::AnyOf { context }
            | ValidationErrorKind::OneOfNotValid { context } => {
                self.explain_alternatives(&segments, instance, context, out);
            }
            ValidationErrorKind::MinProperties { limit }
                if segments.last().map(String::as_str) == Some("tasks") =>
            {
                let _ = limit;
                out.push(
                    self.diagnostic(
                        &segments,
                        at_value,
                        "a sweep needs at least one task".to_owned(),
                    )
                    .with_help("add a task under `tasks:`, e.g. `fix-typo: { prompt: ... }`"),
                );
            }
            ValidationErrorKind::Minimum { limit } => out.push(
                self.diagnostic(
                    &segments,
                    at_value,
                    format!(
                        "must be at least {limit}, found {}",
                        describe_short(instance)
                    ),
                )
                .with_help(format!("write a number from {limit} up")),
            ),
            ValidationErrorKind::Maximum { limit } => out.push(
                self.diagnostic(
                    &segments,
                    at_value,
                    format!(
                        "must be at most {limit}, found {}",
                        describe_short(instance)
                    ),
                )
                .with_help(format!("write a number up to {limit}")),
            ),
            ValidationErrorKind::MinItems { limit } | ValidationErrorKind::MinLength { limit } => {
                out.push(
                    self.diagnostic(
                        &segments,
                        at_value,
                        format!("must not be empty (at least {limit} needed)"),
                    )
                    .with_help("fill it in, or remove the key"),
                )
            }
            _ => {
                out.push(
                    self.diagnostic(&segments, at_value, tidy_message(&error.to_string()))
                        .with_help("run `dispatch schema` to see what this key accepts"),
                );
            }
        }
    }

    /// An `anyOf` failed. When exactly one alternative has the value's JSON
    /// type, its errors are the useful ones; otherwise say which types fit.
    fn explain_alternatives(
        &self,
        segments: &[String],
        instance: &Json,
        context: &[Vec<ValidationError<'static>>],
        out: &mut Vec<Diagnostic>,
    ) {
        let same_type: Vec<&Vec<ValidationError<'static>>> = context
            .iter()
            .filter(|errors| {
                !errors.iter().any(|e| {
                    matches!(e.kind(), ValidationErrorKind::Type { .. })
                        && e.instance_path().as_str() == pointer_of(segments)
                })
            })
            .collect();
        if let [errors] = same_type.as_slice() {
            for error in errors.iter() {
                self.explain(error, out);
            }
            return;
        }
        let mut expected: Vec<String> = Vec::new();
        for errors in context {
            for error in errors {
                if let ValidationErrorKind::Type { kind } = error.kind() {
                    if error.instance_path().as_str() == pointer_of(segments) {
                        let name = type_names(kind);
                        if !expected.contains(&name) {
                            expected.push(name);
                        }
                    }
                }
            }
        }
        let expected = if expected.is_empty() {
            "a different value".to_owned()
        } else {
            expected.join(" or ")
        };
        if let Some((message, help)) = duration_without_unit(segments, instance) {
            out.push(
                self.diagnostic(segments, self.value_location(segments), message)
                    .with_help(help),
            );
            return;
        }
        out.push(
            self.diagnostic(
                segments,
                self.value_location(segments),
                format!("expected {expected}, found {}", describe(instance)),
            )
            .with_help(type_help(segments, &expected, instance)),
        );
    }
}

fn pointer_of(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn type_names(kind: &TypeKind) -> String {
    let names: Vec<String> = match kind {
        TypeKind::Single(t) => vec![t.to_string()],
        TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
    };
    let names: Vec<&str> = names
        .iter()
        .filter(|n| *n != "null")
        .map(|n| match n.as_str() {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "`true`/`false`",
            _ => "a value",
        })
        .collect();
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(" or ")
    }
}

/// How a value looks, for "found ..." in messages.
fn describe(value: &Json) -> String {
    match value {
        Json::Null => "nothing (an empty value)".to_owned(),
        Json::Bool(b) => format!("`{b}`"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {}", describe_short(&Json::String(s.clone()))),
        Json::Array(_) => "a list".to_owned(),
        Json::Object(_) => "a mapping".to_owned(),
    }
}

fn describe_short(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn type_help(segments: &[String], expected: &str, found: &Json) -> String {
    let yaml11_bool = found.as_str().is_some_and(|s| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "yes" | "no" | "on" | "off" | "y" | "n"
        )
    });
    if yaml11_bool && expected.contains("`true`") {
        return format!("YAML 1.2 reads {found} as a string; write `true` or `false`");
    }
    let field = segments.last().map(String::as_str).unwrap_or("");
    match field {
        "needs" => "write a task id, or a list of them: `needs: [research]`".to_owned(),
        "plan" | "tags" | "context" => format!("write a list: `{field}: [first, second]`"),
        "worktree" => {
            "write `worktree: true`, or settings such as `worktree: { base: main }`".to_owned()
        }
        "priority" => "write critical, high, normal, low, or a number".to_owned(),
        _ if expected.contains("list") => {
            "write the values as a YAML list (`- item` lines or `[a, b]`)".to_owned()
        }
        _ if expected.contains("mapping") => {
            "write `key: value` lines indented under this key".to_owned()
        }
        _ => format!("write {expected} here"),
    }
}

/// `timeout: 45`: a number where a duration goes. Which unit was meant
/// cannot be guessed, so the message names the units instead of a type.
fn duration_without_unit(segments: &[String], found: &Json) -> Option<(String, String)> {
    let number = found.as_u64()?;
    (segments.last().map(String::as_str) == Some("timeout")).then(|| {
        (
            format!("`{number}` is a number without a unit, and a duration needs one"),
            format!("write `{number}s` for seconds or `{number}m` for minutes; the units are ms, s, m, h and d, and they combine: `90s`, `45m`, `2h`, `1h30m`"),
        )
    })
}

fn pattern_message(pattern: &str, given: &str) -> (String, String) {
    if pattern == DURATION_PATTERN {
        (
            format!("`{given}` is not a duration"),
            "write a number and a unit (ms, s, m, h, d), e.g. `90s`, `45m`, `2h`, `1h30m`"
                .to_owned(),
        )
    } else if pattern == ID_PATTERN {
        (
            format!("`{given}` is not a valid task id"),
            "ids name folders and git branches: use lower-case letters, digits and `-`, starting with a letter or digit".to_owned(),
        )
    } else {
        (
            format!("`{given}` does not match the pattern {pattern}"),
            "run `dispatch schema` to see what this key accepts".to_owned(),
        )
    }
}

/// jsonschema's own wording, used for the rare kinds without a message of
/// our own; it quotes values as JSON, which reads well enough.
fn tidy_message(message: &str) -> String {
    message.trim().to_owned()
}

/// The property names the schema allows for the object at `segments`,
/// following `$ref`s, `properties`, `additionalProperties`, `items` and
/// `anyOf` alternatives.
pub fn properties_at(schema: &Json, segments: &[String]) -> Vec<String> {
    let mut current = vec![resolve(schema, schema)];
    for segment in segments {
        let mut next = Vec::new();
        for node in current {
            for alternative in alternatives(schema, node) {
                if let Some(child) = alternative
                    .get("properties")
                    .and_then(|p| p.get(segment.as_str()))
                {
                    next.push(resolve(schema, child));
                } else if let Some(child) = alternative
                    .get("additionalProperties")
                    .filter(|c| c.is_object())
                {
                    next.push(resolve(schema, child));
                } else if let Some(child) = alternative.get("items").filter(|c| c.is_object()) {
                    next.push(resolve(schema, child));
                }
            }
        }
        current = next;
    }
    let mut names = Vec::new();
    for node in current {
        for alternative in alternatives(schema, node) {
            if let Some(props) = alternative.get("properties").and_then(Json::as_object) {
                for name in props.keys() {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
        }
    }
    names
}

fn resolve<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
    let mut node = node;
    for _ in 0..16 {
        match node.get("$ref").and_then(Json::as_str) {
            Some(reference) => match reference.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => node = target,
                None => break,
            },
            None => break,
        }
    }
    node
}

/// The node and, recursively, the alternatives of its `anyOf`/`oneOf`.
fn alternatives<'a>(root: &'a Json, node: &'a Json) -> Vec<&'a Json> {
    let mut out = vec![node];
    let mut index = 0;
    while index < out.len() && out.len() < 64 {
        let here = out[index];
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = here.get(key).and_then(Json::as_array) {
                out.extend(list.iter().map(|alt| resolve(root, alt)));
            }
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_keys_of_nested_objects() {
        let schema = manifest_schema();
        let task_keys = properties_at(&schema, &["tasks".into(), "any-id".into()]);
        assert!(task_keys.contains(&"needs".to_owned()), "{task_keys:?}");
        let worktree_keys =
            properties_at(&schema, &["tasks".into(), "x".into(), "worktree".into()]);
        assert!(
            worktree_keys.contains(&"keep".to_owned()),
            "{worktree_keys:?}"
        );
        let rule_keys = properties_at(&schema, &["escalation".into(), "0".into(), "when".into()]);
        assert!(rule_keys.contains(&"severity".to_owned()), "{rule_keys:?}");
    }

    #[test]
    fn dotted_paths_read_like_yaml() {
        let segments = pointer_segments("/tasks/audit/plan/2");
        assert_eq!(dotted(&segments), "tasks.audit.plan[2]");
        let odd = vec!["tasks".to_owned(), "../x".to_owned()];
        assert_eq!(dotted(&odd), "tasks[\"../x\"]");
    }
}
