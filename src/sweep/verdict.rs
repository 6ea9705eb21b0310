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
    /// The plan as dispatch wrote it: the contract. Every one of its items
    /// must still be in `plan` (ticked or not) for the task to complete.
    pub written: Option<&'a Checklist>,
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
    let dropped = evidence
        .written
        .map(|written| dropped_items(written, plan))
        .unwrap_or_default();
    if !dropped.is_empty() {
        let why = format!(
            "the worker removed {} of the {} items dispatch wrote from its plan: {}",
            dropped.len(),
            evidence.written.map_or(0, |w| w.items.len()),
            dropped.join("; ")
        );
        return match finished.exit {
            Exit::Code(0) => (TaskStatus::Incomplete, why),
            Exit::Code(code) => (
                TaskStatus::Failed,
                format!("exited with code {code}; {why}"),
            ),
            Exit::Signal(signal) => (
                TaskStatus::Failed,
                format!("killed by signal {signal}; {why}"),
            ),
        };
    }
    if !plan.is_complete() && evidence.done_marker {
        let unticked = counts.total - counts.done;
        return (
            TaskStatus::Complete,
            format!(
                "declared done (ipc/.done) with {}/{} items ticked; {unticked} never ticked",
                counts.done, counts.total
            ),
        );
    }
    if plan.is_complete() {
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

/// The items of the plan dispatch wrote that are no longer in `now`, in
/// the written order. The text is the item; the box and the note may
/// change. Agents also reword the end of an item (`First step: done`,
/// `**First step** (done)`), so an item still counts as there when an
/// item of `now` reads the same, ignoring case, spacing and emphasis, or
/// starts with it and goes on after a word break. Each item of `now`
/// stands for one written item at most (exact matches first), so a worker
/// that deletes one of two identical items is caught too. Items the
/// worker added are its own business.
pub fn dropped_items(written: &Checklist, now: &Checklist) -> Vec<String> {
    let mut left: Vec<Option<String>> = now.items.iter().map(|i| Some(loose(&i.text))).collect();
    let wanted: Vec<String> = written.items.iter().map(|i| loose(&i.text)).collect();
    let mut found = vec![false; wanted.len()];
    let passes: [fn(&str, &str) -> bool; 2] = [
        |have, want| have == want,
        |have, want| {
            have.strip_prefix(want)
                .and_then(|rest| rest.chars().next())
                .is_some_and(|next| !next.is_alphanumeric())
        },
    ];
    for matches in passes {
        for (index, want) in wanted.iter().enumerate() {
            if found[index] {
                continue;
            }
            let slot = left
                .iter_mut()
                .find(|have| have.as_deref().is_some_and(|have| matches(have, want)));
            if let Some(slot) = slot {
                *slot = None;
                found[index] = true;
            }
        }
    }
    written
        .items
        .iter()
        .zip(found)
        .filter(|(_, found)| !found)
        .map(|(item, _)| item.text.clone())
        .collect()
}

/// An item's text for matching: lower case, Markdown emphasis and code
/// marks removed, runs of spaces as one.
fn loose(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '*' | '_' | '`'))
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The items nobody ticked in a task that ended `complete`: it was
/// declared done (`ipc/.done`) with these open. Empty for any other end.
pub fn unticked_items(status: TaskStatus, plan: Option<&Checklist>) -> Vec<String> {
    match (status, plan) {
        (TaskStatus::Complete, Some(plan)) => plan
            .items
            .iter()
            .filter(|item| item.state != ItemState::Done)
            .map(|item| item.text.clone())
            .collect(),
        _ => Vec::new(),
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
            written: None,
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
            written: None,
            done_marker: true,
            outcome: Some(&outcome),
            events: EventFormat::Claude,
        });
        assert_eq!(status, TaskStatus::Failed);
        assert!(reason.contains("529 overloaded"));
    }

    #[test]
    fn a_worker_that_deletes_its_open_items_does_not_complete() {
        let finished = finished(Exit::Code(0));
        let written = parse("# T\n\n- [ ] a\n- [ ] b\n- [ ] c\n");
        let left = parse("# T\n\n- [x] a — done\n");
        for done_marker in [false, true] {
            let (status, reason) = decide(&Evidence {
                finished: &finished,
                plan: Some(&left),
                written: Some(&written),
                done_marker,
                outcome: None,
                events: EventFormat::None,
            });
            assert_eq!(status, TaskStatus::Incomplete, "{reason}");
            assert!(reason.contains("removed 2 of the 3 items"), "{reason}");
            assert!(reason.contains("b; c"), "{reason}");
        }
        // Ticking, notes and added items are fine; a duplicate counts once.
        let grown = parse("# T\n\n- [x] a — x\n- [x] b\n- [x] c\n- [x] extra\n");
        assert!(dropped_items(&written, &grown).is_empty());
        let twice = parse("- [ ] a\n- [ ] a\n");
        assert_eq!(dropped_items(&twice, &parse("- [x] a\n")), ["a"]);
        // Rewording the end of an item keeps it; another item does not.
        let reworded = parse("- [x] **First step**: done\n- [x] b (DONE)\n- [x] cx\n");
        assert_eq!(
            dropped_items(&parse("- [ ] First  step\n- [ ] b\n- [ ] c\n"), &reworded),
            ["c"]
        );
    }

    #[test]
    fn done_with_unticked_items_is_complete_and_says_so() {
        let finished = finished(Exit::Code(0));
        let plan = parse("# T\n\n- [x] a\n- [ ] b\n");
        let (status, reason) = decide(&Evidence {
            finished: &finished,
            plan: Some(&plan),
            written: Some(&plan),
            done_marker: true,
            outcome: None,
            events: EventFormat::None,
        });
        assert_eq!(status, TaskStatus::Complete);
        assert!(reason.contains("1 never ticked"), "{reason}");
        assert_eq!(unticked_items(status, Some(&plan)), ["b"]);
        assert!(unticked_items(TaskStatus::Incomplete, Some(&plan)).is_empty());
    }

    #[test]
    fn timeouts_and_stops_come_first() {
        let mut f = finished(Exit::Signal(9));
        f.timed_out = true;
        let plan = parse("# T\n\n- [x] a\n");
        let evidence = Evidence {
            finished: &f,
            plan: Some(&plan),
            written: None,
            done_marker: false,
            outcome: None,
            events: EventFormat::None,
        };
        assert_eq!(decide(&evidence).0, TaskStatus::TimedOut);
        f.stopped = true;
        let evidence = Evidence {
            finished: &f,
            plan: Some(&plan),
            written: None,
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
                written: None,
                done_marker: false,
                outcome: None,
                events,
            })
            .1
        };
        assert_eq!(
            reason(EventFormat::Gemini),
            format!(
                "exited with code 41 (Gemini CLI: {}) with 0/1 items done",
                crate::agents::gemini::explain_exit(41).unwrap_or_default()
            )
        );
        assert_eq!(
            reason(EventFormat::None),
            "exited with code 41 with 0/1 items done"
        );
    }
}
