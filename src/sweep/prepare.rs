//! Before the first launch: every task's record (its folder is written
//! in the background, `folders.rs`), the run's record, its event log, and
//! one slot per task.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::slot::TaskSlot;
use super::start::Earlier;
use super::{carry, plans, schedule, RunOptions, Sweep};
use crate::agents::cli_home;
use crate::domain::redact::Redactor;
use crate::domain::status::{RunStatus, TaskStatus};
use crate::events::reporter::Reporters;
use crate::events::Event;
use crate::ipc::findings::FindingsReader;
use crate::isolation::worktree::Checkout;
use crate::manifest::types::PromptMode;
use crate::manifest::LoadedManifest;
use crate::plan::{PlannedTask, SweepPlan};
use crate::record::snapshot;
use crate::record::{RunRecord, TaskRecord};
use crate::report;
use crate::state::plan_watch as monitor;
use crate::state::writer::Writer;
use crate::state::{self, StateDir, StateError};
use crate::util::clock;

impl Sweep {
    /// Archive an earlier run's task folders, write every plan and the run's
    /// record, and open its event log. Written here, on the runner's thread:
    /// no worker runs yet, so there is no timeout to hold up.
    pub(super) fn prepare(
        loaded: &LoadedManifest,
        mut plan: SweepPlan,
        programs: Vec<Option<Arc<Path>>>,
        state: StateDir,
        options: &RunOptions,
        started_at: String,
        (from, fates): (Option<String>, Vec<carry::Fate>),
    ) -> Result<Sweep, StateError> {
        let run_id = plan.run_id.clone();
        let run_dir = state.run_dir(&run_id);
        state::ensure_dir(&run_dir)?;
        state::write_state(
            &run_dir.join("manifest.yaml"),
            loaded.source.text.as_bytes(),
        )?;
        let redactor = Arc::new(super::scrub::run_redactor(&plan));
        let count = plan.tasks.len();
        // Each record is boxed as it is made, and what an earlier run
        // brings is kept only for the tasks it brings something for: at
        // 50,000 tasks, a vector of records beside the slots they move into
        // was the run's largest moment (about 60 MB).
        let mut records: Vec<Box<TaskRecord>> = Vec::with_capacity(count);
        let mut taken_up: HashMap<usize, (Earlier, Option<FindingsReader>)> = HashMap::new();
        let mut seen_questions = HashSet::new();
        let mut take_up = |index: usize, record: &TaskRecord, fate: &carry::Fate, dir: &Path| {
            let (taken, on_record) = Earlier::take_up(record, fate, dir);
            taken_up.insert(index, (taken, on_record.findings));
            seen_questions.extend(on_record.questions.into_iter().map(|seq| (index, seq)));
        };
        let mut fresh = Vec::new();
        let shared_run_id: Arc<str> = Arc::from(run_id.as_str());
        for (index, task) in plan.tasks.iter().enumerate() {
            let fate = &fates[index];
            match fate {
                carry::Fate::Kept { record } => {
                    records.push(record.clone());
                    continue;
                }
                carry::Fate::Resumed { record } => {
                    let mut record = record.clone();
                    carry::resume_in_place(&state, &mut record)?;
                    take_up(index, &record, fate, Path::new(task.paths.task_dir()));
                    records.push(record);
                    continue;
                }
                _ => {}
            }
            if let (Some(from), carry::Fate::Carried { .. } | carry::Fate::Continued { .. }) =
                (&from, fate)
            {
                if let Some(record) = carry::install(&state, fate, &run_id, from)? {
                    take_up(index, &record, fate, Path::new(task.paths.task_dir()));
                    records.push(Box::new(record));
                    continue;
                }
            }
            let mut record = new_record(task, &shared_run_id, &redactor);
            let (Some(from), carry::Fate::Restarted { .. }) = (&from, fate) else {
                // A fresh task's folder: written below, with the others.
                fresh.push(index);
                records.push(Box::new(record));
                continue;
            };
            let dir = write_task_folder(&state, None, task, &record)?;
            if let Some(earlier_record) = carry::install(&state, fate, &run_id, from)? {
                take_up(index, &earlier_record, fate, &dir);
                record.attempts = earlier_record.attempts;
                record.usage = earlier_record.usage;
                record.findings = earlier_record.findings;
                record.questions = earlier_record.questions;
                state::write_json(&dir.join("task.json"), &record)?;
            }
            records.push(Box::new(record));
        }
        // Fresh folders are written on a thread of their own, in schedule
        // order, while the first workers run (see `folders.rs`).
        let task_folders = super::folders::Folders::start(
            state.clone(),
            shared_run_id,
            redactor.clone(),
            plan.tasks.clone(),
            fresh,
        );
        let run_record = RunRecord {
            run_id: run_id.clone(),
            name: plan.name.clone(),
            manifest: plan.manifest.clone(),
            manifest_path: super::start::manifest_path(loaded),
            root: state.root.display().to_string(),
            pid: std::process::id(),
            pid_start_time: crate::supervise::procfs::start_time(std::process::id()),
            started_at,
            ended_at: None,
            concurrency: plan.concurrency,
            vars: super::start::recorded_vars(&options.vars, &plan, &redactor),
            tasks: plan.tasks.iter().map(|t| t.id.clone()).collect(),
            status: RunStatus::Running,
            exit_code: None,
            escalations: Vec::new(),
            secrets: plan.secrets.clone(),
            manifest_dir: std::fs::canonicalize(&loaded.dir)
                .unwrap_or_else(|_| loaded.dir.clone())
                .display()
                .to_string(),
            reports: loaded.manifest.reports.clone(),
            merge_readiness: None,
            continues: from.clone().filter(|from| *from != run_id),
            resumed_at: Vec::new(),
            shard: None,
            budget: plan.budget.clone(),
            model_budgets: plan.model_budgets.clone(),
            attention_severity: Some(crate::events::attention::escalation_severity(
                &plan.escalation,
            )),
        };
        state::write_json(&run_dir.join("run.json"), &run_record)?;
        let writer = Writer::start();
        let log = state::open_append(&run_dir.join("events.jsonl")).ok();
        let mut labels = crate::events::screen::Labels::default();
        for task in &plan.tasks {
            labels.label(
                &task.id,
                task.model.as_ref().map(|m| m.name.as_str()),
                task.worktree.is_some(),
            );
        }
        let (hook_reports, hook_problems) = mpsc::unbounded_channel();
        let (prepared_tx, prepared_rx) = mpsc::unbounded_channel();
        let (settled_tx, settled_rx) = mpsc::unbounded_channel();
        let (staged_tx, staged_rx) = mpsc::unbounded_channel();
        let (plan_changes_tx, plan_changes_rx) = mpsc::unbounded_channel();
        let (usage_tx, usage_rx) = mpsc::unbounded_channel();
        let (identified_tx, identified_rx) = mpsc::unbounded_channel();
        let index_of: HashMap<String, usize> = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let tasks = std::mem::take(&mut plan.tasks);
        let slots = tasks
            .into_iter()
            .zip(records)
            .zip(programs)
            .zip(fates.iter().enumerate())
            .map(|(((task, record), program), (index, fate))| {
                let (earlier, findings) = taken_up.remove(&index).unwrap_or_default();
                let final_plan = match fate {
                    carry::Fate::Carried { .. } => {
                        monitor::read_plan(Path::new(&task.paths.plan()))
                    }
                    _ => Some(crate::domain::checklist::parse(&task.plan)),
                };
                let mut slot = TaskSlot::new(task, record, program, final_plan);
                slot.needs = slot
                    .task
                    .needs
                    .iter()
                    .map(|need| index_of.get(need).copied())
                    .collect();
                slot.caps = schedule::cap_names(&slot.task, &plan.caps);
                slot.earlier = earlier;
                slot.findings = findings.map(Box::new);
                slot
            })
            .collect();
        Ok(Sweep {
            name: plan.name.clone(),
            run_id,
            state,
            plan,
            slots,
            task_folders,
            prompter: None,
            spent: Default::default(),
            folder_watch: None,
            folders: HashMap::new(),
            seen_questions,
            pending: Vec::new(),
            warned_waiting: HashSet::new(),
            fired: Vec::new(),
            halted: None,
            interactive: options.interactive,
            prompted: None,
            hook_reports,
            hook_problems: Some(hook_problems),
            hook_tasks: Vec::new(),
            hook_timeout: options.hook_timeout,
            report_targets: report::write::Targets {
                junit: options.junit.clone(),
                dir: options.report_dir.clone(),
            },
            run_record,
            reporters: Reporters::new(
                &options.output,
                log.map(|file| (&writer, file)),
                labels,
                redactor.clone(),
            ),
            verbose: options.output.verbose,
            writer,
            plans: plans::PlanReader::start(plan_changes_tx),
            plan_changes: Some(plan_changes_rx),
            redactor,
            grace: options.grace,
            retry_delay: options.retry_delay,
            dispatch_bin: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "dispatch".to_owned()),
            checkout: Checkout::detect(),
            user_config: cli_home::UserConfig::from_env(),
            prepared_tx,
            prepared_rx: Some(prepared_rx),
            scheduler: schedule::Scheduler::default(),
            preparing: 0,
            settling: 0,
            running: HashSet::new(),
            usage_tx,
            usage_rx: Some(usage_rx),
            folder_waits: super::stage::FolderWaits::new(),
            identified_tx,
            identified_rx: Some(identified_rx),
            settled_tx,
            settled_rx: Some(settled_rx),
            staged_tx,
            staged_rx: Some(staged_rx),
            interrupted: 0,
            started: Instant::now(),
        })
    }

    /// Rewrite `run.json` (on the writer's thread).
    pub(super) fn save_run_record(&self) {
        let path = self.state.run_dir(&self.run_id).join("run.json");
        self.writer.replace_json(path, &self.run_record);
    }

    /// Record that this run was taken up again by `dispatch resume`.
    pub(super) fn mark_resumed(&mut self, earlier: &snapshot::Snapshot) {
        let now = clock::now();
        self.run_record.resumed_at = earlier.run.resumed_at.clone();
        self.run_record.resumed_at.push(now);
        self.save_run_record();
        let again = self
            .slots
            .iter()
            .filter(|s| !s.record.status.is_final())
            .count();
        self.emit(Event::RunResumed {
            run_id: self.run_id.clone(),
            tasks: again,
        });
    }
}

/// Write a task's folder for a new run: the earlier run's folder archived,
/// then `ipc/`, `plan.md`, `prompt.md` where the backend reads it,
/// `task.json` and an empty `worker.log`. Made inside `folders` when the
/// tasks folder is held open, else by its path. Returns the folder.
pub(super) fn write_task_folder(
    state: &StateDir,
    folders: Option<&state::TaskFolders>,
    task: &PlannedTask,
    record: &TaskRecord,
) -> Result<PathBuf, StateError> {
    let archive = || state.archive_task(&task.id);
    let dir = match folders {
        Some(folders) => folders.make_archiving(&task.id, archive)?,
        None => state::NewFolder::make_archiving(&state.task_dir(&task.id), archive)?,
    };
    dir.make_folder("ipc")?;
    dir.write("plan.md", task.plan.as_bytes())?;
    if task.prompt_via == PromptMode::File && !task.prompt.is_empty() {
        // The backend reads its prompt from this file (a plan that keeps
        // no prompt has it written at launch).
        dir.write("prompt.md", task.prompt.as_bytes())?;
    }
    dir.write_json("task.json", record)?;
    // The worker's log is opened with its first bytes, on the log thread:
    // made here, so a worker that prints nothing still has one.
    dir.create(crate::state::layout::WORKER_LOG)?;
    Ok(dir.path().to_path_buf())
}

/// The argv as a record shows it: the marker where the worker prompt goes
/// (as a plan without prompts has it), so a record reads the same however
/// its plan was built; secrets redacted.
fn recorded_argv(task: &PlannedTask, redactor: &Redactor) -> Vec<String> {
    let argv = task.argv_recorded.as_ref().unwrap_or(&task.argv);
    argv.iter()
        .map(|arg| {
            if !task.prompt.is_empty() && *arg == task.prompt {
                crate::plan::prompt::MARKER.to_owned()
            } else {
                redactor.redact(arg).into_owned()
            }
        })
        .collect()
}

pub(super) fn new_record(task: &PlannedTask, run_id: &Arc<str>, redactor: &Redactor) -> TaskRecord {
    let plan = crate::domain::checklist::parse(&task.plan);
    TaskRecord {
        id: task.id.clone(),
        run_id: Arc::clone(run_id),
        title: task.title.clone(),
        status: TaskStatus::Pending,
        reason: None,
        model: task.model.as_ref().map(|m| m.name.clone()),
        backend: task.backend.clone(),
        worktree: task.worktree.is_some(),
        branch: None,
        priority: task.priority.clone(),
        rank: task.rank,
        needs: task.needs.clone(),
        tags: task.tags.clone(),
        argv: recorded_argv(task, redactor),
        pid: None,
        pid_start_time: None,
        started_at: None,
        ended_at: None,
        duration_ms: None,
        exit: None,
        items: plan.counts(),
        current_item: plan.current().map(|i| i.text.clone()),
        usage: Default::default(),
        budget: task.budget.clone(),
        carried_from: None,
        outcome: None,
        findings: Vec::new(),
        questions: Vec::new(),
        attempts: Vec::new(),
        dropped: Vec::new(),
        unticked: Vec::new(),
        escalations: Vec::new(),
        strays: Vec::new(),
        last_activity: None,
        api_retry: None,
        sandboxed: task.sandbox.is_some(),
        env_left_out: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record shows the worker prompt as the marker, whether an argument
    /// is the prompt or holds it, and however the plan was built.
    #[test]
    fn a_recorded_argument_shows_the_marker_where_the_prompt_was() {
        let loaded = crate::manifest::parse(
            "one.yaml",
            "version: 1\ntasks:\n  a:\n    command: [./work.sh, '{{ prompt }}', 'prompt: {{ prompt }} (end)', '--key=sk-test-123456']\n    plan: [One]\n",
        )
        .expect("a valid manifest");
        let redactor = Redactor::new(
            [("MY_API_KEY".to_owned(), "sk-test-123456".to_owned())],
            &[],
        );
        for prompts in [crate::plan::Prompts::Render, crate::plan::Prompts::Lazy] {
            let options = crate::plan::PlanOptions {
                prompts,
                ..crate::plan::PlanOptions::default()
            };
            let plan = crate::plan::build(&loaded, &options).expect("plans");
            let record = new_record(&plan.tasks[0], &Arc::from("run"), &redactor);
            assert_eq!(
                record.argv,
                [
                    "./work.sh",
                    "<worker prompt>",
                    "prompt: <worker prompt> (end)",
                    "--key=[redacted MY_API_KEY]"
                ],
                "{prompts:?}"
            );
        }
    }
}
