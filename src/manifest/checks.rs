//! Acceptance checks in the manifest: commands that judge a task by
//! evidence once its worker ends (`checks:` in `defaults` and in tasks).
//!
//! A worker's word that it is done is not evidence, so a task with checks
//! is complete only when its plan is done and each check's command exits
//! 0. The form and how the defaults' list combines with a task's are here,
//! beside the types, so the schema's descriptions and the rule agree.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::DurationText;

/// How long a check may run when it sets no `timeout`.
pub const DEFAULT_CHECK_TIMEOUT: &str = "10m";

/// One acceptance check: a shell command (`sh -c`) run in the task's folder
/// or worktree after its worker ends; it passes when it exits 0. A string
/// is a check named after its command; a map names it and may set its
/// timeout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CheckSpec {
    /// A command (a template), named after itself.
    Command(String),
    /// A named check.
    Named(NamedCheck),
}

/// A check with a name and, optionally, its own timeout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedCheck {
    /// The check's name in reports and JUnit (default: the command). A task
    /// check named like one of the defaults' takes its place.
    #[serde(default)]
    pub name: Option<String>,
    /// The shell command (a template). Besides the task's variables it sees
    /// `branch.name` and `branch.base` (worktree tasks) and `changed_files`:
    /// the files the task changed, each quoted for the shell, separated by
    /// spaces.
    pub run: String,
    /// How long it may run (default 10m); past it, it is stopped and fails.
    #[serde(default)]
    pub timeout: Option<DurationText>,
}

impl CheckSpec {
    /// The command as written (a template).
    pub fn run(&self) -> &str {
        match self {
            CheckSpec::Command(run) => run,
            CheckSpec::Named(check) => &check.run,
        }
    }

    /// The name reports show: its own, or its command.
    pub fn name(&self) -> &str {
        match self {
            CheckSpec::Command(run) => run,
            CheckSpec::Named(check) => check.name.as_deref().unwrap_or(&check.run),
        }
    }

    pub fn timeout(&self) -> Option<&str> {
        match self {
            CheckSpec::Command(_) => None,
            CheckSpec::Named(check) => check.timeout.as_ref().map(|t| t.0.as_str()),
        }
    }
}

/// A task's checks, from the defaults' and its own: the defaults' come
/// first, a task check named like a defaults' one takes its place, and the
/// task's others follow. `checks: []` on a task runs none, not even the
/// defaults'. Each comes with where it was written (`defaults` or the task).
pub fn combine<'a>(
    defaults: Option<&'a [CheckSpec]>,
    task: Option<&'a [CheckSpec]>,
) -> Vec<(Origin, usize, &'a CheckSpec)> {
    if task.is_some_and(<[CheckSpec]>::is_empty) {
        return Vec::new();
    }
    let mut by_name: IndexMap<&str, (Origin, usize, &CheckSpec)> = IndexMap::new();
    for (origin, list) in [(Origin::Defaults, defaults), (Origin::Task, task)] {
        for (i, check) in list.unwrap_or_default().iter().enumerate() {
            by_name.insert(check.name(), (origin, i, check));
        }
    }
    by_name.into_values().collect()
}

/// What is wrong with a list of checks at `at` (`defaults.checks` or a
/// task's): an empty command, a duration too long, or two checks of one
/// name (reports and JUnit tell checks apart by name).
pub fn problems(
    loaded: &super::LoadedManifest,
    at: &[&str],
    checks: &[CheckSpec],
) -> Vec<super::diagnostic::Diagnostic> {
    let mut problems = Vec::new();
    let mut seen: IndexMap<&str, usize> = IndexMap::new();
    for (i, check) in checks.iter().enumerate() {
        let index = i.to_string();
        let mut path: Vec<&str> = at.to_vec();
        path.push(&index);
        if check.run().trim().is_empty() {
            problems.push(
                loaded
                    .error_at(&path, "the check's command is empty")
                    .with_help("write the shell command that must exit 0, e.g. `cargo test`"),
            );
        }
        if let Some(timeout) = check.timeout() {
            if super::duration::parse(timeout).is_none() {
                path.push("timeout");
                problems.push(
                    loaded
                        .error_at(&path, format!("`{timeout}` is too long a duration"))
                        .with_help("write a shorter duration, e.g. `10m`"),
                );
                path.pop();
            }
        }
        if let Some(first) = seen.insert(check.name(), i) {
            problems.push(
                loaded
                    .error_at(
                        &path,
                        format!(
                            "two checks are named `{}` (entries {first} and {i})",
                            check.name()
                        ),
                    )
                    .with_help("give each check its own `name:`"),
            );
        }
    }
    problems
}

/// Where a check was written, for locating its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Defaults,
    Task,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, run: &str) -> CheckSpec {
        CheckSpec::Named(NamedCheck {
            name: Some(name.to_owned()),
            run: run.to_owned(),
            timeout: None,
        })
    }

    fn names(list: &[(Origin, usize, &CheckSpec)]) -> Vec<String> {
        list.iter()
            .map(|(_, _, c)| format!("{}={}", c.name(), c.run()))
            .collect()
    }

    #[test]
    fn a_tasks_checks_add_to_the_defaults_and_replace_them_by_name() {
        let defaults = [named("lint", "make lint"), named("ws", "git diff --check")];
        let task = [
            named("lint", "npm run lint"),
            CheckSpec::Command("cargo test".to_owned()),
        ];
        assert_eq!(
            names(&combine(Some(&defaults), Some(&task))),
            [
                "lint=npm run lint",
                "ws=git diff --check",
                "cargo test=cargo test"
            ]
        );
        assert_eq!(
            names(&combine(Some(&defaults), None)),
            ["lint=make lint", "ws=git diff --check"]
        );
        assert!(
            combine(Some(&defaults), Some(&[])).is_empty(),
            "`[]` runs none"
        );
        assert!(combine(None, None).is_empty());
    }

    #[test]
    fn a_string_is_named_after_its_command_and_a_map_may_leave_out_its_name() {
        let parsed: Vec<CheckSpec> = parse_json(
            r#"["npm run lint", {"run": "cargo test", "timeout": "5m"}, {"name": "t", "run": "x"}]"#,
        );
        assert_eq!(parsed[0].name(), "npm run lint");
        assert_eq!(parsed[1].name(), "cargo test");
        assert_eq!(parsed[1].timeout(), Some("5m"));
        assert_eq!(parsed[2].name(), "t");
        assert!(serde_json::from_str::<CheckSpec>(r#"{"run": "x", "bogus": 1}"#).is_err());
    }

    fn parse_json(json: &str) -> Vec<CheckSpec> {
        serde_json::from_str(json).expect("valid checks")
    }
}
