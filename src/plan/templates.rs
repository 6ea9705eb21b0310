//! The template engine: minijinja with strict undefined, the built-in
//! templates embedded in the binary, and a project's own folder in front of
//! them so a team can override any template by name.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use minijinja::{Environment, UndefinedBehavior};

/// Templates shipped in `templates/`, embedded so an installed binary needs
/// no files beside it.
pub const BUILTIN: &[(&str, &str)] = &[
    ("report.md.j2", include_str!("../../templates/report.md.j2")),
    (
        "worker-prompt.md.j2",
        include_str!("../../templates/worker-prompt.md.j2"),
    ),
    (
        "plans/api-docs.md.j2",
        include_str!("../../templates/plans/api-docs.md.j2"),
    ),
    (
        "plans/checklist.md.j2",
        include_str!("../../templates/plans/checklist.md.j2"),
    ),
    (
        "plans/error-handling.md.j2",
        include_str!("../../templates/plans/error-handling.md.j2"),
    ),
    (
        "plans/fix.md.j2",
        include_str!("../../templates/plans/fix.md.j2"),
    ),
    (
        "plans/frontend-audit.md.j2",
        include_str!("../../templates/plans/frontend-audit.md.j2"),
    ),
    (
        "plans/implement.md.j2",
        include_str!("../../templates/plans/implement.md.j2"),
    ),
    (
        "plans/perf-audit.md.j2",
        include_str!("../../templates/plans/perf-audit.md.j2"),
    ),
    (
        "plans/refactor.md.j2",
        include_str!("../../templates/plans/refactor.md.j2"),
    ),
    (
        "plans/research.md.j2",
        include_str!("../../templates/plans/research.md.j2"),
    ),
    (
        "plans/security-audit.md.j2",
        include_str!("../../templates/plans/security-audit.md.j2"),
    ),
    (
        "plans/write-tests.md.j2",
        include_str!("../../templates/plans/write-tests.md.j2"),
    ),
];

/// The work one render of a manifest's template may do: about one fuel per
/// instruction and per 64 bytes of data it makes (see minijinja's
/// `set_fuel`). A prompt or plan of a real sweep takes a few thousand; a
/// loop of 100k x 100k would never end. This ends it in well under a
/// second, with at most ~64 MB made.
pub const TEMPLATE_FUEL: u64 = 1_000_000;
/// How long one rendered text (a prompt, a plan, a field) may be: 10 GB of
/// output costs little work per byte, so fuel alone would let ~64 MB
/// through per text, for every task of a sweep.
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// The worker prompt's template name.
pub const WORKER_PROMPT: &str = "worker-prompt.md.j2";
/// The plan template used when a task names none.
pub const DEFAULT_PLAN: &str = "checklist";

/// The template name of the plan template called `name`.
pub fn plan_template_name(name: &str) -> String {
    format!("plans/{name}.md.j2")
}

/// Built-in templates plus an optional override folder.
pub struct Templates {
    env: Environment<'static>,
    override_dir: Option<PathBuf>,
    /// What [`Templates::exists`] found in the override folder, by name:
    /// every task of a large sweep asks for the same few templates.
    found: Mutex<HashMap<String, bool>>,
}

impl Templates {
    /// `override_dir`: a project's templates folder, searched before the
    /// built-ins (it need not exist).
    pub fn new(override_dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are a valid syntax");
        env.set_syntax(syntax);
        env.set_fuel(Some(TEMPLATE_FUEL));
        let dir = override_dir.clone();
        env.set_loader(move |name| {
            if let Some(text) = dir.as_deref().and_then(|d| read_override(d, name)) {
                return Ok(Some(text));
            }
            Ok(BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| (*text).to_owned()))
        });
        Self {
            env,
            override_dir,
            found: Mutex::new(HashMap::new()),
        }
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }

    /// Whether a template of that name exists (built in or overridden).
    pub fn exists(&self, name: &str) -> bool {
        BUILTIN.iter().any(|(n, _)| *n == name) || self.overridden(name)
    }

    /// Whether the project's folder has its own template of that name.
    pub fn overridden(&self, name: &str) -> bool {
        let Some(dir) = self.override_dir.as_deref() else {
            return false;
        };
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        *found
            .entry(name.to_owned())
            .or_insert_with(|| read_override(dir, name).is_some())
    }

    /// The names of the plan templates a manifest can use.
    pub fn plan_names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("plans/")?.strip_suffix(".md.j2"))
            .map(str::to_owned)
            .collect();
        if let Some(dir) = &self.override_dir {
            if let Ok(entries) = std::fs::read_dir(dir.join("plans")) {
                for entry in entries.flatten() {
                    let file = entry.file_name().to_string_lossy().into_owned();
                    if let Some(name) = file.strip_suffix(".md.j2") {
                        if !names.iter().any(|n| n == name) {
                            names.push(name.to_owned());
                        }
                    }
                }
            }
        }
        names.sort();
        names
    }
}

/// What the built-in `plans/checklist.md.j2` renders for this title and
/// these items, made directly (it is every task's plan unless it names
/// another): `None` where the template's own bounds could matter (a text
/// past [`MAX_RENDERED_BYTES`], items enough to use up its fuel), for the
/// template to render and refuse in its own words.
pub fn checklist(title: &str, items: &[&str]) -> Option<String> {
    if items.len() > 10_000 {
        return None;
    }
    let lines: Vec<&str> = if items.is_empty() {
        vec![title]
    } else {
        items.to_vec()
    };
    let size = title.len() + 3 + lines.iter().map(|l| l.len() + 7).sum::<usize>();
    if size > MAX_RENDERED_BYTES {
        return None;
    }
    let mut text = String::with_capacity(size);
    text.push_str("# ");
    text.push_str(title);
    text.push_str("\n\n");
    for line in lines {
        text.push_str("- [ ] ");
        text.push_str(line);
        text.push('\n');
    }
    Some(text)
}

/// Render `template`, refusing output past [`MAX_RENDERED_BYTES`]: the
/// text is written through a counting writer, so a runaway template stops
/// at the cap instead of after it has filled memory.
pub fn render_bounded(
    template: &minijinja::Template<'_, '_>,
    context: minijinja::Value,
) -> Result<String, minijinja::Error> {
    let mut out = Capped::default();
    match template.render_captured_to(context, &mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
        Err(_) if out.exceeded => Err(minijinja::Error::new(
            minijinja::ErrorKind::WriteFailure,
            TOO_LONG,
        )),
        Err(e) => Err(e),
    }
}

/// The detail of the error [`render_bounded`] gives for a text too long.
const TOO_LONG: &str = "rendered text too long";

/// An in-memory writer that refuses to grow past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.exceeded = true;
            return Err(std::io::Error::other(TOO_LONG));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The text of `name` under `dir`, refusing names that climb out of it.
fn read_override(dir: &Path, name: &str) -> Option<String> {
    let relative = Path::new(name);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    std::fs::read_to_string(dir.join(relative)).ok()
}

/// A template error in words a user can act on: what failed (the kind,
/// the expression, the template file and line) and what to do.
pub fn explain_error(
    error: &minijinja::Error,
    source: Option<&str>,
    context: &serde_json::Value,
) -> (String, String) {
    use minijinja::ErrorKind;
    let expression = error
        .range()
        .zip(source)
        .and_then(|(range, source)| whole_expression(source, range))
        .map(str::trim)
        .filter(|e| !e.is_empty() && e.len() <= 80);
    if error.kind() == ErrorKind::UndefinedError {
        if let Some(explained) = expression.and_then(|e| explain_needs(e, context)) {
            return explained;
        }
    }
    let mut message = match (error.kind(), expression) {
        (ErrorKind::UndefinedError, Some(expression)) => {
            let mut m = format!("undefined variable `{expression}`");
            if expression.starts_with("vars") {
                let defined: Vec<&str> = context["vars"]
                    .as_object()
                    .map(|v| v.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                m.push_str(&format!(
                    " (defined vars: {})",
                    crate::manifest::diagnostic::list_names(defined, 10)
                ));
            }
            m
        }
        (ErrorKind::UndefinedError, None) => "undefined variable".to_owned(),
        (ErrorKind::OutOfFuel, _) => format!(
            "the template does too much work (more than {TEMPLATE_FUEL} steps or {} MB of data)",
            TEMPLATE_FUEL * 64 / 1_000_000
        ),
        (ErrorKind::WriteFailure, _) if error.detail() == Some(TOO_LONG) => format!(
            "the template renders more than {} MiB of text",
            MAX_RENDERED_BYTES / (1024 * 1024)
        ),
        (ErrorKind::SyntaxError, _) => format!(
            "template syntax error: {}",
            error.detail().unwrap_or("unexpected text")
        ),
        (_, Some(expression)) => format!(
            "template error in `{expression}`: {}",
            error.detail().unwrap_or("cannot render")
        ),
        (_, None) => format!(
            "template error: {}",
            error.detail().unwrap_or("cannot render")
        ),
    };
    if let (Some(name), Some(line)) = (error.name(), error.line()) {
        if name.ends_with(".j2") {
            message.push_str(&format!(" (templates/{name}:{line})"));
        }
    }
    let help = match error.kind() {
        ErrorKind::UndefinedError if expression.is_some_and(|e| e.starts_with("needs")) => {
            "add that task to this task's `needs:`, so its output, plan and branch are known here".to_owned()
        }
        ErrorKind::UndefinedError if expression.is_some_and(|e| e.starts_with("matrix")) => {
            "add the key to the task's `matrix:`".to_owned()
        }
        ErrorKind::UndefinedError => "define it under `vars:` (the manifest's or the task's) or pass `--var NAME=VALUE`; `{{ x | default('') }}` makes it optional".to_owned(),
        ErrorKind::OutOfFuel | ErrorKind::WriteFailure => "look for a loop over a large `range()`, nested loops, or a string multiplied many times; a prompt or plan needs none of these".to_owned(),
        ErrorKind::SyntaxError => "check the `{{ }}` and `{% %}` pairs; write `{% raw %}...{% endraw %}` around literal braces".to_owned(),
        _ => "see templates/README.md for the variables templates can use".to_owned(),
    };
    (message, help)
}

/// The expression an error's range falls in. minijinja's range for a
/// failed lookup starts at the lookup (`['research'].output`), which on its
/// own reads as garbage; the variable it was looked up on is added back.
fn whole_expression(source: &str, range: std::ops::Range<usize>) -> Option<&str> {
    source.get(range.clone())?;
    let part_of_name = |c: char| c.is_alphanumeric() || "_.[]'\"".contains(c);
    let start = source[..range.start]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| part_of_name(c))
        .last()
        .map_or(range.start, |(i, _)| i);
    source.get(start..range.end)
}

/// `needs['research'].output` in a task that does not list `research` under
/// `needs:` (or a field `needs.research` lacks): said in those words, not
/// as an undefined variable.
fn explain_needs(expression: &str, context: &serde_json::Value) -> Option<(String, String)> {
    let rest = expression.strip_prefix("needs")?;
    let (name, after) =
        if let Some(quoted) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let end = quoted.find(['\'', '"'])?;
            (&quoted[..end], quoted[end + 1..].strip_prefix(']')?)
        } else {
            let dotted = rest.strip_prefix('.')?;
            let end = dotted.find(['.', '[']).unwrap_or(dotted.len());
            (&dotted[..end], &dotted[end..])
        };
    if name.is_empty() {
        return None;
    }
    let task = context["task"]["source_id"].as_str().unwrap_or("this task");
    let needs = context["needs"].as_object()?;
    let Some(upstream) = needs.get(name) else {
        let listed: Vec<&str> = needs.keys().map(String::as_str).collect();
        let message = if listed.is_empty() {
            format!("`{expression}` reads task `{name}`, but task `{task}` has no `needs:`")
        } else {
            format!(
                "`{expression}` reads task `{name}`, but task `{task}` needs only {}",
                crate::manifest::diagnostic::list_names(listed.iter().copied(), 8)
            )
        };
        let add = if listed.is_empty() {
            format!("add `needs: [{name}]` to task `{task}`")
        } else {
            format!("add `{name}` to task `{task}`'s `needs:`")
        };
        let help =
            format!("{add}: it then runs after `{name}` and sees its output, plan and branch");
        return Some((message, help));
    };
    let field: String = after
        .trim_start_matches(['.', '[', '\'', '"'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let fields: Vec<&str> = upstream
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    Some((
        format!("`{expression}`: task `{name}` has no `{field}` here"),
        format!(
            "use one of {}",
            fields
                .iter()
                .map(|f| format!("`needs['{name}'].{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the template text and the error's range, the message
        /// is built without a panic, and the expression shown holds the
        /// part the range named.
        #[test]
        fn a_needs_lookup_of_any_text_is_explained_without_a_panic(
            source in "[a-z_ .\\[\\]'\"{}é]{0,40}",
            start in 0usize..45,
            len in 0usize..20,
        ) {
            let range = start..start.saturating_add(len);
            if let Some(whole) = whole_expression(&source, range.clone()) {
                let named = &source[range];
                proptest::prop_assert!(whole.ends_with(named));
                let context = serde_json::json!({
                    "task": {"source_id": "t"},
                    "needs": {"research": {"output": "o"}},
                });
                let _ = explain_needs(whole.trim(), &context);
            }
        }
    }

    proptest::proptest! {
        /// The checklist made directly is what the built-in template
        /// renders, whatever the title and items hold.
        #[test]
        fn the_checklist_made_directly_is_the_templates(
            title in "[a-z {}%#\\-\\[\\]\n\té]{0,30}",
            items in proptest::collection::vec("[a-z {}%#\\-\\[\\]\n\té]{0,20}", 0..5),
        ) {
            let templates = Templates::new(None);
            let template = templates
                .env()
                .get_template(&plan_template_name(DEFAULT_PLAN))
                .expect("built in");
            let context = serde_json::json!({"task": {"title": title, "plan": items}});
            let rendered = render_bounded(
                &template,
                minijinja::Value::from(minijinja::value::Serde(&context)),
            )
            .expect("renders");
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(checklist(&title, &items), Some(rendered));
        }
    }

    #[test]
    fn a_checklist_past_the_bound_is_left_to_the_template() {
        let long = "x".repeat(MAX_RENDERED_BYTES);
        assert_eq!(checklist(&long, &[]), None);
        assert!(checklist("t", &["a"; 10_001]).is_none());
    }

    #[test]
    fn every_builtin_template_parses() {
        let templates = Templates::new(None);
        for (name, _) in BUILTIN {
            templates
                .env()
                .get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn a_project_folder_overrides_by_name_and_cannot_escape() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("plans")).expect("mkdir");
        std::fs::write(dir.path().join("plans/fix.md.j2"), "# ours\n").expect("write");
        std::fs::write(dir.path().join("plans/mine.md.j2"), "# mine\n").expect("write");
        let templates = Templates::new(Some(dir.path().to_path_buf()));
        let fix = templates
            .env()
            .get_template("plans/fix.md.j2")
            .expect("found");
        assert_eq!(fix.render(()).expect("renders"), "# ours\n");
        assert!(templates.plan_names().contains(&"mine".to_owned()));
        assert!(templates.exists("plans/mine.md.j2"));
        assert!(!templates.exists("../plans/mine.md.j2"));
    }
}
