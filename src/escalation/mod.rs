//! Escalation: turning findings, task outcomes and questions into what the
//! sweep does about them (a banner, halting, cancelling, failing) and into
//! its exit code, by the manifest's `escalation:` rules.
//!
//! This module only decides; the runner acts (shows the banner, stops
//! workers, runs a rule's `run:` hook with [`event_json`] on its standard
//! input and [`event_env`] in its environment).

use serde_json::{json, Map, Value};

use crate::ipc::findings::Finding;
use crate::manifest::types::{Action, Condition, EndStatus, EscalationRule, Severity};

/// The exit code of `dispatch run` when a rule that sets none fired: 3, as
/// documented (2 is an invalid manifest, 4 a blocked task).
pub use crate::domain::exit::ESCALATED as DEFAULT_EXIT_CODE;

/// The longest title or question a one-line summary keeps, in characters,
/// so a worker's essay does not flood the banner.
const SUMMARY_TEXT_CHARS: usize = 200;

/// The longest location a summary keeps, in characters.
const SUMMARY_LOCATION_CHARS: usize = 120;

/// The most bytes of one environment variable for a hook: Linux refuses a
/// single argument or variable over 128 KiB (`MAX_ARG_STRLEN`), and the
/// full text is on the hook's standard input anyway.
const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// Something that happened in the sweep that a rule may react to.
#[derive(Clone, Copy, Debug)]
pub enum Trigger<'a> {
    /// A worker reported a finding.
    Finding {
        /// The task's id (after matrix expansion, e.g. `audit-api`).
        task: &'a str,
        /// The manifest's id for it before matrix expansion (`audit`), so a
        /// rule naming a matrix task covers all its entries.
        source_task: &'a str,
        /// The task's tags.
        tags: &'a [String],
        /// What was found.
        finding: &'a Finding,
    },
    /// A task ended with an outcome rules can react to.
    TaskEnded {
        /// The task's id.
        task: &'a str,
        /// The manifest's id before matrix expansion.
        source_task: &'a str,
        /// The task's tags.
        tags: &'a [String],
        /// How it ended.
        status: EndStatus,
    },
    /// A worker asked a question.
    Question {
        /// The task's id.
        task: &'a str,
        /// The manifest's id before matrix expansion.
        source_task: &'a str,
        /// The task's tags.
        tags: &'a [String],
        /// The question.
        text: &'a str,
    },
}

impl<'a> Trigger<'a> {
    /// The kind of event, as hooks see it (`DISPATCH_EVENT`, `"kind"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Finding { .. } => "finding",
            Trigger::TaskEnded { .. } => "task-ended",
            Trigger::Question { .. } => "question",
        }
    }

    /// The task the event is about (its expanded id).
    pub fn task(&self) -> &'a str {
        match *self {
            Trigger::Finding { task, .. }
            | Trigger::TaskEnded { task, .. }
            | Trigger::Question { task, .. } => task,
        }
    }

    /// The manifest id the task came from.
    pub fn source_task(&self) -> &'a str {
        match *self {
            Trigger::Finding { source_task, .. }
            | Trigger::TaskEnded { source_task, .. }
            | Trigger::Question { source_task, .. } => source_task,
        }
    }

    /// The task's tags.
    pub fn tags(&self) -> &'a [String] {
        match *self {
            Trigger::Finding { tags, .. }
            | Trigger::TaskEnded { tags, .. }
            | Trigger::Question { tags, .. } => tags,
        }
    }
}

/// A rule that fired for an event, with its defaults filled in, so the
/// runner need not look at the rule again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The rule's index in the manifest's `escalation:` list (0-based).
    pub rule: usize,
    /// The rule's name, or `rule N` (1-based, as people count) without one.
    pub name: String,
    /// What the sweep does (default `notify`).
    pub action: Action,
    /// Whether to show a banner at once (default true).
    pub notify: bool,
    /// The sweep's exit code if this rule decides it (default 3).
    pub exit_code: u8,
    /// One line for banners and logs, e.g. `security-audit CRITICAL: Stripe
    /// webhook signature verification disabled (config/stripe.ts:31)`.
    /// Worker text in it has control characters and line breaks replaced
    /// and is shortened, so it cannot break or spoof the terminal.
    pub summary: String,
}

/// The first rule whose condition matches the event, so each event has one
/// clear consequence. A condition matches when every part it sets matches:
///
/// - `severity`: a finding at that severity or above (findings only);
/// - `status`: a task ending with one of those statuses (task ends only);
/// - `question`: the regex found in the question, case-insensitively
///   (questions only; an invalid regex never matches);
/// - `tasks`: the task's id or its manifest id (before matrix expansion) is
///   listed;
/// - `tags`: the task has any of the listed tags.
///
/// So a rule naming `severity` never matches a task end or a question, and
/// a condition naming no event part at all (which the validator rejects)
/// never matches anything rather than everything.
pub fn first_match(rules: &[EscalationRule], trigger: &Trigger) -> Option<Fired> {
    rules
        .iter()
        .enumerate()
        .find(|(_, rule)| condition_matches(&rule.when, trigger))
        .map(|(index, rule)| Fired {
            rule: index,
            name: rule
                .name
                .clone()
                .unwrap_or_else(|| format!("rule {}", index + 1)),
            action: rule.action.unwrap_or(Action::Notify),
            notify: rule.notify.unwrap_or(true),
            exit_code: rule.exit_code.unwrap_or(DEFAULT_EXIT_CODE),
            summary: summary(trigger),
        })
}

/// Whether every part the condition sets matches the event.
fn condition_matches(when: &Condition, trigger: &Trigger) -> bool {
    if when.severity.is_none() && when.status.is_empty() && when.question.is_none() {
        return false;
    }
    if let Some(minimum) = when.severity {
        match trigger {
            Trigger::Finding { finding, .. } if finding.severity >= minimum => {}
            _ => return false,
        }
    }
    if !when.status.is_empty() {
        match trigger {
            Trigger::TaskEnded { status, .. } if when.status.contains(status) => {}
            _ => return false,
        }
    }
    if let Some(pattern) = &when.question {
        match trigger {
            Trigger::Question { text, .. }
                if crate::ipc::compile_rule_regex(pattern).is_some_and(|re| re.is_match(text)) => {}
            _ => return false,
        }
    }
    if !when.tasks.is_empty()
        && !when
            .tasks
            .iter()
            .any(|id| id == trigger.task() || id == trigger.source_task())
    {
        return false;
    }
    if !when.tags.is_empty() && !trigger.tags().iter().any(|tag| when.tags.contains(tag)) {
        return false;
    }
    true
}

/// The sweep's exit code from the rules that fired: the highest-ranking
/// one's, ranking actions `cancel` > `halt` > `fail` > `notify` and breaking
/// ties by the higher code, so the most drastic consequence is what scripts
/// see. `None` when nothing fired (the sweep's own outcome decides).
pub fn exit_code(fired: &[Fired]) -> Option<u8> {
    fired
        .iter()
        .max_by_key(|f| (action_rank(f.action), f.exit_code))
        .map(|f| f.exit_code)
}

/// How drastic an action is, for [`exit_code`].
fn action_rank(action: Action) -> u8 {
    match action {
        Action::Notify => 0,
        Action::Fail => 1,
        Action::Halt => 2,
        Action::Cancel => 3,
    }
}

/// The event as JSON, for a rule's `run:` hook on its standard input:
/// `kind`, `task`, `source_task`, `tags`, `rule` (name), `rule_index`,
/// `action`, `exit_code`, `summary`, and then `finding` (the finding as
/// the worker reported it), `status` or `question`. Text is passed as it
/// was written (JSON escapes it), unlike the shortened summary.
pub fn event_json(trigger: &Trigger, fired: &Fired) -> Value {
    let mut event = Map::new();
    event.insert("kind".into(), json!(trigger.kind()));
    event.insert("task".into(), json!(trigger.task()));
    event.insert("source_task".into(), json!(trigger.source_task()));
    event.insert("tags".into(), json!(trigger.tags()));
    event.insert("rule".into(), json!(fired.name));
    event.insert("rule_index".into(), json!(fired.rule));
    event.insert("action".into(), json!(action_name(fired.action)));
    event.insert("exit_code".into(), json!(fired.exit_code));
    event.insert("summary".into(), json!(fired.summary));
    match trigger {
        Trigger::Finding { finding, .. } => {
            let finding = serde_json::to_value(finding).unwrap_or_else(
                |_| json!({ "severity": severity_name(finding.severity), "title": finding.title }),
            );
            event.insert("finding".into(), finding);
        }
        Trigger::TaskEnded { status, .. } => {
            event.insert("status".into(), json!(status_name(*status)));
        }
        Trigger::Question { text, .. } => {
            event.insert("question".into(), json!(text));
        }
    }
    Value::Object(event)
}

/// The event as environment variables, for hooks that are one-line shell
/// commands: `DISPATCH_EVENT` (the kind), `DISPATCH_TASK_ID`,
/// `DISPATCH_RULE`, `DISPATCH_ACTION`, then those that apply of
/// `DISPATCH_SEVERITY`, `DISPATCH_TITLE`, `DISPATCH_LOCATION`,
/// `DISPATCH_STATUS` and `DISPATCH_QUESTION`, and `DISPATCH_SUMMARY`.
/// Values have NUL characters removed (a process cannot be given them, and
/// a worker can put one in a JSON string) and are cut at 32 KiB (the kernel
/// refuses longer ones; the whole text is in [`event_json`]).
pub fn event_env(trigger: &Trigger, fired: &Fired) -> Vec<(String, String)> {
    let mut env: Vec<(&str, &str)> = vec![
        ("DISPATCH_EVENT", trigger.kind()),
        ("DISPATCH_TASK_ID", trigger.task()),
        ("DISPATCH_RULE", &fired.name),
        ("DISPATCH_ACTION", action_name(fired.action)),
    ];
    match trigger {
        Trigger::Finding { finding, .. } => {
            env.push(("DISPATCH_SEVERITY", severity_name(finding.severity)));
            env.push(("DISPATCH_TITLE", &finding.title));
            if let Some(location) = &finding.location {
                env.push(("DISPATCH_LOCATION", location));
            }
        }
        Trigger::TaskEnded { status, .. } => {
            env.push(("DISPATCH_STATUS", status_name(*status)));
        }
        Trigger::Question { text, .. } => env.push(("DISPATCH_QUESTION", text)),
    }
    env.push(("DISPATCH_SUMMARY", &fired.summary));
    env.into_iter()
        .map(|(name, value)| (name.to_owned(), env_value(value)))
        .collect()
}

/// A value fit for the environment: no NULs, at most
/// [`MAX_ENV_VALUE_BYTES`], cut at a character boundary.
fn env_value(value: &str) -> String {
    let mut value: String = value.chars().filter(|&c| c != '\0').collect();
    if value.len() > MAX_ENV_VALUE_BYTES {
        let mut end = MAX_ENV_VALUE_BYTES;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// The one-line summary of an event, for banners.
fn summary(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Finding { task, finding, .. } => {
            let mut line = format!(
                "{} {}: {}",
                one_line(task, SUMMARY_TEXT_CHARS),
                severity_name(finding.severity).to_uppercase(),
                one_line(&finding.title, SUMMARY_TEXT_CHARS)
            );
            if let Some(location) = &finding.location {
                let location = one_line(location, SUMMARY_LOCATION_CHARS);
                if !location.is_empty() {
                    line.push_str(&format!(" ({location})"));
                }
            }
            line
        }
        Trigger::TaskEnded { task, status, .. } => format!(
            "{} ended {}",
            one_line(task, SUMMARY_TEXT_CHARS),
            status_name(*status)
        ),
        Trigger::Question { task, text, .. } => format!(
            "{} asked: {}",
            one_line(task, SUMMARY_TEXT_CHARS),
            one_line(text, SUMMARY_TEXT_CHARS)
        ),
    }
}

/// `text` on one line: line breaks, tabs, other control characters
/// (terminal escapes among them) and bidirectional overrides become single
/// spaces, and past `max_chars` characters it is cut with `…`.
fn one_line(text: &str, max_chars: usize) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control() || is_bidi_control(c))
        .filter(|word| !word.is_empty())
        .collect();
    let joined = words.join(" ");
    if joined.chars().count() <= max_chars {
        return joined;
    }
    let mut cut: String = joined.chars().take(max_chars).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// Unicode's bidirectional embedding, override and isolate characters,
/// which can make a terminal show text in an order other than its own.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The manifest's name for an action.
fn action_name(action: Action) -> &'static str {
    match action {
        Action::Notify => "notify",
        Action::Halt => "halt",
        Action::Cancel => "cancel",
        Action::Fail => "fail",
    }
}

/// The manifest's name for a severity.
fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The manifest's name for a task outcome.
fn status_name(status: EndStatus) -> &'static str {
    match status {
        EndStatus::Failed => "failed",
        EndStatus::Blocked => "blocked",
        EndStatus::TimedOut => "timed-out",
        EndStatus::Stalled => "stalled",
        EndStatus::Incomplete => "incomplete",
        EndStatus::Skipped => "skipped",
    }
}

#[cfg(test)]
mod tests;
