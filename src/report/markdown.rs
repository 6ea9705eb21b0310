//! The Markdown report, rendered from `templates/report.md.j2` (a project can
//! override it by name). Worker-written text goes through the `md` filter,
//! so a finding titled `<script>` is shown, never run as HTML.

use std::io::{self, Write};
use std::sync::Arc;

use minijinja::value::Value;

use super::lazy_tasks::Tasks;
use super::{Report, TaskReport};
use crate::events::attention::attention_of;
use crate::manifest::types::Severity;
use crate::plan::templates::Templates;
use crate::util::units::{count, usd};

/// The report template's name.
pub const TEMPLATE: &str = "report.md.j2";

/// Render the Markdown report, the tasks that need attention first (at
/// the top of the table and of the sections: a reader of a 1,000-task
/// report should not scroll for the failures); findings from `severity` up
/// count. A broken override template gives a plain error text rather than
/// no report.
pub fn render(report: &Arc<Report>, templates: &Templates, severity: Severity) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write(report, templates, severity, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`render`] written to `out` as the template renders, never whole in
/// memory. A template that fails midway (an override's runtime error) has
/// written its text so far; the error follows it.
pub fn write(
    report: &Arc<Report>,
    templates: &Templates,
    severity: Severity,
    out: &mut dyn Write,
) -> io::Result<()> {
    let env = environment(templates);
    let template = match env.get_template(TEMPLATE) {
        Ok(template) => template,
        Err(e) => {
            let text = format!(
                "# Sweep {}\n\nThe report template failed: {e}\n",
                report.name
            );
            return out.write_all(text.as_bytes());
        }
    };
    let rendered = template
        .render_captured_to(context(report, severity), &mut *out)
        .map(drop);
    match rendered {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == minijinja::ErrorKind::WriteFailure => {
            Err(io::Error::other(e.to_string()))
        }
        Err(e) => out.write_all(format!("\n\nThe report template failed: {e}\n").as_bytes()),
    }
}

/// The template environment: the project's templates and the report's
/// filters.
fn environment(templates: &Templates) -> minijinja::Environment<'static> {
    let mut env = templates.env().clone();
    // The report's size follows the sweep's (thousands of tasks, their
    // findings): the fuel that bounds a manifest's templates would cut it.
    env.set_fuel(None);
    env.add_filter("md", escape);
    env.add_filter("fence", fence);
    env.add_filter("duration", |ms: Option<u64>| {
        ms.map_or_else(
            || "—".to_owned(),
            |ms| crate::util::clock::human(std::time::Duration::from_millis(ms)),
        )
    });
    env.add_filter("usd", usd);
    env.add_filter("count", |n: u64, noun: String| count(n, &noun));
    env.add_filter("budget", |budget: Option<Value>| {
        let budget: Option<crate::manifest::types::Budget> = budget
            .and_then(|b| serde_json::to_value(&b).ok())
            .and_then(|j| serde_json::from_value(j).ok());
        budget.map_or_else(|| "—".to_owned(), |b| describe_budget(&b))
    });
    env
}

/// The template's context: the report, its tasks needing attention moved
/// first (schedule order kept within each part). The tasks are template
/// values made as the template reaches them ([`Tasks`]): the report is
/// never cloned nor converted whole.
fn context(report: &Arc<Report>, severity: Severity) -> Value {
    let order = attention_first(report, severity);
    let tasks = Value::from_object(Tasks::new(Arc::clone(report), order));
    let base = Value::from(minijinja::value::Serde(report.without_tasks()));
    minijinja::context! { tasks => tasks, ..base }
}

/// The order of the tasks with those needing attention first (schedule
/// order kept within each part), or `None` when they already are.
fn attention_first(report: &Report, severity: Severity) -> Option<Vec<usize>> {
    let needs = |task: &TaskReport| {
        let worst = task.findings.iter().map(|f| f.severity).max();
        // A report from before attempts were kept in it: a complete task
        // that took more than one counts as flaky.
        let flaky = task.flaky || (task.attempt_results.is_empty() && task.attempts > 1);
        attention_of(task.status, flaky, worst, severity).is_some()
    };
    let flags: Vec<bool> = report.tasks.iter().map(needs).collect();
    if flags.windows(2).all(|w| w[0] || !w[1]) {
        return None;
    }
    let first = flags
        .iter()
        .enumerate()
        .filter(|(_, n)| **n)
        .map(|(i, _)| i);
    let rest = flags
        .iter()
        .enumerate()
        .filter(|(_, n)| !**n)
        .map(|(i, _)| i);
    Some(first.chain(rest).collect())
}

/// `$5.00, 200 turns, 1000000 tokens`: the limits a budget sets.
pub fn describe_budget(budget: &crate::manifest::types::Budget) -> String {
    let mut parts = Vec::new();
    if let Some(cost) = budget.max_cost_usd {
        parts.push(usd(cost));
    }
    if let Some(turns) = budget.max_turns {
        parts.push(count(turns, "turn"));
    }
    if let Some(tokens) = budget.max_tokens {
        parts.push(format!("{tokens} tokens"));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Escape what Markdown (and the HTML it allows) would interpret, and
/// drop control characters: worker text stays on its line and inert.
pub fn escape(text: &str) -> String {
    crate::util::escape::markdown_inline(text)
}

/// A fenced code block that no backtick run inside the text can close.
pub fn fence(text: &str) -> String {
    let text = crate::util::escape::markdown_text(text);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let ticks = "`".repeat(longest.max(2) + 1);
    format!("{ticks}text\n{}\n{ticks}", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_and_markdown() {
        assert_eq!(escape("<script>&\"'"), "&lt;script&gt;&amp;\"'");
        assert_eq!(escape("a|b *c* [d](e)"), "a\\|b \\*c\\* \\[d\\](e)");
    }

    #[test]
    fn control_characters_never_reach_markdown() {
        assert_eq!(escape("a\x1b[2J\x07b\nc"), "a\\[2Jb c");
        assert_eq!(fence("x\x1b]0;t\x07y"), "```text\nx]0;ty\n```");
    }

    #[test]
    fn fences_survive_backticks_inside() {
        let fenced = fence("x ```` y");
        assert!(fenced.starts_with("`````text\n"), "{fenced}");
    }
}
