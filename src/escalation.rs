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
        EndStatus::Incomplete => "incomplete",
        EndStatus::Skipped => "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(value: Value) -> Vec<EscalationRule> {
        serde_json::from_value(value).expect("valid rules")
    }

    fn finding(severity: Severity, title: &str, location: Option<&str>) -> Finding {
        Finding {
            severity,
            title: title.to_owned(),
            location: location.map(str::to_owned),
            detail: None,
            ts: None,
        }
    }

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn on_finding<'a>(task: &'a str, tags: &'a [String], finding: &'a Finding) -> Trigger<'a> {
        Trigger::Finding {
            task,
            source_task: task,
            tags,
            finding,
        }
    }

    fn ended(task: &str, status: EndStatus) -> Trigger<'_> {
        Trigger::TaskEnded {
            task,
            source_task: task,
            tags: &[],
            status,
        }
    }

    fn asked<'a>(task: &'a str, text: &'a str) -> Trigger<'a> {
        Trigger::Question {
            task,
            source_task: task,
            tags: &[],
            text,
        }
    }

    #[test]
    fn severity_matches_at_or_above() {
        let r = rules(json!([{ "when": { "severity": "high" } }]));
        let no_tags = tags(&[]);
        for (severity, expected) in [
            (Severity::Info, false),
            (Severity::Low, false),
            (Severity::Medium, false),
            (Severity::High, true),
            (Severity::Critical, true),
        ] {
            let f = finding(severity, "t", None);
            assert_eq!(
                first_match(&r, &on_finding("a", &no_tags, &f)).is_some(),
                expected,
                "{severity:?}"
            );
        }
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
    }

    #[test]
    fn each_event_part_matches_only_its_own_kind_of_event() {
        let severity = rules(json!([{ "when": { "severity": "info" } }]));
        let status = rules(json!([{ "when": { "status": ["failed", "timed-out"] } }]));
        let question = rules(json!([{ "when": { "question": "prod(uction)?" } }]));
        let f = finding(Severity::Critical, "prod", None);
        let no_tags = tags(&[]);
        let events = [
            on_finding("a", &no_tags, &f),
            ended("a", EndStatus::Failed),
            asked("a", "may I touch PRODUCTION?"),
        ];
        let hits = |r: &[EscalationRule]| -> Vec<bool> {
            events.iter().map(|e| first_match(r, e).is_some()).collect()
        };
        assert_eq!(hits(&severity), [true, false, false]);
        assert_eq!(hits(&status), [false, true, false]);
        assert_eq!(hits(&question), [false, false, true], "case-insensitive");
    }

    #[test]
    fn status_must_be_in_the_list() {
        let r = rules(json!([{ "when": { "status": ["failed", "timed-out"] } }]));
        assert!(first_match(&r, &ended("a", EndStatus::TimedOut)).is_some());
        assert!(first_match(&r, &ended("a", EndStatus::Failed)).is_some());
        assert!(first_match(&r, &ended("a", EndStatus::Blocked)).is_none());
        assert!(first_match(&r, &ended("a", EndStatus::Skipped)).is_none());
    }

    #[test]
    fn question_regexes_are_searched_and_invalid_ones_never_match() {
        let r = rules(json!([{ "when": { "question": "^delete" } }]));
        assert!(first_match(&r, &asked("a", "Delete the table?")).is_some());
        assert!(first_match(&r, &asked("a", "should I delete it?")).is_none());
        let bad = rules(json!([{ "when": { "question": "(" } }]));
        assert!(first_match(&bad, &asked("a", "(")).is_none());
    }

    #[test]
    fn tasks_match_the_id_or_the_manifest_id() {
        let r = rules(json!([{ "when": { "status": ["failed"], "tasks": ["audit", "deploy"] } }]));
        let matrix_entry = Trigger::TaskEnded {
            task: "audit-api",
            source_task: "audit",
            tags: &[],
            status: EndStatus::Failed,
        };
        assert!(first_match(&r, &matrix_entry).is_some());
        assert!(first_match(&r, &ended("deploy", EndStatus::Failed)).is_some());
        assert!(first_match(&r, &ended("docs", EndStatus::Failed)).is_none());
        let by_entry = rules(json!([{ "when": { "status": ["failed"], "tasks": ["audit-api"] } }]));
        assert!(first_match(&by_entry, &matrix_entry).is_some());
    }

    #[test]
    fn tags_match_when_any_is_shared() {
        let r = rules(json!([{ "when": { "severity": "low", "tags": ["security", "payments"] } }]));
        let f = finding(Severity::High, "t", None);
        let yes = tags(&["frontend", "payments"]);
        let no = tags(&["frontend"]);
        let none = tags(&[]);
        assert!(first_match(&r, &on_finding("a", &yes, &f)).is_some());
        assert!(first_match(&r, &on_finding("a", &no, &f)).is_none());
        assert!(first_match(&r, &on_finding("a", &none, &f)).is_none());
    }

    #[test]
    fn every_part_set_must_match() {
        let r =
            rules(json!([{ "when": { "severity": "high", "tasks": ["audit"], "tags": ["sec"] } }]));
        let high = finding(Severity::High, "t", None);
        let low = finding(Severity::Low, "t", None);
        let sec = tags(&["sec"]);
        let other = tags(&["ops"]);
        assert!(first_match(&r, &on_finding("audit", &sec, &high)).is_some());
        assert!(first_match(&r, &on_finding("audit", &sec, &low)).is_none());
        assert!(first_match(&r, &on_finding("audit", &other, &high)).is_none());
        assert!(first_match(&r, &on_finding("build", &sec, &high)).is_none());
        // Parts for two kinds of event can never both match.
        let both = rules(json!([{ "when": { "severity": "info", "status": ["failed"] } }]));
        assert!(first_match(&both, &on_finding("a", &sec, &high)).is_none());
        assert!(first_match(&both, &ended("a", EndStatus::Failed)).is_none());
    }

    #[test]
    fn a_condition_without_an_event_part_never_matches() {
        let r = rules(json!([{ "when": { "tasks": ["a"] } }, { "when": {} }]));
        let f = finding(Severity::Critical, "t", None);
        let no_tags = tags(&[]);
        assert!(first_match(&r, &on_finding("a", &no_tags, &f)).is_none());
        assert!(first_match(&r, &ended("a", EndStatus::Failed)).is_none());
        assert!(first_match(&r, &asked("a", "q")).is_none());
    }

    #[test]
    fn the_first_matching_rule_wins_with_defaults_filled_in() {
        let r = rules(json!([
            { "name": "only-high", "when": { "severity": "high" }, "action": "cancel" },
            { "when": { "severity": "medium" } },
            { "name": "anything", "when": { "severity": "info" }, "action": "halt",
              "notify": false, "exit_code": 9, "run": "true" },
        ]));
        let no_tags = tags(&[]);
        let medium = finding(Severity::Medium, "m", None);
        let fired = first_match(&r, &on_finding("a", &no_tags, &medium)).expect("fires");
        assert_eq!(fired.rule, 1);
        assert_eq!(fired.name, "rule 2");
        assert_eq!(fired.action, Action::Notify);
        assert!(fired.notify);
        assert_eq!(fired.exit_code, DEFAULT_EXIT_CODE);
        let critical = finding(Severity::Critical, "c", None);
        let fired = first_match(&r, &on_finding("a", &no_tags, &critical)).expect("fires");
        assert_eq!(
            (fired.rule, fired.name.as_str(), fired.action),
            (0, "only-high", Action::Cancel)
        );
        let info = finding(Severity::Info, "i", None);
        let fired = first_match(&r, &on_finding("a", &no_tags, &info)).expect("fires");
        assert_eq!(
            (fired.action, fired.notify, fired.exit_code),
            (Action::Halt, false, 9)
        );
        assert!(first_match(&[], &on_finding("a", &no_tags, &info)).is_none());
    }

    #[test]
    fn the_default_rule_fails_the_sweep_on_a_critical_finding() {
        let r = crate::manifest::types::default_rules();
        let no_tags = tags(&[]);
        let critical = finding(Severity::Critical, "c", None);
        let fired = first_match(&r, &on_finding("a", &no_tags, &critical)).expect("fires");
        assert_eq!(fired.action, Action::Fail);
        assert!(fired.notify);
        assert_eq!(exit_code(&[fired]), Some(3));
        let high = finding(Severity::High, "h", None);
        assert!(first_match(&r, &on_finding("a", &no_tags, &high)).is_none());
        assert!(first_match(&r, &ended("a", EndStatus::Failed)).is_none());
        assert!(first_match(&r, &asked("a", "critical?")).is_none());
    }

    fn fired(action: Action, exit_code: u8) -> Fired {
        Fired {
            rule: 0,
            name: "r".to_owned(),
            action,
            notify: true,
            exit_code,
            summary: String::new(),
        }
    }

    #[test]
    fn the_most_drastic_fired_rule_decides_the_exit_code() {
        assert_eq!(exit_code(&[]), None);
        assert_eq!(exit_code(&[fired(Action::Notify, 3)]), Some(3));
        assert_eq!(
            exit_code(&[fired(Action::Notify, 90), fired(Action::Fail, 5)]),
            Some(5)
        );
        assert_eq!(
            exit_code(&[fired(Action::Fail, 90), fired(Action::Halt, 6)]),
            Some(6)
        );
        assert_eq!(
            exit_code(&[fired(Action::Halt, 90), fired(Action::Cancel, 7)]),
            Some(7)
        );
        assert_eq!(
            exit_code(&[
                fired(Action::Cancel, 7),
                fired(Action::Halt, 90),
                fired(Action::Notify, 100)
            ]),
            Some(7)
        );
        assert_eq!(
            exit_code(&[
                fired(Action::Fail, 3),
                fired(Action::Fail, 8),
                fired(Action::Fail, 5)
            ]),
            Some(8)
        );
    }

    #[test]
    fn summaries_are_one_line() {
        let r = rules(
            json!([{ "when": { "severity": "info" } }, { "when": { "status": ["timed-out"] } }, { "when": { "question": "." } }]),
        );
        let no_tags = tags(&[]);
        let f = finding(
            Severity::Critical,
            "Stripe webhook signature verification disabled",
            Some("config/stripe.ts:31"),
        );
        let fired = first_match(&r, &on_finding("security-audit", &no_tags, &f)).expect("fires");
        assert_eq!(
            fired.summary,
            "security-audit CRITICAL: Stripe webhook signature verification disabled (config/stripe.ts:31)"
        );
        let fired = first_match(&r, &ended("migrate", EndStatus::TimedOut)).expect("fires");
        assert_eq!(fired.summary, "migrate ended timed-out");
        let fired = first_match(&r, &asked("docs", "Which\n\tstyle guide?\r\n")).expect("fires");
        assert_eq!(fired.summary, "docs asked: Which style guide?");

        let nasty = finding(
            Severity::Low,
            "line one\nline two\x1b[2J\u{202e}evil\u{0}",
            Some("\n"),
        );
        let fired = first_match(&r, &on_finding("a", &no_tags, &nasty)).expect("fires");
        assert_eq!(fired.summary, "a LOW: line one line two [2J evil");
        let long = finding(Severity::Info, &"word ".repeat(100), None);
        let fired = first_match(&r, &on_finding("a", &no_tags, &long)).expect("fires");
        assert!(fired.summary.ends_with("word…"), "{}", fired.summary);
        assert!(fired.summary.chars().count() <= 220);
    }

    #[test]
    fn event_json_carries_the_event() {
        let r = rules(json!([
            { "name": "sec", "when": { "severity": "high" }, "action": "halt", "exit_code": 7 },
            { "when": { "status": ["blocked"] } },
            { "when": { "question": "secret" }, "action": "cancel" },
        ]));
        let sec = tags(&["security"]);
        let mut f = finding(Severity::Critical, "leaked key", Some("src/a.rs:3"));
        f.detail = Some("AKIA...".to_owned());
        let trigger = Trigger::Finding {
            task: "audit-api",
            source_task: "audit",
            tags: &sec,
            finding: &f,
        };
        let fired = first_match(&r, &trigger).expect("fires");
        assert_eq!(
            event_json(&trigger, &fired),
            json!({
                "kind": "finding",
                "task": "audit-api",
                "source_task": "audit",
                "tags": ["security"],
                "rule": "sec",
                "rule_index": 0,
                "action": "halt",
                "exit_code": 7,
                "summary": "audit-api CRITICAL: leaked key (src/a.rs:3)",
                "finding": {
                    "severity": "critical",
                    "title": "leaked key",
                    "location": "src/a.rs:3",
                    "detail": "AKIA...",
                    "ts": null,
                },
            })
        );
        let trigger = ended("build", EndStatus::Blocked);
        let fired = first_match(&r, &trigger).expect("fires");
        let event = event_json(&trigger, &fired);
        assert_eq!(event["kind"], "task-ended");
        assert_eq!(event["status"], "blocked");
        assert_eq!(event["rule"], "rule 2");
        assert_eq!(event["action"], "notify");
        assert!(event.get("finding").is_none() && event.get("question").is_none());
        let trigger = asked("build", "may I print the SECRET?\nplease");
        let fired = first_match(&r, &trigger).expect("fires");
        let event = event_json(&trigger, &fired);
        assert_eq!(event["kind"], "question");
        assert_eq!(
            event["question"], "may I print the SECRET?\nplease",
            "full text"
        );
        assert_eq!(event["action"], "cancel");
        assert!(event.get("status").is_none());
    }

    #[test]
    fn event_env_has_only_what_applies() {
        let r = rules(json!([
            { "name": "sec", "when": { "severity": "high" }, "action": "fail" },
            { "when": { "status": ["failed"] } },
            { "when": { "question": "." } },
        ]));
        let no_tags = tags(&[]);
        let f = finding(Severity::High, "bad\0thing", Some("x.rs:1"));
        let trigger = on_finding("audit", &no_tags, &f);
        let fired = first_match(&r, &trigger).expect("fires");
        let env = event_env(&trigger, &fired);
        let get = |env: &[(String, String)], name: &str| {
            env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&env, "DISPATCH_EVENT").as_deref(), Some("finding"));
        assert_eq!(get(&env, "DISPATCH_TASK_ID").as_deref(), Some("audit"));
        assert_eq!(get(&env, "DISPATCH_RULE").as_deref(), Some("sec"));
        assert_eq!(get(&env, "DISPATCH_ACTION").as_deref(), Some("fail"));
        assert_eq!(get(&env, "DISPATCH_SEVERITY").as_deref(), Some("high"));
        assert_eq!(
            get(&env, "DISPATCH_TITLE").as_deref(),
            Some("badthing"),
            "no NUL"
        );
        assert_eq!(get(&env, "DISPATCH_LOCATION").as_deref(), Some("x.rs:1"));
        assert_eq!(
            get(&env, "DISPATCH_SUMMARY").as_deref(),
            Some("audit HIGH: bad thing (x.rs:1)")
        );
        assert!(get(&env, "DISPATCH_STATUS").is_none() && get(&env, "DISPATCH_QUESTION").is_none());

        let no_location = finding(Severity::High, "t", None);
        let trigger = on_finding("audit", &no_tags, &no_location);
        let fired = first_match(&r, &trigger).expect("fires");
        assert!(get(&event_env(&trigger, &fired), "DISPATCH_LOCATION").is_none());

        let trigger = ended("build", EndStatus::Failed);
        let fired = first_match(&r, &trigger).expect("fires");
        let env = event_env(&trigger, &fired);
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "DISPATCH_EVENT",
                "DISPATCH_TASK_ID",
                "DISPATCH_RULE",
                "DISPATCH_ACTION",
                "DISPATCH_STATUS",
                "DISPATCH_SUMMARY"
            ]
        );
        assert_eq!(get(&env, "DISPATCH_STATUS").as_deref(), Some("failed"));
        assert_eq!(get(&env, "DISPATCH_EVENT").as_deref(), Some("task-ended"));

        let long = "é".repeat(40_000);
        let trigger = asked("build", &long);
        let fired = first_match(&r, &trigger).expect("fires");
        let env = event_env(&trigger, &fired);
        let question = get(&env, "DISPATCH_QUESTION").expect("question");
        assert!(question.len() <= 32 * 1024 && question.chars().all(|c| c == 'é'));
        assert!(get(&env, "DISPATCH_SEVERITY").is_none());
    }

    proptest! {
        #[test]
        fn never_panics_and_summaries_stay_one_line(
            text in "\\PC{0,300}",
            raw in prop::collection::vec(any::<char>(), 0..300),
            task in "[a-z0-9-]{1,20}",
        ) {
            let r = rules(json!([
                { "when": { "question": "(?x) a | b" } },
                { "when": { "severity": "info" } },
            ]));
            let raw: String = raw.into_iter().collect();
            let no_tags = tags(&[]);
            let f = finding(Severity::Info, &raw, Some(&text));
            for trigger in [asked(&task, &text), asked(&task, &raw), on_finding(&task, &no_tags, &f)] {
                if let Some(fired) = first_match(&r, &trigger) {
                    prop_assert!(!fired.summary.chars().any(|c| c.is_control()));
                    let _ = event_json(&trigger, &fired);
                    for (_, value) in event_env(&trigger, &fired) {
                        prop_assert!(!value.contains('\0'));
                    }
                }
            }
        }
    }
}
