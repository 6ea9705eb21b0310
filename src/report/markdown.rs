//! The Markdown report, rendered from `templates/report.md.j2` (a project can
//! override it by name). Worker-written text goes through the `md` filter,
//! so a finding titled `<script>` is shown, never run as HTML.

use minijinja::value::Value;

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
pub fn render(report: &Report, templates: &Templates, severity: Severity) -> String {
    let reordered = attention_first(report, severity);
    let report = reordered.as_ref().unwrap_or(report);
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
    let result = env
        .get_template(TEMPLATE)
        .and_then(|t| t.render(Value::from(minijinja::value::Serde(report))));
    match result {
        Ok(text) => text,
        Err(e) => format!(
            "# Sweep {}\n\nThe report template failed: {e}\n",
            report.name
        ),
    }
}

/// The report with its tasks needing attention moved first (schedule order
/// kept within each part), or `None` when they already are.
fn attention_first(report: &Report, severity: Severity) -> Option<Report> {
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
    let mut ordered = report.clone();
    let (first, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut ordered.tasks)
        .into_iter()
        .zip(flags)
        .partition(|(_, needs)| *needs);
    ordered.tasks = first.into_iter().chain(rest).map(|(t, _)| t).collect();
    Some(ordered)
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
