//! `dispatch run`: write each task's plan, launch its worker when its turn
//! comes (at most `concurrency` at once, dependencies first, then
//! priority), watch the plans fill in, and end with a status per task and an
//! exit code a pipeline can act on.

pub mod budget;
pub mod cancel;
pub mod carry;
pub mod clean;
mod conversation;
mod isolation;
mod leftovers;
mod scrub;
pub mod signals;
mod start;
pub mod verdict;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::agents::cli_home;
use crate::agents::find_program;
use crate::agents::stream::Tracker;
use crate::domain::checklist::Checklist;
use crate::domain::exit::RunOutcome;
use crate::domain::redact::Redactor;
use crate::domain::status::{RunStatus, TaskStatus};
use crate::escalation::Fired;
use crate::events::reporter::{Output, Reporters};
use crate::events::Event;
use crate::ipc::findings::FindingsReader;
use crate::isolation::worktree::{Checkout, Created};
use crate::manifest::types::EventFormat;
use crate::manifest::types::PromptMode;
use crate::manifest::{self, Invalid, LoadedManifest};
use crate::plan::{self, PlanOptions, PlannedTask, SweepPlan};
use crate::record::snapshot;
use crate::record::{Attempt, RunRecord, TaskRecord};
use crate::report;
use crate::state::lock::{Holder, Lock};
use crate::state::plan_watch::{self as monitor, PlanWatch};
use crate::state::watch::FolderWatch;
use crate::state::{self, StateDir, StateError};
use crate::supervise::process::{self, Finished, Launch, SpawnError, Stop};
use crate::util::clock;

/// How often running tasks' plans are looked at.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Running tasks' questions and findings are looked at every this many
/// poll ticks (1 s): questions arrive by file-system events, so this is
/// only the fallback, and findings are live enough at a second.
const RUNNING_POLL_TICKS: u64 = 5;
/// How often a running task's `task.json` is rewritten for progress.
const PROGRESS_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long output pipes may stay open after a worker exits.
const LEAK_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of one run that do not come from the manifest.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub manifest: PathBuf,
    pub vars: Vec<(String, String)>,
    /// The project root holding `.dispatch/`; default: the git work tree
    /// around the current folder, or the current folder.
    pub root: Option<PathBuf>,
    pub concurrency: Option<u32>,
    /// Between SIGTERM and SIGKILL when a worker is stopped.
    pub grace: Duration,
    /// The first retry's back-off; each further retry doubles it.
    pub retry_delay: Duration,
    /// How the run is shown (terminal, CI, `--json`, GitHub Actions).
    pub output: Output,
    /// Ask the person at this terminal to answer questions no rule answers.
    pub interactive: bool,
    /// How long an escalation rule's `run:` hook may take.
    pub hook_timeout: Duration,
    /// `--junit PATH`: a copy of the JUnit file.
    pub junit: Option<PathBuf>,
    /// `--report-dir DIR`: copies of all three reports.
    pub report_dir: Option<PathBuf>,
    /// `--retry-failed RUN` / `--rerun TASK...`: rerun part of an earlier
    /// run and carry the rest over.
    pub carry: Option<carry::CarryOptions>,
    /// `dispatch resume [RUN]`: continue this run (`latest` for the
    /// latest) instead of starting one from `manifest`.
    pub resume: Option<String>,
    /// `--only`, `--skip`, `--tag`, `--shard`.
    pub selection: crate::plan::select::Selection,
}

/// Why a run could not start (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Carry(#[from] carry::CarryError),
    #[error("{0}")]
    Select(#[from] crate::plan::select::SelectError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// How a run ended.
#[derive(Debug)]
pub struct RunResult {
    pub run_id: String,
    pub exit_code: u8,
    pub records: Vec<TaskRecord>,
    /// Said instead of a run (nothing to resume).
    pub message: Option<String>,
}

/// Run a sweep to its end.
pub fn run(options: &RunOptions) -> Result<RunResult, RunError> {
    // One thread: the runner's work per worker is a few small steps (its
    // pipes, its exit, its files), and handing each between threads cost
    // more than doing it; it also leaves the other cores to the workers.
    // Slow work (worktrees, hooks) goes to the blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(run_async(options))
}

async fn run_async(options: &RunOptions) -> Result<RunResult, RunError> {
    let root = project_root(options)?;
    let state = StateDir::new(&root);
    // Warnings from before the run's event log exists, shown once it does.
    let mut notes = Vec::new();
    let resumed = match &options.resume {
        Some(run) => Some(start::resumable(&state, run, options.grace, &mut notes)?),
        None => None,
    };
    let (loaded, run_id, vars) = match &resumed {
        Some(earlier) => (
            start::manifest_of(&earlier.run)?,
            earlier.run.run_id.clone(),
            start::resume_vars(&earlier.run, &options.vars)?,
        ),
        None => (
            manifest::load_with_user_config(&options.manifest)?,
            clock::new_run_id(),
            options.vars.clone(),
        ),
    };
    // What run.json records are the vars this run renders with.
    let options = &RunOptions {
        vars: vars.clone(),
        ..options.clone()
    };
    let mut sweep_plan = plan::build(
        &loaded,
        &PlanOptions {
            vars,
            run_id: run_id.clone(),
            root: Some(root.clone()),
        },
    )?;
    if let Some(concurrency) = options.concurrency {
        sweep_plan.concurrency = concurrency;
    }
    let fd_note = crate::supervise::limits::fit_concurrency(
        &mut sweep_plan.concurrency,
        sweep_plan.tasks.len(),
    );
    let carried = match (&resumed, &options.carry) {
        (Some(earlier), _) => Some((run_id.clone(), carry::resume_fates(&sweep_plan, earlier))),
        (None, Some(how)) => Some(carry::decide(
            &state,
            &sweep_plan,
            how,
            options.grace,
            &mut notes,
        )?),
        (None, None) => None,
    };
    let mut fates: Vec<carry::Fate> = match &carried {
        Some((_, fates)) => fates.clone(),
        None => vec![carry::Fate::Fresh; sweep_plan.tasks.len()],
    };
    let shard = options
        .selection
        .shard
        .as_ref()
        .map(|shard| crate::plan::shard::ShardInfo::of(&sweep_plan, shard));
    if !options.selection.is_empty() {
        start::select_tasks(&options.selection, &mut sweep_plan, &mut fates)?;
    }
    if let Some(earlier) = &resumed {
        if !fates.iter().any(carry::Fate::runs) {
            return Ok(start::nothing_to_resume(earlier));
        }
    }
    let programs = preflight(&loaded, &sweep_plan, &fates)?;
    let worktree_notes = isolation::preflight(&loaded, &sweep_plan, &root, &fates)?;
    state.prepare()?;
    let started_at = clock::now();
    let lock = Lock::acquire(
        &state,
        &Holder {
            pid: std::process::id(),
            run_id: run_id.clone(),
            started_at: started_at.clone(),
        },
    )?;
    crate::supervise::reaper::become_subreaper();
    let from = carried.map(|(from, _)| from);
    let started_at = match &resumed {
        Some(earlier) => earlier.run.started_at.clone(),
        None => started_at,
    };
    let mut sweep = Sweep::prepare(
        &loaded,
        sweep_plan,
        programs,
        state,
        options,
        started_at,
        (from, fates),
    )?;
    if let Some(earlier) = &resumed {
        sweep.mark_resumed(earlier);
    }
    if shard.is_some() {
        sweep.run_record.shard = shard;
        sweep.save_run_record();
    }
    for note in notes.into_iter().chain(worktree_notes).chain(fd_note) {
        sweep.emit(Event::Warning {
            task: None,
            message: note,
        });
    }
    if let Some(old) = &lock.took_over {
        sweep.emit(Event::Warning {
            task: None,
            message: format!(
                "took over the lock left by run {} (pid {}), which is gone",
                old.run_id, old.pid
            ),
        });
    }
    let result = sweep.drive().await;
    drop(lock);
    Ok(result)
}

fn project_root(options: &RunOptions) -> Result<PathBuf, RunError> {
    let cwd = std::env::current_dir().map_err(|e| StateError::io(Path::new("."), e))?;
    let root = match &options.root {
        Some(root) => cwd.join(root),
        None => state::find_root(&cwd),
    };
    std::fs::canonicalize(&root).map_err(|e| RunError::State(StateError::io(&root, e)))
}

/// Every worker's program must exist before anything launches: finding out
/// after the first three tasks ran is too late.
fn preflight(
    loaded: &LoadedManifest,
    plan: &SweepPlan,
    fates: &[carry::Fate],
) -> Result<Vec<Option<PathBuf>>, Invalid> {
    let mut problems = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    let mut found: HashMap<&str, Option<PathBuf>> = HashMap::new();
    let mut programs = Vec::with_capacity(plan.tasks.len());
    for (task, fate) in plan.tasks.iter().zip(fates) {
        // A task carried over or kept from an earlier run does not run:
        // its CLI need not be here (a resume on another machine).
        let Some(program) = task.argv.first().filter(|_| fate.runs()) else {
            programs.push(None);
            continue;
        };
        let path = found
            .entry(program.as_str())
            .or_insert_with(|| find_program(program, Path::new(&task.paths.root)))
            .clone();
        programs.push(path.clone());
        if path.is_some() || reported.contains(&program.as_str()) {
            continue;
        }
        reported.push(program);
        let mut d = loaded.error_at_key(
            &["tasks", task.source_id.as_str()],
            format!(
                "backend \"{}\" needs the \"{program}\" command, which is not on PATH",
                task.backend
            ),
        );
        d = match &task.model {
            Some(model) => d.with_help(format!(
                "install {}, or map model \"{}\" to another backend under `models:`",
                install_hint(&task.backend),
                model.name
            )),
            None => d.with_help(format!("install `{program}`, or fix the task's `command:`")),
        };
        problems.push(d);
    }
    if problems.is_empty() {
        Ok(programs)
    } else {
        Err(Invalid(problems))
    }
}

fn install_hint(backend: &str) -> &'static str {
    match backend {
        "claude" => "Claude Code",
        "codex" => "the Codex CLI",
        "gemini" => "Gemini CLI",
        "cursor" => "Cursor's agent CLI",
        "opencode" => "opencode",
        "aider" => "aider",
        _ => "the program",
    }
}

/// What a finished worker future hands back.
struct WorkerEnd {
    index: usize,
    attempt: u32,
    finished: Result<Finished, SpawnError>,
    tracker: Tracker,
}

/// A worker's usage changed (read from its event stream).
struct UsageUpdate {
    index: usize,
    usage: crate::agents::stream::Usage,
}

/// The state of one run in progress.
struct Sweep {
    name: String,
    run_id: String,
    state: StateDir,
    plan: SweepPlan,
    /// Each task's program, found on `PATH` once before the run.
    programs: Vec<Option<PathBuf>>,
    records: Vec<TaskRecord>,
    watches: Vec<Option<PlanWatch>>,
    stops: Vec<Option<watch::Sender<Stop>>>,
    retry_at: Vec<Option<Instant>>,
    /// Each task's plan as it last read it (for the reports); the planned
    /// one for tasks that never ran.
    final_plans: Vec<Option<Checklist>>,
    /// Records changed since they were last written, and when that was.
    unsaved: Vec<bool>,
    saved_at: Vec<Instant>,
    /// Why a worker was stopped for its budget.
    over_budget: Vec<Option<String>>,
    /// Why the sweep's budget stopped new launches.
    sweep_spent: Option<String>,
    /// Models whose budget is spent (no new task on them starts), and why.
    model_spent: HashMap<String, String>,
    /// Watched task folders and `ipc/` folders, and whose they are.
    folder_watch: Option<FolderWatch>,
    folders: HashMap<PathBuf, usize>,
    findings: Vec<Option<FindingsReader>>,
    seen_questions: HashSet<(usize, u32)>,
    /// Questions no rule answered, most urgent first.
    pending: Vec<conversation::Pending>,
    warned_waiting: HashSet<(usize, u32)>,
    /// A status the runner decided for a worker it stopped (an unanswered
    /// question, an escalation's cancel).
    ended_by: Vec<Option<(TaskStatus, String)>>,
    fired: Vec<Fired>,
    /// The escalation rule that halted the sweep.
    halted: Option<String>,
    interactive: bool,
    /// The question shown to the person at this terminal.
    prompted: Option<(usize, u32)>,
    hook_reports: mpsc::UnboundedSender<String>,
    hook_problems: Option<mpsc::UnboundedReceiver<String>>,
    /// Hooks still running; the run waits for them (each is bounded by the
    /// hook timeout) before it concludes.
    hook_tasks: Vec<tokio::task::JoinHandle<()>>,
    hook_timeout: Duration,
    index_of: HashMap<String, usize>,
    run_record: RunRecord,
    /// Every output: the engine's one way out.
    reporters: Reporters,
    verbose: bool,
    redactor: Arc<Redactor>,
    grace: Duration,
    retry_delay: Duration,
    /// Extra places for the reports, from the command line.
    report_targets: report::write::Targets,
    dispatch_bin: String,
    /// How worktrees are checked out (`git`, or libgit2 without it).
    checkout: Checkout,
    /// Where the user's own CLI configuration is, for the logins carried
    /// into private config folders.
    user_config: cli_home::UserConfig,
    /// Each worktree task's worktree, once made.
    worktrees: Vec<Option<Created>>,
    /// Tasks whose worktree is being made (they hold a worker slot).
    preparing: Vec<bool>,
    /// What tasks rerun from an earlier run bring with them.
    earlier: start::Earlier,
    prepared_tx: mpsc::UnboundedSender<isolation::Prepared>,
    prepared_rx: Option<mpsc::UnboundedReceiver<isolation::Prepared>>,
    /// Worktree tasks whose branch is being settled on a blocking thread;
    /// what needs them waits.
    settling: Vec<bool>,
    /// Every task before this index has left `pending` for good (a retry
    /// moves it back), so the scheduling pass starts here: in a large
    /// sweep most passes would otherwise walk past finished tasks.
    scan_from: usize,
    settled_tx: mpsc::UnboundedSender<isolation::Settled>,
    settled_rx: Option<mpsc::UnboundedReceiver<isolation::Settled>>,
    interrupted: u32,
    started: Instant,
}

impl Sweep {
    /// Archive an earlier run's task folders, write every plan and the run's
    /// record, and open its event log.
    fn prepare(
        loaded: &LoadedManifest,
        plan: SweepPlan,
        programs: Vec<Option<PathBuf>>,
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
        let redactor = Arc::new(scrub::run_redactor(&plan));
        let count = plan.tasks.len();
        let mut records = Vec::with_capacity(count);
        let mut earlier = start::Earlier::new(count);
        let mut fresh = Vec::new();
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
                    earlier.take_up(index, &record, fate, Path::new(&task.paths.task_dir));
                    records.push(record);
                    continue;
                }
                _ => {}
            }
            if let (Some(from), carry::Fate::Carried { .. } | carry::Fate::Continued { .. }) =
                (&from, fate)
            {
                if let Some(record) = carry::install(&state, fate, &run_id, from)? {
                    earlier.take_up(index, &record, fate, Path::new(&task.paths.task_dir));
                    records.push(record);
                    continue;
                }
            }
            let mut record = new_record(task, &run_id, &redactor);
            let (Some(from), carry::Fate::Restarted { .. }) = (&from, fate) else {
                // A fresh task's folder: written below, with the others.
                fresh.push(index);
                records.push(record);
                continue;
            };
            let dir = write_task_folder(&state, task, &record)?;
            if let Some(earlier_record) = carry::install(&state, fate, &run_id, from)? {
                earlier.take_up(index, &earlier_record, fate, &dir);
                record.attempts = earlier_record.attempts;
                record.usage = earlier_record.usage;
                record.findings = earlier_record.findings;
                record.questions = earlier_record.questions;
                state::write_json(&dir.join("task.json"), &record)?;
            }
            records.push(record);
        }
        write_task_folders(&state, &plan.tasks, &records, &fresh)?;
        let run_record = RunRecord {
            run_id: run_id.clone(),
            name: plan.name.clone(),
            manifest: plan.manifest.clone(),
            root: state.root.display().to_string(),
            pid: std::process::id(),
            pid_start_time: crate::supervise::procfs::start_time(std::process::id()),
            started_at,
            ended_at: None,
            concurrency: plan.concurrency,
            vars: start::recorded_vars(&options.vars, &plan, &redactor),
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
        let final_plans = plan
            .tasks
            .iter()
            .zip(&fates)
            .map(|(t, fate)| match fate {
                carry::Fate::Carried { .. } => monitor::read_plan(Path::new(&t.paths.plan)),
                _ => Some(crate::domain::checklist::parse(&t.plan)),
            })
            .collect();
        Ok(Sweep {
            name: plan.name.clone(),
            index_of: plan
                .tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), i))
                .collect(),
            run_id,
            state,
            plan,
            programs,
            records,
            watches: (0..count).map(|_| None).collect(),
            stops: (0..count).map(|_| None).collect(),
            retry_at: vec![None; count],
            final_plans,
            unsaved: vec![false; count],
            saved_at: vec![Instant::now(); count],
            over_budget: vec![None; count],
            sweep_spent: None,
            model_spent: HashMap::new(),
            folder_watch: None,
            folders: HashMap::new(),
            findings: std::mem::take(&mut earlier.findings),
            seen_questions: std::mem::take(&mut earlier.seen_questions),
            pending: Vec::new(),
            warned_waiting: HashSet::new(),
            ended_by: vec![None; count],
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
            reporters: Reporters::new(&options.output, log, labels, redactor.clone()),
            verbose: options.output.verbose,
            redactor,
            grace: options.grace,
            retry_delay: options.retry_delay,
            dispatch_bin: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "dispatch".to_owned()),
            checkout: Checkout::detect(),
            user_config: cli_home::UserConfig::from_env(),
            worktrees: vec![None; count],
            preparing: vec![false; count],
            earlier,
            prepared_tx,
            prepared_rx: Some(prepared_rx),
            settling: vec![false; count],
            scan_from: 0,
            settled_tx,
            settled_rx: Some(settled_rx),
            interrupted: 0,
            started: Instant::now(),
        })
    }

    fn save_run_record(&mut self) {
        let path = self.state.run_dir(&self.run_id).join("run.json");
        if let Err(e) = state::write_json(&path, &self.run_record) {
            self.warn_run(format!("cannot update {}: {e}", path.display()));
        }
    }

    /// A warning for the run as a whole.
    fn warn_run(&mut self, message: String) {
        self.emit(Event::Warning {
            task: None,
            message,
        });
    }

    /// Record that this run was taken up again by `dispatch resume`.
    fn mark_resumed(&mut self, earlier: &snapshot::Snapshot) {
        let now = clock::now();
        self.run_record.resumed_at = earlier.run.resumed_at.clone();
        self.run_record.resumed_at.push(now);
        self.save_run_record();
        let again = self.records.iter().filter(|r| !r.status.is_final()).count();
        self.emit(Event::RunResumed {
            run_id: self.run_id.clone(),
            tasks: again,
        });
    }

    fn emit(&mut self, event: Event) {
        self.reporters.emit(event);
    }

    /// Mark a record changed; progress is written at most once a second per
    /// task (start and end are written at once). Every rewrite of a state
    /// file costs a new inode, which adds up on ext4 in a large sweep.
    fn save_soon(&mut self, index: usize) {
        self.unsaved[index] = true;
    }

    /// Write the records changed more than a second after their last save.
    fn flush_progress(&mut self) {
        let now = Instant::now();
        for index in 0..self.records.len() {
            if self.unsaved[index]
                && now.duration_since(self.saved_at[index]) >= PROGRESS_SAVE_INTERVAL
            {
                self.save(index);
            }
        }
    }

    fn save(&mut self, index: usize) {
        self.unsaved[index] = false;
        self.saved_at[index] = Instant::now();
        self.redactor.scrub_in_place(&mut self.records[index]);
        let record = &self.records[index];
        let path = self.state.task_dir(&record.id).join("task.json");
        if let Err(e) = state::write_json(&path, record) {
            self.warn_run(format!("cannot update {}: {e}", path.display()));
        }
    }

    async fn drive(mut self) -> RunResult {
        let concurrency = self.plan.concurrency.max(1) as usize;
        self.emit(Event::RunStarted {
            run_id: self.run_id.clone(),
            name: self.name.clone(),
            manifest: self.plan.manifest.clone(),
            tasks: self.plan.tasks.len(),
            concurrency: self.plan.concurrency,
        });
        self.warn_left_out();
        for index in 0..self.records.len() {
            if let Some(from_run) = self.records[index].carried_from.clone() {
                self.emit(Event::TaskCarried {
                    task: self.records[index].id.clone(),
                    status: self.records[index].status,
                    from_run,
                });
            }
        }
        let mut workers: JoinSet<WorkerEnd> = JoinSet::new();
        let (usage_tx, mut usage_rx) = mpsc::unbounded_channel::<UsageUpdate>();
        let mut interrupts = signals::interrupts();
        let mut cancels = cancel_signals();
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (folder_watch, mut folder_changes) = FolderWatch::new();
        self.folder_watch = Some(folder_watch);
        let mut hook_problems = self
            .hook_problems
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let mut prepared = self
            .prepared_rx
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let mut settled = self
            .settled_rx
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let mut ticks: u64 = 0;
        let mut typed = if self.interactive {
            conversation::stdin_lines()
        } else {
            mpsc::unbounded_channel().1
        };
        loop {
            self.start_ready(&mut workers, &usage_tx, concurrency);
            if workers.is_empty()
                && !self.preparing.contains(&true)
                && !self.settling.contains(&true)
            {
                match self.next_retry() {
                    Some(at) if self.interrupted == 0 => {
                        tokio::select! {
                            _ = tokio::time::sleep_until(at.into()) => continue,
                            _ = interrupts.recv() => { self.interrupt(); continue; }
                        }
                    }
                    _ => break,
                }
            }
            tokio::select! {
                // Usage is counted before the worker's end is handled.
                biased;
                Some(update) = usage_rx.recv() => self.usage_changed(update),
                Some(joined) = workers.join_next() => {
                    if let Ok(end) = joined {
                        self.finish(end);
                    }
                }
                Some(done) = settled.recv() => self.settled(done),
                Some(ready) = prepared.recv() => {
                    let index = ready.index;
                    if self.worktree_prepared(ready) {
                        self.launch(index, &mut workers, &usage_tx);
                    }
                }
                Some(folder) = folder_changes.recv() => {
                    // One look per folder for a burst of events (a question
                    // is a create, a write and a rename).
                    let mut folders = vec![folder];
                    while let Ok(more) = folder_changes.try_recv() {
                        if !folders.contains(&more) {
                            folders.push(more);
                        }
                    }
                    for folder in folders {
                        self.folder_changed(folder);
                    }
                }
                _ = ticker.tick() => {
                    self.poll_plans();
                    ticks += 1;
                    if ticks % RUNNING_POLL_TICKS == 0 {
                        self.poll_running();
                    }
                    self.question_deadlines();
                    self.flush_progress();
                }
                Some(problem) = hook_problems.recv() => self.emit(Event::Warning { task: None, message: problem }),
                Some(line) = typed.recv() => self.typed(line),
                _ = interrupts.recv() => self.interrupt(),
                Some(()) = cancels.recv() => self.cancel_requested(),
            }
        }
        // Nothing is launched any more, so nothing is watched.
        if let Some(folder_watch) = self.folder_watch.take() {
            folder_watch.close().await;
        }
        for hook in std::mem::take(&mut self.hook_tasks) {
            let _ = hook.await;
        }
        while let Ok(problem) = hook_problems.try_recv() {
            self.emit(Event::Warning {
                task: None,
                message: problem,
            });
        }
        self.stop_leftovers().await;
        self.conclude()
    }

    /// Start ready tasks in schedule order while there is room; skip those
    /// whose needs can no longer complete.
    fn start_ready(
        &mut self,
        workers: &mut JoinSet<WorkerEnd>,
        usage: &mpsc::UnboundedSender<UsageUpdate>,
        concurrency: usize,
    ) {
        // Counted once: a launch takes one slot, whether it spawns the
        // worker or first makes its worktree. Counting again per candidate
        // made every pass quadratic in the sweep's size.
        let mut busy = workers.len() + self.preparing.iter().filter(|p| **p).count();
        if busy >= concurrency {
            // Full: nothing can start. Skips wait for a free slot (at the
            // latest when every worker has ended).
            return;
        }
        if self.interrupted > 0 || self.sweep_spent.is_some() || self.halted.is_some() {
            // Nothing starts, and nothing is skipped: what never ran is
            // cancelled when the run concludes.
            return;
        }
        let now = Instant::now();
        let mut in_use = self.cap_usage();
        let count = self.plan.tasks.len();
        while self.scan_from < count && self.records[self.scan_from].status != TaskStatus::Pending {
            self.scan_from += 1;
        }
        for index in self.scan_from..count {
            if self.records[index].status != TaskStatus::Pending
                || self.preparing[index]
                || self.model_budget_spent(index).is_some()
            {
                continue;
            }
            if let Some(reason) = self.blocked_by(index) {
                self.skip(index, reason);
                continue;
            }
            // A need's branch must be settled too: a stage that starts
            // from it must see the commit dispatch makes for it.
            let ready = self.plan.tasks[index].needs.iter().all(|need| {
                self.index_of.get(need).is_some_and(|&n| {
                    self.records[n].status == TaskStatus::Complete && !self.settling[n]
                })
            });
            let waiting_retry = self.retry_at[index].is_some_and(|at| at > now);
            if !ready || waiting_retry || self.capped(index, &in_use) {
                continue;
            }
            for name in self.cap_names(index) {
                *in_use.entry(name).or_default() += 1;
            }
            self.launch(index, workers, usage);
            busy += 1;
            if busy >= concurrency {
                // Full: the rest of the schedule waits for a free slot, as
                // above. Looking on would make every pass walk every
                // pending task, which is quadratic in the sweep's size.
                break;
            }
        }
    }

    /// The capped backend and model names a task counts against.
    fn cap_names(&self, index: usize) -> Vec<String> {
        let task = &self.plan.tasks[index];
        [
            Some(task.backend.as_str()),
            task.model.as_ref().map(|m| m.name.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter(|name| self.plan.caps.contains_key(*name))
        .map(str::to_owned)
        .collect()
    }

    /// How many workers run (or have their worktree made) per capped name,
    /// counted once per scheduling pass rather than once per task.
    fn cap_usage(&self) -> HashMap<String, usize> {
        let mut in_use = HashMap::new();
        if self.plan.caps.is_empty() {
            return in_use;
        }
        for index in 0..self.plan.tasks.len() {
            if self.records[index].status == TaskStatus::Running || self.preparing[index] {
                for name in self.cap_names(index) {
                    *in_use.entry(name).or_default() += 1;
                }
            }
        }
        in_use
    }

    /// Whether a cap of its backend or model is full. A capped task waits;
    /// the next one in schedule order may start in its place.
    fn capped(&self, index: usize, in_use: &HashMap<String, usize>) -> bool {
        self.cap_names(index).iter().any(|name| {
            self.plan
                .caps
                .get(name)
                .is_some_and(|&cap| in_use.get(name).copied().unwrap_or(0) >= cap as usize)
        })
    }

    /// Why a pending task can never start: a need that ended other than
    /// complete.
    fn blocked_by(&self, index: usize) -> Option<String> {
        self.plan.tasks[index].needs.iter().find_map(|need| {
            let status = self.index_of.get(need).map(|&n| self.records[n].status)?;
            (status.is_final() && status != TaskStatus::Complete)
                .then(|| format!("needs {need}, which ended {}", status.label()))
        })
    }

    fn skip(&mut self, index: usize, reason: String) {
        let record = &mut self.records[index];
        record.status = TaskStatus::Skipped;
        record.reason = Some(reason.clone());
        record.ended_at = Some(clock::now());
        self.save(index);
        self.emit(Event::TaskSkipped {
            task: self.plan.tasks[index].id.clone(),
            reason,
        });
        self.escalate_end(index, TaskStatus::Skipped);
    }

    /// End a task that could not be launched at all.
    fn fail_unlaunched(&mut self, index: usize, reason: String) {
        self.end_unlaunched(index, TaskStatus::Failed, reason);
    }

    /// End a task that never launched, as `status`.
    fn end_unlaunched(&mut self, index: usize, status: TaskStatus, reason: String) {
        let record = &mut self.records[index];
        record.status = status;
        record.reason = Some(reason.clone());
        record.ended_at = Some(clock::now());
        let counts = record.items;
        self.save(index);
        self.emit(Event::TaskEnded {
            task: self.plan.tasks[index].id.clone(),
            status,
            reason,
            done: counts.done,
            total: counts.total,
            duration_ms: 0,
            attempt: 0,
            retrying: false,
        });
    }

    fn next_retry(&self) -> Option<Instant> {
        (0..self.plan.tasks.len())
            .filter(|&i| self.records[i].status == TaskStatus::Pending)
            .filter_map(|i| self.retry_at[i])
            .min()
    }

    fn launch(
        &mut self,
        index: usize,
        workers: &mut JoinSet<WorkerEnd>,
        usage: &mpsc::UnboundedSender<UsageUpdate>,
    ) {
        if self.needs_worktree(index) {
            // The worker launches once its worktree is ready.
            let ready = self.prepared_tx.clone();
            self.prepare_worktree(index, &ready);
            return;
        }
        let task = self.plan.tasks[index].clone();
        let attempt = self.records[index].attempts.len() as u32 + 1;
        let first_here = attempt == self.earlier.attempts[index] + 1;
        let fresh = first_here && !self.earlier.continued[index];
        let prompt = if fresh {
            task.prompt.clone()
        } else {
            retry_prompt(&task, attempt, &self.records[index])
        };
        if !fresh && task.prompt_via == PromptMode::File {
            let path = PathBuf::from(&task.paths.prompt);
            if let Err(e) = state::write_state(&path, prompt.as_bytes()) {
                self.emit(Event::Warning {
                    task: Some(task.id.clone()),
                    message: e.to_string(),
                });
            }
        }
        let mut argv: Vec<String> = task
            .argv
            .iter()
            .map(|a| {
                if *a == task.prompt {
                    prompt.clone()
                } else {
                    a.clone()
                }
            })
            .collect();
        if let (Some(first), Some(path)) = (argv.first_mut(), &self.programs[index]) {
            *first = path.display().to_string();
        }
        let redactor = Arc::new(self.redactor.with(task.env.iter(), &self.plan.secrets));
        let (cli_env, cli_failure) = match &task.cli_home {
            Some(home) => {
                match cli_home::prepare(&task.backend, Path::new(home), &self.user_config) {
                    Ok(env) => (env, None),
                    Err(e) => (Vec::new(), Some(SpawnError::CliHome(e))),
                }
            }
            None => (Vec::new(), None),
        };
        let launch = Launch {
            argv,
            env: self.worker_env(&task, cli_env),
            cwd: PathBuf::from(&task.paths.workdir),
            stdin: (task.prompt_via == PromptMode::Stdin).then(|| prompt.into_bytes()),
            log: PathBuf::from(&task.paths.task_dir).join("worker.log"),
            timeout: task.timeout.as_deref().and_then(manifest::duration::parse),
            grace: self.grace,
            leak_timeout: LEAK_TIMEOUT,
            redactor,
        };
        let task_dir = PathBuf::from(&task.paths.task_dir);
        let ipc_dir = PathBuf::from(&task.paths.ipc);
        // Questions need an answer at once, so `ipc/` is watched; findings
        // and plans are read on the regular poll, which is live enough and
        // saves a watch per task.
        if let Some(folder_watch) = self.folder_watch.as_mut() {
            folder_watch.watch(&ipc_dir);
        }
        self.folders.insert(ipc_dir, index);
        if self.findings[index].is_none() {
            self.findings[index] = Some(FindingsReader::new(task_dir.join("findings.jsonl")));
        }
        let (stop_tx, stop_rx) = watch::channel(Stop::No);
        self.stops[index] = Some(stop_tx);
        // The first attempt's plan is the one just written; a retry's is
        // whatever the earlier attempt left.
        let plan_now = if fresh {
            crate::domain::checklist::parse(&task.plan)
        } else {
            monitor::read_plan(Path::new(&task.paths.plan)).unwrap_or_default()
        };
        self.watches[index] = Some(PlanWatch::new(PathBuf::from(&task.paths.plan), plan_now));
        let record = &mut self.records[index];
        record.status = TaskStatus::Running;
        let now = clock::now();
        record.started_at.get_or_insert_with(|| now.clone());
        record.attempts.push(Attempt {
            number: attempt,
            started_at: now,
            ended_at: None,
            pid: None,
            exit: None,
            status: None,
            reason: None,
            duration_ms: None,
        });
        let format = task.events;
        let (lines, tracking) = track_usage(format, index, usage);
        // Started here, synchronously: workers start in the order the
        // schedule says, and their pid is recorded before anything else.
        let started = match cli_failure {
            Some(failure) => Err(failure),
            None => process::start(launch, lines),
        };
        match started {
            Ok(running) => {
                self.records[index].pid_start_time = running.start_time();
                self.mark_started(index, running.pid());
                workers.spawn(async move {
                    let finished = running.wait(stop_rx).await;
                    let tracker = match tracking {
                        Some(tracking) => tracking.await.unwrap_or_else(|_| Tracker::new(format)),
                        None => Tracker::new(format),
                    };
                    WorkerEnd {
                        index,
                        attempt,
                        finished: Ok(finished),
                        tracker,
                    }
                });
            }
            Err(e) => {
                if let Some(tracking) = tracking {
                    tracking.abort();
                }
                workers.spawn(async move {
                    WorkerEnd {
                        index,
                        attempt,
                        finished: Err(e),
                        tracker: Tracker::new(format),
                    }
                });
            }
        }
    }

    /// Say once per backend when its workers' private config folders leave
    /// out something of the user's configuration that the CLI may need to
    /// reach its model: without it a worker fails with the CLI's own login
    /// or network error, which does not point here.
    fn warn_left_out(&mut self) {
        let mut backends: Vec<String> = self
            .plan
            .tasks
            .iter()
            .zip(&self.records)
            .filter(|(task, record)| task.cli_home.is_some() && !record.status.is_final())
            .map(|(task, _)| task.backend.clone())
            .collect();
        backends.sort();
        backends.dedup();
        for backend in backends {
            let left_out = cli_home::left_out(&backend, &self.user_config);
            if !left_out.is_empty() {
                self.emit(Event::Warning {
                    task: None,
                    message: cli_home::left_out_warning(&left_out),
                });
            }
        }
    }

    /// The `DISPATCH_*` variables every worker gets, then those pointing
    /// its CLI at its private config folder, then the task's own (which
    /// win, so a sweep can still set `CLAUDE_CONFIG_DIR` itself).
    fn worker_env(
        &self,
        task: &PlannedTask,
        cli_env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            ("DISPATCH_RUN_ID".to_owned(), self.run_id.clone()),
            ("DISPATCH_TASK_ID".to_owned(), task.id.clone()),
            ("DISPATCH_TASK_DIR".to_owned(), task.paths.task_dir.clone()),
            ("DISPATCH_PLAN".to_owned(), task.paths.plan.clone()),
            ("DISPATCH_OUTPUT".to_owned(), task.paths.output.clone()),
            ("DISPATCH_IPC_DIR".to_owned(), task.paths.ipc.clone()),
            (
                "DISPATCH_MODEL".to_owned(),
                task.model
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
            ),
            ("DISPATCH_BIN".to_owned(), self.dispatch_bin.clone()),
            // As a shell sets it: CLIs such as opencode take their folder
            // from PWD, which would otherwise still name the folder
            // dispatch was started in, not the worker's worktree.
            ("PWD".to_owned(), task.paths.workdir.clone()),
        ];
        env.extend(cli_env);
        env.extend(task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    fn mark_started(&mut self, index: usize, pid: u32) {
        let task = &self.plan.tasks[index];
        let record = &mut self.records[index];
        record.pid = Some(pid);
        if let Some(attempt) = record.attempts.last_mut() {
            attempt.pid = Some(pid);
        }
        let event = Event::TaskStarted {
            task: task.id.clone(),
            attempt: record.attempts.len() as u32,
            model: task.model.as_ref().map(|m| m.name.clone()),
            backend: task.backend.clone(),
            worktree: task.worktree.is_some(),
            pid,
        };
        self.save(index);
        self.emit(event);
    }

    /// Report items that changed in running tasks' plans.
    fn poll_plans(&mut self) {
        for index in 0..self.plan.tasks.len() {
            let Some(watch) = self.watches[index].as_mut() else {
                continue;
            };
            let Some((before, now)) = watch.poll() else {
                continue;
            };
            self.plan_changed(index, &before, &now);
        }
    }

    /// The regular look at running tasks' questions and findings, for what
    /// file-system events missed.
    fn poll_running(&mut self) {
        for index in 0..self.plan.tasks.len() {
            if self.stops[index].is_some() {
                self.check_questions(index);
                self.read_findings(index);
            }
        }
    }

    fn plan_changed(&mut self, index: usize, before: &Checklist, now: &Checklist) {
        let counts = now.counts();
        let current = now.current().map(|i| i.text.clone());
        let task = self.plan.tasks[index].id.clone();
        let changed: Vec<Event> = now
            .changes_since(before)
            .into_iter()
            .map(|(i, item)| Event::Item {
                task: task.clone(),
                index: i,
                text: item.text.clone(),
                state: item.state,
                note: item.note.clone(),
                done: counts.done,
                total: counts.total,
                current: current.clone(),
            })
            .collect();
        let record = &mut self.records[index];
        record.items = counts;
        record.current_item = current;
        self.save_soon(index);
        for event in changed {
            self.emit(event);
        }
    }

    /// Record a worker's spend; stop it past its budget, and stop new
    /// launches past the sweep's.
    fn usage_changed(&mut self, update: UsageUpdate) {
        let index = update.index;
        self.records[index].usage = budget::total([&self.earlier.usage[index], &update.usage]);
        self.save_soon(index);
        let task = &self.plan.tasks[index];
        if self.over_budget[index].is_none() {
            let over = task
                .budget
                .as_ref()
                .and_then(|b| budget::exceeded(b, &self.records[index].usage));
            if let Some(reason) = over {
                if let Some(stop) = &self.stops[index] {
                    let _ = stop.send(Stop::Graceful);
                }
                let id = task.id.clone();
                self.over_budget[index] = Some(reason.clone());
                self.emit(Event::Warning {
                    task: Some(id),
                    message: format!("over budget ({reason}); stopping the worker"),
                });
            }
        }
        self.check_model_budget(index);
        if self.sweep_spent.is_none() {
            let spent = budget::total(self.records.iter().map(|r| &r.usage));
            if let Some(reason) = self
                .plan
                .budget
                .as_ref()
                .and_then(|b| budget::exceeded(b, &spent))
            {
                self.sweep_spent = Some(reason.clone());
                self.emit(Event::Warning {
                    task: None,
                    message: format!("the sweep's budget is spent ({reason}); no new task starts"),
                });
            }
        }
    }

    /// Once the tasks on a model have spent its budget together, no new
    /// task on it starts (running ones go on, within their own budgets).
    fn check_model_budget(&mut self, index: usize) {
        let Some(model) = self.plan.tasks[index]
            .model
            .as_ref()
            .map(|m| m.name.clone())
        else {
            return;
        };
        let Some(limit) = self.plan.model_budgets.get(&model) else {
            return;
        };
        if self.model_spent.contains_key(&model) {
            return;
        }
        let spent = budget::total(
            self.records
                .iter()
                .filter(|r| r.model.as_deref() == Some(model.as_str()))
                .map(|r| &r.usage),
        );
        if let Some(reason) = budget::exceeded(limit, &spent) {
            self.emit(Event::Warning {
                task: None,
                message: format!(
                    "model {model}'s budget is spent ({reason}); no new task on it starts"
                ),
            });
            self.model_spent.insert(model, reason);
        }
    }

    /// Why a task's model can start no more tasks, if it cannot.
    fn model_budget_spent(&self, index: usize) -> Option<(String, String)> {
        let model = self.plan.tasks[index].model.as_ref()?;
        let reason = self.model_spent.get(&model.name)?;
        Some((model.name.clone(), reason.clone()))
    }

    /// `dispatch cancel --task` left `ipc/.cancel` in some tasks: stop
    /// those running, and never start those pending.
    fn cancel_requested(&mut self) {
        for index in 0..self.plan.tasks.len() {
            let ipc = Path::new(&self.plan.tasks[index].paths.ipc);
            if self.records[index].status.is_final() || !cancel::requested(ipc) {
                continue;
            }
            let reason = "cancelled by `dispatch cancel`".to_owned();
            if self.stops[index].is_some() {
                if self.ended_by[index].is_none() {
                    self.ended_by[index] = Some((TaskStatus::Cancelled, reason));
                    self.stop(index);
                }
            } else if self.records[index].status == TaskStatus::Pending && !self.preparing[index] {
                self.end_unlaunched(index, TaskStatus::Cancelled, reason);
            }
        }
    }

    fn interrupt(&mut self) {
        self.interrupted += 1;
        let force = self.interrupted > 1;
        let request = if force { Stop::Now } else { Stop::Graceful };
        for stop in self.stops.iter().flatten() {
            let _ = stop.send(request);
        }
        self.emit(Event::Interrupted {
            force,
            signal: signals::latest_name(),
        });
    }

    fn finish(&mut self, end: WorkerEnd) {
        let index = end.index;
        let task = self.plan.tasks[index].clone();
        if let Ok(finished) = &end.finished {
            self.note_strays(index, &finished.strays);
        }
        self.check_questions(index);
        self.read_findings(index);
        self.stops[index] = None;
        // Looked at just above; a retry watches again when it launches.
        if let Some(folder_watch) = self.folder_watch.as_mut() {
            folder_watch.unwatch(Path::new(&task.paths.ipc));
        }
        if let Some(home) = &task.cli_home {
            cli_home::release(&task.backend, Path::new(home));
        }

        // Its questions can no longer be answered usefully.
        self.pending.retain(|p| p.index != index);
        if self.prompted.is_some_and(|(i, _)| i == index) {
            self.prompted = None;
        }
        let plan = match self.watches[index].take() {
            Some(watch) => {
                let (plan, change) = watch.last_look();
                if let Some((before, now)) = change {
                    self.plan_changed(index, &before, &now);
                }
                plan
            }
            None => monitor::read_plan(Path::new(&task.paths.plan)),
        };
        self.final_plans[index] = plan.clone();
        let (status, reason, finished) = match &end.finished {
            Ok(finished) => {
                let (status, reason) = verdict::decide(&verdict::Evidence {
                    finished,
                    plan: plan.as_ref(),
                    done_marker: crate::ipc::questions::all_done(Path::new(&task.paths.ipc)),
                    outcome: end.tracker.outcome.as_ref(),
                    events: task.events,
                });
                let reason = if finished.leaked {
                    format!("{reason} (a process it started held its output open and was killed)")
                } else {
                    reason
                };
                (status, reason, Some(finished.clone()))
            }
            Err(e) => (TaskStatus::Failed, e.to_string(), None),
        };
        let decided_by_runner = self.ended_by[index].take();
        let stopped_by_runner = decided_by_runner.is_some();
        let (status, reason) = match (self.over_budget[index].clone(), decided_by_runner) {
            (Some(why), _) => (TaskStatus::BudgetExceeded, why),
            (None, Some((status, why))) if self.interrupted == 0 => (status, why),
            _ => (status, reason),
        };
        let retrying = !stopped_by_runner
            && self.halted.is_none()
            && matches!(status, TaskStatus::Failed | TaskStatus::TimedOut)
            && end.attempt - self.earlier.attempts[index] <= task.retries
            && self.interrupted == 0;
        let duration = finished.as_ref().map_or(Duration::ZERO, |f| f.duration);
        let record = &mut self.records[index];
        if let Some(plan) = &plan {
            record.items = plan.counts();
            record.current_item = plan.current().map(|i| i.text.clone());
        }
        record.usage = budget::total([&self.earlier.usage[index], &end.tracker.usage]);
        record.outcome = end.tracker.outcome.clone();
        record.exit = finished.as_ref().map(|f| f.exit);
        record.reason = Some(reason.clone());
        let ended = clock::now();
        if let Some(attempt) = record.attempts.last_mut() {
            attempt.ended_at = Some(ended.clone());
            attempt.exit = record.exit;
            attempt.status = Some(status);
            attempt.reason = Some(reason.clone());
            attempt.duration_ms = Some(duration.as_millis() as u64);
        }
        if retrying {
            record.status = TaskStatus::Pending;
            self.scan_from = self.scan_from.min(index);
            let backoff = self
                .retry_delay
                .saturating_mul(1 << (end.attempt - 1).min(5));
            self.retry_at[index] = Some(Instant::now() + backoff);
        } else {
            record.status = status;
            record.ended_at = Some(ended);
            record.duration_ms = Some(record.attempts.iter().filter_map(|a| a.duration_ms).sum());
        }
        let counts = record.items;
        self.save(index);
        self.emit(Event::TaskEnded {
            task: task.id.clone(),
            status,
            reason,
            done: counts.done,
            total: counts.total,
            duration_ms: duration.as_millis() as u64,
            attempt: end.attempt,
            retrying,
        });
        if !retrying {
            self.settle_worktree(index, status);
            self.escalate_end(index, status);
        }
    }

    /// Tasks never started are cancelled (interrupted) or skipped; the run
    /// record, the last event and the summary are written; the exit code is
    /// decided.
    fn conclude(mut self) -> RunResult {
        for index in 0..self.plan.tasks.len() {
            if self.records[index].status == TaskStatus::Pending {
                let model_spent = self.model_budget_spent(index);
                let (status, reason) = match (&self.sweep_spent, self.interrupted) {
                    (_, 0) if model_spent.is_some() => {
                        let (model, why) = model_spent.unwrap_or_default();
                        (
                            TaskStatus::Skipped,
                            format!("not started: model {model}'s budget is spent ({why})"),
                        )
                    }
                    (_, 0) if self.halted.is_some() => (
                        TaskStatus::Skipped,
                        format!(
                            "not started: the sweep was halted by escalation rule {}",
                            self.halted.as_deref().unwrap_or_default()
                        ),
                    ),
                    (_, 1..) => (
                        TaskStatus::Cancelled,
                        "the run was interrupted before it started".to_owned(),
                    ),
                    (Some(spent), _) => (
                        TaskStatus::Skipped,
                        format!("not started: the sweep's budget is spent ({spent})"),
                    ),
                    (None, _) => (TaskStatus::Cancelled, "never started".to_owned()),
                };
                let record = &mut self.records[index];
                record.status = status;
                record.reason = Some(reason);
                record.ended_at = Some(clock::now());
                self.save(index);
            }
        }
        let outcome = RunOutcome::decide(
            self.interrupted > 0,
            crate::escalation::exit_code(&self.fired),
            self.records.iter().map(|r| r.status),
        );
        // 128 + the signal that stopped it: 129, 130 or 143.
        let exit_code = match outcome {
            RunOutcome::Interrupted => signals::exit_code(),
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
        for record in &self.records {
            *counts.entry(record.status.label().to_owned()).or_default() += 1;
        }
        self.run_record.ended_at = Some(clock::now());
        self.run_record.status = status;
        self.run_record.exit_code = Some(exit_code);
        let run_json = self.state.run_dir(&self.run_id).join("run.json");
        if let Err(e) = state::write_json(&run_json, &self.run_record) {
            self.warn_run(format!("cannot write {}: {e}", run_json.display()));
        }
        for index in 0..self.records.len() {
            if self.unsaved[index] {
                self.save(index);
            }
        }
        // The records go into the reports' snapshot and come back after:
        // a thousand tasks' records are worth moving, not copying.
        let snapshot = snapshot::Snapshot {
            run: self.run_record.clone(),
            live: false,
            orphaned: 0,
            tasks: std::mem::take(&mut self.records)
                .into_iter()
                .zip(std::mem::take(&mut self.final_plans))
                .map(|(record, plan)| snapshot::TaskView {
                    record,
                    plan,
                    waiting: Vec::new(),
                })
                .collect(),
        };
        let (markdown, problems) =
            report::write::after_run(&self.state, &snapshot, &self.report_targets, &self.redactor);
        self.records = snapshot.tasks.into_iter().map(|view| view.record).collect();
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
        self.reporters.finish(&crate::events::reporter::RunEnd {
            summary: crate::events::summary::Summary {
                name: &self.name,
                run_id: &self.run_id,
                records: &self.records,
                escalations: &escalations,
                duration,
                exit_code,
                severity,
                verbose: self.verbose,
            },
            markdown: &markdown,
        });
        RunResult {
            run_id: self.run_id,
            exit_code,
            records: self.records,
            message: None,
        }
    }
}

/// The worker's stdout lines go to a tracker, which sends usage as it
/// grows; the tracker is handed back when the output ends. A backend with
/// no event stream gets neither: its lines would only be counted.
fn track_usage(
    format: EventFormat,
    index: usize,
    usage: &mpsc::UnboundedSender<UsageUpdate>,
) -> (
    Option<mpsc::UnboundedSender<String>>,
    Option<tokio::task::JoinHandle<Tracker>>,
) {
    if format == EventFormat::None {
        return (None, None);
    }
    let usage = usage.clone();
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let tracking = tokio::spawn(async move {
        let mut tracker = Tracker::new(format);
        while let Some(line) = lines_rx.recv().await {
            let before = tracker.usage.clone();
            tracker.feed(&line);
            if tracker.usage != before {
                let _ = usage.send(UsageUpdate {
                    index,
                    usage: tracker.usage.clone(),
                });
            }
        }
        tracker
    });
    (Some(lines_tx), Some(tracking))
}

/// Write a task's folder for a new run: the earlier run's folder archived,
/// then `ipc/`, `plan.md`, `prompt.md` where the backend reads it, and
/// `task.json`. Returns the folder.
fn write_task_folder(
    state: &StateDir,
    task: &PlannedTask,
    record: &TaskRecord,
) -> Result<PathBuf, StateError> {
    let dir = state::NewFolder::make_archiving(&state.task_dir(&task.id), || {
        state.archive_task(&task.id)
    })?;
    dir.folder("ipc")?;
    dir.write("plan.md", task.plan.as_bytes())?;
    if task.prompt_via == PromptMode::File {
        // The backend reads its prompt from this file.
        dir.write("prompt.md", task.prompt.as_bytes())?;
    }
    dir.write_json("task.json", record)?;
    Ok(dir.path().to_path_buf())
}

/// The folders of the tasks at `indexes`, written by as many threads as
/// there are cores (up to four): a thousand-task sweep spends tens of
/// milliseconds here before its first worker can start, and the folders
/// are independent of each other.
fn write_task_folders(
    state: &StateDir,
    tasks: &[Arc<PlannedTask>],
    records: &[TaskRecord],
    indexes: &[usize],
) -> Result<(), StateError> {
    crate::util::parallel::map_chunks(indexes, |chunk| {
        chunk
            .iter()
            .try_for_each(|&i| write_task_folder(state, &tasks[i], &records[i]).map(drop))
    })
    .into_iter()
    .collect()
}

fn new_record(task: &PlannedTask, run_id: &str, redactor: &Redactor) -> TaskRecord {
    let plan = crate::domain::checklist::parse(&task.plan);
    TaskRecord {
        id: task.id.clone(),
        run_id: run_id.to_owned(),
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
        argv: task
            .argv
            .iter()
            .map(|a| {
                if *a == task.prompt {
                    "<worker prompt>".to_owned()
                } else {
                    redactor.redact(a).into_owned()
                }
            })
            .collect(),
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
        strays: Vec::new(),
    }
}

/// The prompt of a retry: the task's prompt, then where the earlier attempt
/// left off, as the dispatch skill's fallback does.
fn retry_prompt(task: &PlannedTask, attempt: u32, record: &TaskRecord) -> String {
    let why = record
        .reason
        .as_deref()
        .map(|r| format!(" The previous attempt ended: {r}."))
        .unwrap_or_default();
    let answers: String = record
        .questions
        .iter()
        .filter_map(|q| q.answer.as_ref().map(|a| format!("\n- {} → {a}", q.text)))
        .collect();
    let answers = if answers.is_empty() {
        String::new()
    } else {
        format!("\n\nAnswers you were given to your earlier questions:{answers}\n")
    };
    format!(
        "{}\n\n## This is attempt {attempt}\n\nAn earlier attempt of this task did not finish.{why} Your plan so far is in `{}`: items marked `[x]` are done, so do not redo them; continue from the first item that is not. Notes from the earlier attempt, if any, are in `{}`.{answers}\n",
        task.prompt.trim_end(),
        task.paths.plan,
        task.paths.context
    )
}

/// SIGUSR1: `dispatch cancel` asks the run to look for cancel requests.
fn cancel_signals() -> mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}
