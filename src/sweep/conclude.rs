//! The end of a run: tasks never started get their status, the run record,
//! the reports, the last event and the summary are written, and the exit
//! code is decided.

use indexmap::IndexMap;

use super::{RunResult, Sweep};
use crate::domain::exit::RunOutcome;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::record::snapshot;
use crate::report;
use crate::state;
use crate::util::clock;

/// Why a task that never started did not: its status and a sentence.
pub(super) fn never_started(
    interrupted: bool,
    model_spent: Option<(String, String)>,
    halted_by: Option<&str>,
    sweep_spent: Option<&str>,
) -> (TaskStatus, String) {
    match (model_spent, halted_by, sweep_spent) {
        _ if interrupted => (
            TaskStatus::Cancelled,
            "the run was interrupted before it started".to_owned(),
        ),
        (Some((model, why)), _, _) => (
            TaskStatus::Skipped,
            format!("not started: model {model}'s budget is spent ({why})"),
        ),
        (None, Some(rule), _) => (
            TaskStatus::Skipped,
            format!("not started: the sweep was halted by escalation rule {rule}"),
        ),
        (None, None, Some(spent)) => (
            TaskStatus::Skipped,
            format!("not started: the sweep's budget is spent ({spent})"),
        ),
        (None, None, None) => (TaskStatus::Cancelled, "never started".to_owned()),
    }
}

impl Sweep {
    /// Tasks never started are cancelled (interrupted) or skipped; the run
    /// record, the last event and the summary are written; the exit code is
    /// decided. Every state write queued before is on disk first.
    pub(super) async fn conclude(mut self) -> RunResult {
        for index in 0..self.slots.len() {
            if self.slots[index].record.status != TaskStatus::Pending {
                continue;
            }
            let model = self.slots[index]
                .task
                .model
                .as_ref()
                .map(|m| m.name.as_str());
            let (status, reason) = never_started(
                self.interrupted > 0,
                self.spent.model(model),
                self.halted.as_deref(),
                self.spent.sweep.as_deref(),
            );
            let record = &mut self.slots[index].record;
            record.status = status;
            record.reason = Some(reason);
            record.ended_at = Some(clock::now());
            self.save(index);
        }
        let outcome = RunOutcome::decide(
            self.interrupted > 0,
            crate::escalation::exit_code(&self.fired),
            self.slots.iter().map(|s| s.record.status),
        );
        // 128 + the signal that stopped it: 129, 130 or 143.
        let exit_code = match outcome {
            RunOutcome::Interrupted => super::signals::exit_code(),
            _ => outcome.code(),
        };
        let status = outcome.status();
        let escalations: Vec<String> = self
            .fired
            .iter()
            .map(|f| format!("{}: {}", f.name, f.summary))
            .collect();
        self.run_record.escalations = escalations.clone();
        self.run_record.merge_readiness = self.merge_readiness();
        let mut counts: IndexMap<String, usize> = IndexMap::new();
        for slot in &self.slots {
            *counts
                .entry(slot.record.status.label().to_owned())
                .or_default() += 1;
        }
        self.run_record.ended_at = Some(clock::now());
        self.run_record.status = status;
        self.run_record.exit_code = Some(exit_code);
        for index in 0..self.slots.len() {
            if self.slots[index].unsaved {
                self.save(index);
            }
        }
        self.queue_index();
        // The records (and the index) are on disk before the run says it
        // ended, so a reader that sees the ended run sees its tasks' ends
        // too.
        self.writer.flush().await;
        self.warn_unwritten();
        let run_json = self.state.run_dir(&self.run_id).join("run.json");
        if let Err(e) = state::write_json(&run_json, &self.run_record) {
            self.emit(Event::Warning {
                task: None,
                message: format!("cannot write {}: {e}", run_json.display()),
            });
        }
        // The reports need the records alone. The planned tasks (each
        // slot's and the plan's) are let go of first, and the memory they
        // leave handed back, so a wide run's reports do not add to its
        // peak on top of them (at 50,000 tasks they are the run's
        // second-largest part, after the records).
        self.plan.tasks = Vec::new();
        self.prompter = None;
        // The records go into the reports' snapshot and come back after:
        // a thousand tasks' records are worth moving, not copying.
        let slots = std::mem::take(&mut self.slots);
        let mut tasks = Vec::with_capacity(slots.len());
        for slot in slots {
            tasks.push(snapshot::TaskView {
                record: slot.record,
                plan: slot.final_plan,
                waiting: Vec::new(),
            });
        }
        let mut snapshot = snapshot::Snapshot {
            run: self.run_record.clone(),
            live: false,
            orphaned: 0,
            tasks,
        };
        crate::util::memory::release_freed_in_run(snapshot.tasks.len());
        let (markdown, problems) = report::write::after_run(
            &self.state,
            &mut snapshot,
            &self.report_targets,
            &self.redactor,
        );
        let records: Vec<_> = snapshot.tasks.into_iter().map(|view| view.record).collect();
        for problem in problems {
            self.emit(Event::Warning {
                task: None,
                message: problem,
            });
        }
        let duration = self.started.elapsed();
        self.emit(Event::RunEnded {
            run_id: self.run_id.clone(),
            status,
            exit_code,
            counts,
            duration_ms: duration.as_millis() as u64,
        });
        let severity = crate::events::attention::recorded_severity(&self.run_record);
        let tails: Vec<(String, String)> = records
            .iter()
            .filter_map(|record| {
                let dir = self.state.task_dir(&record.id);
                report::tails::failure_tail(record, &dir).map(|tail| (record.id.clone(), tail))
            })
            .collect();
        self.reporters.finish(&crate::events::reporter::RunEnd {
            summary: crate::events::summary::Summary {
                name: &self.name,
                run_id: &self.run_id,
                records: &records,
                escalations: &escalations,
                duration,
                exit_code,
                severity,
                verbose: self.verbose,
                tails: &tails,
            },
            markdown: &markdown,
        });
        // The last events are in `events.jsonl` before the run returns
        // (and its lock is released).
        self.writer.flush().await;
        RunResult {
            run_id: self.run_id,
            exit_code,
            records,
            message: None,
        }
    }
}

impl Sweep {
    /// Queue the run's index (`record::index`) for the end `run_record`
    /// now holds, so `dispatch status` on the finished run reads one file
    /// rather than every task's.
    fn queue_index(&self) {
        let severity = crate::events::attention::recorded_severity(&self.run_record);
        let entries = self
            .slots
            .iter()
            .map(|slot| {
                let needs = crate::events::attention::attention(&slot.record, severity).is_some();
                crate::record::index::IndexEntry::of(&slot.record, needs)
            })
            .collect();
        if let Some(index) = crate::record::index::RunIndex::of(&self.run_record, entries) {
            let path = crate::record::index::RunIndex::path(&self.state, &self.run_id);
            // Compact, in a buffer of about its size: a program reads it,
            // and at 50,000 tasks the indented text (and the buffer it
            // doubled through) was the largest thing made as the run ends.
            let mut bytes = Vec::with_capacity(index.tasks.len().saturating_mul(48) + 256);
            if serde_json::to_writer(&mut bytes, &index).is_ok() {
                bytes.push(b'\n');
                self.writer.replace(path, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_beats_every_other_reason_and_a_spent_model_beats_a_halt() {
        let model = || Some(("opus".to_owned(), "spent $2".to_owned()));
        assert_eq!(
            never_started(true, model(), Some("r"), Some("s")).0,
            TaskStatus::Cancelled
        );
        let (status, reason) = never_started(false, model(), Some("r"), Some("s"));
        assert_eq!(status, TaskStatus::Skipped);
        assert!(reason.contains("model opus"), "{reason}");
        assert!(never_started(false, None, Some("r"), Some("s"))
            .1
            .contains("escalation rule r"));
        assert!(never_started(false, None, None, Some("s"))
            .1
            .contains("budget is spent (s)"));
        assert_eq!(
            never_started(false, None, None, None),
            (TaskStatus::Cancelled, "never started".to_owned())
        );
    }
}
