//! The manifest's JSON Schema: generated from [`super::types`], checked with
//! jsonschema, and its errors turned into diagnostics that point at the YAML.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value as Json;

use super::types::{Manifest, DURATION_PATTERN, ID_PATTERN};
use super::yaml::Node;
use crate::diagnostic::{did_you_mean, list_names, Diagnostic, Location, SourceFile};

/// The schema as JSON, generated from the Rust types.
pub fn manifest_schema() -> Json {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Manifest>();
    schema.to_value()
}

/// The schema as the text of `schemas/manifest.schema.json`.
pub fn manifest_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&manifest_schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(&manifest_schema())
            .expect("the generated manifest schema is a valid JSON Schema")
    })
}

/// Every schema violation in `instance`, located in `root`'s source.
pub fn check(instance: &Json, root: &Node, source: &SourceFile) -> Vec<Diagnostic> {
    let schema = manifest_schema();
    let mapper = Mapper {
        schema: &schema,
        root,
        source,
    };
    let mut out = Vec::new();
    for error in validator().iter_errors(instance) {
        mapper.explain(&error, &mut out);
    }
    out.sort_by_key(|d| d.location);
    out.dedup();
    out
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
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
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
                out.push(
                    self.diagnostic(
                        &segments,
                        at_value,
                        format!("expected {expected}, found {}", describe(instance)),
                    )
                    .with_help(type_help(&segments, &expected)),
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
                let mut d = self.diagnostic(
                    &segments,
                    at_value,
                    format!("`{given}` is not one of: {}", options.join(", ")),
                );
                if let Some(close) = did_you_mean(&given, options.iter().copied()) {
                    d = d.with_help(format!("did you mean `{close}`?"));
                }
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
                        String::new(),
                    ),
                };
                let d = self.diagnostic(&path, self.key_location(&path), message);
                out.push(if help.is_empty() {
                    d
                } else {
                    d.with_help(help)
                });
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
                    d
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
            _ => {
                out.push(self.diagnostic(&segments, at_value, tidy_message(&error.to_string())));
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
        out.push(
            self.diagnostic(
                segments,
                self.value_location(segments),
                format!("expected {expected}, found {}", describe(instance)),
            )
            .with_help(type_help(segments, &expected)),
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
            "boolean" => "true or false",
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

fn type_help(segments: &[String], expected: &str) -> String {
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
            String::new(),
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

fn alternatives<'a>(root: &'a Json, node: &'a Json) -> Vec<&'a Json> {
    let mut out = vec![node];
    for key in ["anyOf", "oneOf"] {
        if let Some(list) = node.get(key).and_then(Json::as_array) {
            out.extend(list.iter().map(|alt| resolve(root, alt)));
        }
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
    }
}
