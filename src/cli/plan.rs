//! `dispatch plan FILE`: the dry run, as text for people (and pull-request
//! review) or JSON for tools.

use std::fmt::Write as _;
use std::path::Path;

use super::{exit, print_stdout, report, PlanArgs, RunArgs};
use crate::manifest::diagnostic::{list_names, Diagnostic};
use crate::manifest::{
    self,
    types::{CommitPolicy, KeepPolicy, PromptMode},
    Invalid,
};
use crate::plan::prompt::Prompter;
use crate::plan::select::Selection;
use crate::plan::{self, PlanOptions, PlannedTask, SweepPlan};
use crate::state::fsutil::write_atomic;

pub fn run(args: &PlanArgs) -> u8 {
    match plan_for(args) {
        Ok(plan) => {
            if let Some(dir) = &args.out {
                if let Err(e) = write_out(&plan, dir) {
                    eprintln!(
                        "error: cannot write the plan under {}: {e}\n  = help: check that the folder is writable",
                        dir.display()
                    );
                    return exit::USAGE;
                }
            }
            print_plan(&plan, args.json);
            exit::OK
        }
        Err(invalid) => {
            report(&invalid);
            exit::USAGE
        }
    }
}

fn print_plan(plan: &SweepPlan, json: bool) {
    let text = if json {
        let mut json = serde_json::to_string_pretty(plan).unwrap_or_default();
        json.push('\n');
        json
    } else {
        render_text(plan)
    };
    print_stdout(&text);
}

/// `dispatch run FILE --dry-run`: the plan of the tasks the run would
/// start (after `--only`, `--skip`, `--tag`, `--shard`), printed as
/// `dispatch plan` prints it. Nothing is written and nothing runs.
pub fn dry_run(args: &RunArgs, selection: &Selection) -> u8 {
    let (mut plan, prompter) = match load_plan(&args.file, &args.vars.vars) {
        Ok(loaded) => loaded,
        Err(invalid) => {
            report(&invalid);
            return exit::USAGE;
        }
    };
    if !selection.is_empty() {
        let chosen = selection
            .choose(&plan)
            .and_then(|c| crate::plan::select::check_needs(&plan, &c, &c).map(|()| c));
        let chosen = match chosen {
            Ok(chosen) => chosen,
            Err(e) => {
                eprintln!("error: {e}\n  help: {}", e.help());
                return exit::USAGE;
            }
        };
        let mut keep = chosen.into_iter();
        plan.tasks.retain(|_| keep.next().unwrap_or(false));
    }
    if plan.tasks.len() <= PROMPTS_SHOWN_UP_TO {
        if let Err(invalid) = fill_prompts(&mut plan, &prompter) {
            report(&invalid);
            return exit::USAGE;
        }
    }
    hide_secrets(&mut plan, &args.vars.vars);
    print_plan(&plan, args.supervision.json);
    exit::OK
}

/// A sweep of at most this many tasks shows every worker prompt; a larger
/// one (where they would run to megabytes) shows them with `--prompts`, or
/// for the tasks named with `--task`.
pub const PROMPTS_SHOWN_UP_TO: usize = 100;

/// Render the worker prompt of each task of `plan` (and the argv that
/// carries it), on every core.
fn fill_prompts(plan: &mut SweepPlan, prompter: &Prompter) -> Result<(), Invalid> {
    let rendered = crate::util::parallel::map_chunks(&plan.tasks, |part| {
        part.iter()
            .map(|task| prompter.render(task))
            .collect::<Vec<_>>()
    });
    let mut problems = Vec::new();
    for (task, rendered) in plan.tasks.iter_mut().zip(rendered.into_iter().flatten()) {
        match rendered {
            Ok(rendered) => {
                let task = std::sync::Arc::make_mut(task);
                task.prompt = rendered.prompt;
                task.argv = rendered.argv;
            }
            Err(invalid) => problems.extend(invalid.0),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.dedup();
        Err(Invalid(problems))
    }
}

/// The plan as `dispatch plan` shows it: paths relative, no prompts yet
/// (see [`fill_prompts`]); and what renders them.
fn load_plan(file: &Path, vars: &[(String, String)]) -> Result<(SweepPlan, Prompter), Invalid> {
    let loaded = manifest::load_with_user_config(file)?;
    let options = PlanOptions {
        vars: vars.to_vec(),
        run_id: "dry-run".to_owned(),
        root: None,
        prompts: plan::Prompts::Lazy,
    };
    let plan = plan::build(&loaded, &options)?;
    super::validate::warn_user_config(&manifest::config_effects::effects(&loaded));
    let prompter = Prompter::new(std::sync::Arc::new(loaded), options, &plan.tasks);
    Ok((plan, prompter))
}

/// The plan of the tasks asked for, their prompts rendered where shown,
/// secrets hidden.
fn plan_for(args: &PlanArgs) -> Result<SweepPlan, Invalid> {
    let (mut plan, prompter) = load_plan(&args.file, &args.vars.vars)?;
    if !args.tasks.is_empty() {
        let unknown: Vec<&String> = args
            .tasks
            .iter()
            .filter(|want| {
                !plan
                    .tasks
                    .iter()
                    .any(|t| t.id == **want || *t.source_id == ***want)
            })
            .collect();
        if let Some(first) = unknown.first() {
            let known: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
            return Err(Invalid::one(
                Diagnostic::new(
                    args.file.display().to_string(),
                    format!(
                        "--task {first}: no such task (known: {})",
                        list_names(known, 10)
                    ),
                )
                .with_help("name a task id from the manifest"),
            ));
        }
        plan.tasks.retain(|t| {
            args.tasks
                .iter()
                .any(|want| *want == t.id || **want == *t.source_id)
        });
    }
    let shown = args.prompts
        || args.out.is_some()
        || !args.tasks.is_empty()
        || plan.tasks.len() <= PROMPTS_SHOWN_UP_TO;
    if shown {
        fill_prompts(&mut plan, &prompter)?;
    }
    hide_secrets(&mut plan, &args.vars.vars);
    Ok(plan)
}

/// A plan is shown for review and pasted into pull requests: env values
/// that are secret (by name, by `secrets:`, or equal to a secret value of
/// this environment, a task's env or a `--var`) show as their marker, and
/// secret values anywhere else in a task (argv, prompt, plan) are redacted.
fn hide_secrets(plan: &mut SweepPlan, vars: &[(String, String)]) {
    use crate::domain::redact::Redactor;
    let listed = plan.secrets.clone();
    let base = Redactor::from_env(&listed).with(vars.iter().map(|(k, v)| (k, v)), &listed);
    for task in &mut plan.tasks {
        let task = std::sync::Arc::make_mut(task);
        let known = base.with(task.env.iter(), &listed);
        let env: Vec<(String, String)> = task.env.clone().into_iter().collect();
        task.env = known.mask_vars(&env, &listed).into_iter().collect();
        for arg in &mut task.argv {
            *arg = known.redact(arg).into_owned();
        }
        task.prompt = known.redact(&task.prompt).into_owned();
        task.plan = known.redact(&task.plan).into_owned();
        for check in &mut task.checks {
            check.run = known.redact(&check.run).into_owned();
        }
    }
}

/// `DIR/<id>/plan.md`, `prompt.md`, `task.json` and `DIR/plan.json`.
fn write_out(plan: &SweepPlan, dir: &Path) -> std::io::Result<()> {
    for task in &plan.tasks {
        let task_dir = dir.join(&task.id);
        write_atomic(&task_dir.join("plan.md"), task.plan.as_bytes())?;
        write_atomic(&task_dir.join("prompt.md"), task.prompt.as_bytes())?;
        let json = serde_json::to_string_pretty(task).unwrap_or_default();
        write_atomic(&task_dir.join("task.json"), json.as_bytes())?;
    }
    let json = serde_json::to_string_pretty(plan).unwrap_or_default();
    write_atomic(&dir.join("plan.json"), json.as_bytes())
}

/// The plan as text: a header for the sweep, then each task in the order it
/// would start.
pub fn render_text(plan: &SweepPlan) -> String {
    let mut out = String::new();
    let name = if plan.name.is_empty() {
        "(unnamed)"
    } else {
        &plan.name
    };
    let count = plan.tasks.len();
    let _ = writeln!(
        out,
        "Sweep {name} ({}): {count} task{}, concurrency {}{}",
        plan.manifest,
        if count == 1 { "" } else { "s" },
        plan.concurrency,
        plan.caps
            .iter()
            .map(|(name, cap)| format!(", at most {cap} on {name}"))
            .collect::<String>()
    );
    if !plan.user_config.is_empty() {
        let _ = writeln!(out, "User config applied: {}", plan.user_config.join(", "));
    }
    render_rules(&mut out, plan);
    for task in &plan.tasks {
        out.push('\n');
        render_task(&mut out, task);
    }
    out
}

/// How questions are answered and what escalates, so a reviewer sees the
/// rules next to the tasks they act on.
fn render_rules(out: &mut String, plan: &SweepPlan) {
    let questions = &plan.questions;
    let timeout = questions.timeout.as_ref().map_or("10m", |t| t.0.as_str());
    let policy = questions
        .on_unanswered
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "wait".to_owned());
    let _ = writeln!(out, "Questions: unanswered after {timeout} → {policy}");
    for rule in &questions.answers {
        let matcher = match (&rule.pattern, rule.keywords.is_empty()) {
            (Some(pattern), _) => format!("match /{pattern}/"),
            (None, false) => format!("keywords {}", rule.keywords.join(", ")),
            (None, true) => "nothing".to_owned(),
        };
        let _ = writeln!(out, "  answer {matcher} → {}", one_line(&rule.answer));
    }
    let _ = writeln!(out, "Escalation (first match wins):");
    for (i, rule) in plan.escalation.iter().enumerate() {
        let name = rule
            .name
            .clone()
            .unwrap_or_else(|| format!("rule {}", i + 1));
        let when = describe_condition(&rule.when);
        let action = rule
            .action
            .and_then(|a| serde_json::to_value(a).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "notify".to_owned());
        let _ = writeln!(
            out,
            "  {name}: when {when} → {action}, exit code {}",
            rule.exit_code.unwrap_or(3)
        );
    }
}

fn render_task(out: &mut String, task: &PlannedTask) {
    let _ = writeln!(out, "== {}. {} ==", task.position, task.id);
    let field = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "{:<10}{value}", format!("{name}:"));
    };
    field(out, "title", &task.title);
    field(
        out,
        "schedule",
        &format!("stage {}, priority {}", task.stage, task.priority),
    );
    if !task.needs.is_empty() {
        field(out, "needs", &task.needs.join(", "));
    }
    if !task.matrix.is_empty() {
        let values: Vec<String> = task
            .matrix
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        field(out, "matrix", &values.join(", "));
    }
    if !task.matrix_sources.is_empty() {
        let sources: Vec<String> = task
            .matrix_sources
            .iter()
            .map(|(k, origin)| format!("{k} from {origin}"))
            .collect();
        field(out, "source", &sources.join("; "));
    }
    let model = match &task.model {
        Some(m) if m.id == m.name => format!("{} via {}", m.name, task.backend),
        Some(m) => format!("{} ({}) via {}", m.name, m.id, task.backend),
        None => format!("none, backend {}", task.backend),
    };
    field(out, "model", &model);
    match &task.worktree {
        Some(w) => field(
            out,
            "worktree",
            &format!(
                "{} on branch {} from {}; folder {}{}{}",
                w.path,
                w.branch,
                w.base,
                match w.keep {
                    Some(KeepPolicy::Always) => "kept",
                    Some(KeepPolicy::OnFailure) => "kept if the task fails",
                    Some(KeepPolicy::Never) | None => "removed when clean",
                },
                if w.commit == CommitPolicy::Auto {
                    ", commit: auto"
                } else {
                    ""
                },
                if w.reuse { ", reuse" } else { "" }
            ),
        ),
        None => field(out, "workdir", task.paths.workdir()),
    }
    let mut limits = vec![format!(
        "timeout {}",
        task.timeout.as_deref().unwrap_or("none")
    )];
    // The idle timeout is set for agent CLIs by default, so a reader of the
    // plan would not otherwise know why a quiet worker ends `stalled`.
    if let (Some(idle), Some(_)) = (&task.idle_timeout, task.idle_limit()) {
        limits.push(format!("stalled after {idle} quiet"));
    }
    limits.push(format!("retries {}", task.retries));
    field(out, "limits", &limits.join(", "));
    if !task.tags.is_empty() {
        field(out, "tags", &task.tags.join(", "));
    }
    field(out, "command", &command_line(task));
    if let Some(home) = &task.cli_home {
        field(
            out,
            "config",
            &format!("private, in {home} (only your login is linked in)"),
        );
    }
    for (name, value) in &task.env {
        field(out, "env", &format!("{name}={value}"));
    }
    for check in &task.checks {
        let name = if check.name == check.run {
            String::new()
        } else {
            format!("{}: ", check.name)
        };
        let later = if check.template.is_some() {
            " (changed_files filled in when it runs)"
        } else {
            ""
        };
        field(
            out,
            "check",
            &format!("{name}{} (timeout {}){later}", check.run, check.timeout),
        );
    }
    render_confinement(out, task);
    let _ = writeln!(out, "\n--- {} ---", task.paths.plan());
    out.push_str(&task.plan);
    ensure_newline(out);
    let _ = writeln!(out, "\n--- worker prompt ({}) ---", via(task.prompt_via));
    if task.prompt.is_empty() {
        let _ = writeln!(
            out,
            "(not shown in a sweep of more than {PROMPTS_SHOWN_UP_TO} tasks: `dispatch plan --prompts` shows every prompt, `--task {}` this one's)",
            task.id
        );
    }
    out.push_str(&task.prompt);
    ensure_newline(out);
}

/// The sandbox and, under a scoped `env_policy`, the names (never the
/// values) of this environment's variables that pass and how many are
/// left out.
fn render_confinement(out: &mut String, task: &PlannedTask) {
    use crate::manifest::confine::{EnvMode, NetworkPlan};
    if let Some(sandbox) = &task.sandbox {
        let network = match &sandbox.network {
            NetworkPlan::Full => "full".to_owned(),
            NetworkPlan::None => "none".to_owned(),
            NetworkPlan::Allow(allowed) => format!("only {}", allowed.join(", ")),
        };
        let _ = writeln!(out, "{:<10}bubblewrap, network {network}", "sandbox:");
    }
    if task.env_policy.mode == EnvMode::Scoped {
        let needs = crate::isolation::env::backend_needs(&task.backend, task.events);
        let mut rules =
            vec!["the base (PATH, HOME, user, locale, proxies, CA bundles, DISPATCH_*)".to_owned()];
        if !needs.is_empty() {
            rules.push(format!("{}'s {}", task.backend, needs.join(", ")));
        }
        if !task.env_policy.allow.is_empty() {
            rules.push(format!("allow {}", task.env_policy.allow.join(", ")));
        }
        if !task.env.is_empty() {
            rules.push("its own env".to_owned());
        }
        let _ = writeln!(out, "{:<10}scoped: {}", "env:", rules.join("; "));
        // Which of this environment's names pass depends on where the plan
        // is made; values are never shown.
        let (mut pass, left_out) = crate::isolation::env::names_of_this_environment(
            &task.env_policy,
            &task.backend,
            task.events,
        );
        for name in task.env.keys() {
            if !pass.contains(name) {
                pass.push(name.clone());
            }
        }
        pass.sort();
        let _ = writeln!(
            out,
            "{:<10}{} pass; {} left out",
            "env now:",
            if pass.is_empty() {
                "none".to_owned()
            } else {
                pass.join(", ")
            },
            if left_out.is_empty() {
                "none".to_owned()
            } else {
                left_out.join(", ")
            }
        );
    }
}

/// A condition in words: `severity ≥ high, tags security`.
fn describe_condition(when: &crate::manifest::types::Condition) -> String {
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    if let Some(severity) = when.severity {
        parts.push(format!(
            "a finding ≥ {}",
            name(serde_json::to_value(severity))
        ));
    }
    if !when.status.is_empty() {
        let statuses: Vec<String> = when
            .status
            .iter()
            .map(|s| name(serde_json::to_value(s)))
            .collect();
        parts.push(format!("a task ends {}", statuses.join("/")));
    }
    if let Some(question) = &when.question {
        parts.push(format!("a question matches /{question}/"));
    }
    if !when.tasks.is_empty() {
        parts.push(format!("in {}", when.tasks.join(", ")));
    }
    if !when.tags.is_empty() {
        parts.push(format!("tagged {}", when.tags.join(", ")));
    }
    parts.join(", ")
}

/// The first line of a text, marked when there is more.
fn one_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}

fn via(mode: PromptMode) -> &'static str {
    match mode {
        PromptMode::Stdin => "on standard input",
        PromptMode::Arg => "as an argument",
        PromptMode::File => "in a file",
    }
}

fn ensure_newline(out: &mut String) {
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

/// The argv as a shell would read it, with the prompt shown as a marker
/// rather than repeated in full.
fn command_line(task: &PlannedTask) -> String {
    let mut words: Vec<String> = task
        .argv
        .iter()
        .map(|arg| {
            if (arg == &task.prompt && !arg.is_empty()) || arg == crate::plan::prompt::MARKER {
                "<worker prompt>".to_owned()
            } else {
                shell_quote(arg)
            }
        })
        .collect();
    if task.prompt_via == PromptMode::Stdin {
        words.push("< <worker prompt>".to_owned());
    }
    words.join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("--model"), "--model");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
