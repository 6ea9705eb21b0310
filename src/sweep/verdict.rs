//! A task's end status, from its process, its plan and its events.
//!
//! No single signal can be trusted: aider exits 0 when its API is
//! unreachable, codex exits 0 when a command inside failed, Claude Code
//! reports API errors in its final event. So the agent's own final event
//! decides where there is one, and the plan decides the rest.

use crate::agents::stream::Outcome;
use crate::domain::checklist::{Checklist, ItemState};
use crate::domain::status::TaskStatus;
use crate::manifest::types::EventFormat;
use crate::supervise::process::{Exit, Finished};

/// What the runner knows when a worker has ended.
pub struct Evidence<'a> {
    pub finished: &'a Finished,
    /// `None` when `plan.md` is gone or unreadable.
    pub plan: Option<&'a Checklist>,
    /// The worker touched `ipc/.done`.
    pub done_marker: bool,
    pub outcome: Option<&'a Outcome>,
    /// The stream the worker speaks, which names its CLI and so what its
    /// exit code means.
    pub events: EventFormat,
}

/// The status and a sentence saying why.
pub fn decide(evidence: &Evidence<'_>) -> (TaskStatus, String) {
    let finished = evidence.finished;
    if finished.stopped {
        return (TaskStatus::Cancelled, "stopped on request".to_owned());
    }
    if finished.timed_out {
        return (TaskStatus::TimedOut, "ran past its timeout".to_owned());
    }
    if let Some(outcome) = evidence.outcome.filter(|o| o.is_error) {
        let message = outcome.message.as_deref().unwrap_or("no message");
        return (
            TaskStatus::Failed,
            format!("the agent reported an error: {message}"),
        );
    }
    let Some(plan) = evidence.plan else {
        return (
            TaskStatus::Failed,
            "plan.md is missing or unreadable".to_owned(),
        );
    };
    if plan.items.is_empty() {
        return (
            TaskStatus::Failed,
            "the worker left its plan without any checklist items".to_owned(),
        );
    }
    if let Some(item) = plan.items.iter().find(|i| i.state == ItemState::Failed) {
        return (
            TaskStatus::Failed,
            with_note("an item failed", &item.text, item.note.as_deref()),
        );
    }
    if let Some(item) = plan.items.iter().find(|i| i.state == ItemState::Blocked) {
        return (
            TaskStatus::Blocked,
            with_note("waiting for an answer", &item.text, item.note.as_deref()),
        );
    }
    let counts = plan.counts();
    if plan.is_complete() || evidence.done_marker {
        return (
            TaskStatus::Complete,
            format!("{}/{} items done", counts.done, counts.total),
        );
    }
    match finished.exit {
        Exit::Code(0) => (
            TaskStatus::Incomplete,
            format!(
                "exited cleanly with {}/{} items done",
                counts.done, counts.total
            ),
        ),
        Exit::Code(code) => {
            let meaning = crate::agents::explain_exit(evidence.events, code)
                .map(|meaning| format!(" ({meaning})"))
                .unwrap_or_default();
            (
                TaskStatus::Failed,
                format!(
                    "exited with code {code}{meaning} with {}/{} items done",
                    counts.done, counts.total
                ),
            )
        }
        Exit::Signal(signal) => (
            TaskStatus::Failed,
            format!(
                "killed by signal {signal} with {}/{} items done",
                counts.done, counts.total
            ),
        ),
    }
}

fn with_note(what: &str, item: &str, note: Option<&str>) -> String {
    match note {
        Some(note) if !note.is_empty() => format!("{what}: {item} — {note}"),
        _ => format!("{what}: {item}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::checklist::parse;
    use std::time::Duration;

    fn finished(exit: Exit) -> Finished {
        Finished {
            exit,
            timed_out: false,
            stopped: false,
            leaked: false,
            pid: 1,
            duration: Duration::from_secs(1),
            strays: Vec::new(),
        }
    }

    fn decide_for(
        exit: Exit,
        plan: Option<&str>,
        done_marker: bool,
        outcome: Option<Outcome>,
    ) -> TaskStatus {
        let finished = finished(exit);
        let plan = plan.map(parse);
        decide(&Evidence {
            finished: &finished,
            plan: plan.as_ref(),
            done_marker,
            outcome: outcome.as_ref(),
            events: EventFormat::None,
        })
        .0
    }

    #[test]
    fn the_plan_decides_over_the_exit_code() {
        let done = "# T\n\n- [x] a\n- [x] b\n";
        let half = "# T\n\n- [x] a\n- [ ] b\n";
        assert_eq!(
            decide_for(Exit::Code(0), Some(done), false, None),
            TaskStatus::Complete
        );
        assert_eq!(
            decide_for(Exit::Code(1), Some(done), false, None),
            TaskStatus::Complete
        );
        assert_eq!(
            decide_for(Exit::Code(0), Some(half), false, None),
            TaskStatus::Incomplete
        );
        assert_eq!(
            decide_for(Exit::Code(2), Some(half), false, None),
            TaskStatus::Failed
        );
        assert_eq!(
            decide_for(Exit::Code(0), Some(half), true, None),
            TaskStatus::Complete
        );
        assert_eq!(
            decide_for(
                Exit::Code(0),
                Some("# T\n\n- [x] a\n- [!] b — boom\n"),
                false,
                None
            ),
            TaskStatus::Failed
        );
        assert_eq!(
            decide_for(
                Exit::Code(0),
                Some("# T\n\n- [?] a — which db?\n"),
                false,
                None
            ),
            TaskStatus::Blocked
        );
        assert_eq!(
            decide_for(Exit::Code(0), Some(""), false, None),
            TaskStatus::Failed
        );
        assert_eq!(
            decide_for(Exit::Code(0), None, false, None),
            TaskStatus::Failed
        );
    }

    #[test]
    fn the_agents_own_error_beats_a_clean_exit_and_a_full_plan() {
        let outcome = Outcome {
            is_error: true,
            message: Some("API Error: 529 overloaded".to_owned()),
        };
        let finished = finished(Exit::Code(0));
        let plan = parse("# T\n\n- [x] a\n");
        let (status, reason) = decide(&Evidence {
            finished: &finished,
            plan: Some(&plan),
            done_marker: true,
            outcome: Some(&outcome),
            events: EventFormat::Claude,
        });
        assert_eq!(status, TaskStatus::Failed);
        assert!(reason.contains("529 overloaded"));
    }

    #[test]
    fn timeouts_and_stops_come_first() {
        let mut f = finished(Exit::Signal(9));
        f.timed_out = true;
        let plan = parse("# T\n\n- [x] a\n");
        let evidence = Evidence {
            finished: &f,
            plan: Some(&plan),
            done_marker: false,
            outcome: None,
            events: EventFormat::None,
        };
        assert_eq!(decide(&evidence).0, TaskStatus::TimedOut);
        f.stopped = true;
        let evidence = Evidence {
            finished: &f,
            plan: Some(&plan),
            done_marker: false,
            outcome: None,
            events: EventFormat::None,
        };
        assert_eq!(decide(&evidence).0, TaskStatus::Cancelled);
    }

    #[test]
    fn an_exit_code_says_what_it_means_for_the_cli_that_ran() {
        let finished = finished(Exit::Code(41));
        let plan = parse("# T\n\n- [ ] a\n");
        let reason = |events| {
            decide(&Evidence {
                finished: &finished,
                plan: Some(&plan),
                done_marker: false,
                outcome: None,
                events,
            })
            .1
        };
        assert_eq!(
            reason(EventFormat::Gemini),
            "exited with code 41 (Gemini CLI: no usable authentication \
             (FatalAuthenticationError)) with 0/1 items done"
        );
        assert_eq!(
            reason(EventFormat::None),
            "exited with code 41 with 0/1 items done"
        );
    }
}
