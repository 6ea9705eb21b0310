//! A task's acceptance checks, rendered with the plan so a template error
//! is found before anything runs and `dispatch plan` shows each command.
//!
//! `changed_files` is only known once the worker has ended, so a check
//! that uses it renders here with none (to find its errors) and again when
//! it runs ([`PlannedCheck::render_with_changes`]).

use serde::Serialize;
use serde_json::{json, Value as Json};

use super::{templates, Builder, Instance, WorktreePlan};
use crate::manifest::checks::{self, Origin, DEFAULT_CHECK_TIMEOUT};

/// The template variable that holds the files a task changed.
pub const CHANGED_FILES: &str = "changed_files";

/// One check of a task, ready to run.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedCheck {
    pub name: String,
    /// The command, rendered (with no changed files, for a check that
    /// lists them: it renders again when it runs).
    pub run: String,
    /// How long it may run, as written (`10m` when unset).
    pub timeout: String,
    /// The command as written and the variables it renders with, for a
    /// check that uses `changed_files`.
    #[serde(skip)]
    pub template: Option<(String, Json)>,
}

impl PlannedCheck {
    /// The command with `changed_files` filled in: each file quoted for
    /// the shell (a worker picks the names, and a name such as
    /// `$(rm -rf ~)` must stay a name), separated by spaces.
    pub fn render_with_changes(&self, files: &[String]) -> Result<String, String> {
        let Some((source, context)) = &self.template else {
            return Ok(self.run.clone());
        };
        let mut context = context.clone();
        context[CHANGED_FILES] = Json::String(
            files
                .iter()
                .map(|f| shell_quote(f))
                .collect::<Vec<_>>()
                .join(" "),
        );
        let engine = templates::Templates::new(None);
        let value = minijinja::Value::from(minijinja::value::Serde(&context));
        engine
            .env()
            .template_from_str(source)
            .and_then(|t| templates::render_bounded(&t, value))
            .map_err(|e| e.to_string())
    }
}

/// `text` as one word for `sh`: in single quotes, each `'` written `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl<'a> Builder<'a> {
    /// The task's checks (the defaults' and its own, see
    /// [`checks::combine`]), each rendered with the task's variables plus
    /// `branch` and `changed_files`.
    pub(super) fn checks(
        &self,
        instance: &Instance<'a>,
        context: &Json,
        worktree: Option<&WorktreePlan>,
    ) -> Vec<PlannedCheck> {
        let manifest = &self.loaded.manifest;
        let list = checks::combine(
            manifest.defaults.checks.as_deref(),
            instance.task.checks.as_deref(),
        );
        if list.is_empty() {
            return Vec::new();
        }
        let mut context = context.clone();
        context["branch"] = match worktree {
            Some(w) => json!({ "name": w.branch, "base": w.base }),
            None => Json::Null,
        };
        context[CHANGED_FILES] = Json::String(String::new());
        list.into_iter()
            .map(|(origin, i, check)| {
                let index = i.to_string();
                let path: Vec<&str> = match origin {
                    Origin::Defaults => vec!["defaults", "checks", &index],
                    Origin::Task => vec!["tasks", instance.source_id, "checks", &index],
                };
                let source = check.run();
                let run = self.render_field(&path, source, &context);
                PlannedCheck {
                    name: check.name().to_owned(),
                    run,
                    timeout: check.timeout().unwrap_or(DEFAULT_CHECK_TIMEOUT).to_owned(),
                    template: source
                        .contains(CHANGED_FILES)
                        .then(|| (source.to_owned(), context.clone())),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_files_are_each_one_shell_word() {
        let check = PlannedCheck {
            name: "lint".to_owned(),
            run: "lint ".to_owned(),
            timeout: "10m".to_owned(),
            template: Some((
                "lint {{ changed_files }}".to_owned(),
                json!({ "changed_files": "" }),
            )),
        };
        let run = check
            .render_with_changes(&["a b.rs".to_owned(), "$(touch x)'; echo".to_owned()])
            .expect("renders");
        assert_eq!(run, r#"lint 'a b.rs' '$(touch x)'\''; echo'"#);
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {}", &run[5..])])
            .output()
            .expect("sh runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a b.rs\n$(touch x)'; echo\n"
        );
    }
}
