//! `dispatch run`: write each task's plan, launch its worker when its turn
//! comes (at most `concurrency` at once, dependencies first, then
//! priority), watch the plans fill in, and end with a status per task and an
//! exit code a pipeline can act on.

pub mod budget;
pub mod cancel;
pub mod carry;
mod check_verdict;
mod checks;
pub mod clean;
mod conclude;
mod confine;
mod conversation;
mod finish;
mod folders;
mod footprint;
mod gaps;
mod interrupt;
mod isolation;
mod launch;
mod leftovers;
mod liveness;
mod plans;
mod prepare;
mod schedule;
mod scrub;
pub mod signals;
mod slot;
mod stage;
mod start;
pub mod verdict;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::agents::cli_home;
use crate::agents::find_program;
use crate::domain::redact::Redactor;
use crate::escalation::Fired;
use crate::events::reporter::{Output, Reporters};
use crate::events::Event;
use crate::isolation::worktree::Checkout;
use crate::manifest::{self, Invalid, LoadedManifest};
use crate::plan::{self, PlanOptions, SweepPlan};
use crate::record::{RunRecord, TaskRecord};
use crate::report;
use crate::state::lock::{Holder, Lock};
use crate::state::watch::FolderWatch;
use crate::state::writer::Writer;
use crate::state::{self, StateDir, StateError};
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
    pub records: Vec<Box<TaskRecord>>,
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
        .on_thread_start(crate::util::thread::leave_signals_to_others)
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
            start::manifest_of(&state, &earlier.run)?,
            earlier.run.run_id.clone(),
            start::resume_vars(&earlier.run, &options.vars)?,
        ),
        None => (
            manifest::load_with_user_config(&options.manifest)?,
            clock::new_run_id(),
            options.vars.clone(),
        ),
    };
    notes.extend(manifest::config_effects::effects(&loaded));
    // What run.json records are the vars this run renders with.
    let options = &RunOptions {
        vars: vars.clone(),
        ..options.clone()
    };
    // A wide sweep's prompts are rendered at each launch
    // (`Sweep::prompter`), not kept; a narrower one's with the plan.
    let plan_options = PlanOptions {
        vars,
        run_id: run_id.clone(),
        root: Some(root.clone()),
        prompts: plan::Prompts::RenderUpTo(plan::prompt::rendered_up_to()),
    };
    let mut sweep_plan = plan::build(&loaded, &plan_options)?;
    let loaded = Arc::new(loaded);
    let prompter = plan::prompt::Prompter::new(loaded.clone(), plan_options, &sweep_plan.tasks);
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
    let shard = options.selection.shard.as_ref().map(|shard| {
        let durations = options.selection.durations.as_ref();
        crate::plan::shard::ShardInfo::of(&sweep_plan, shard, durations)
    });
    if !options.selection.is_empty() {
        start::select_tasks(&options.selection, &mut sweep_plan, &mut fates)?;
    }
    if let Some(earlier) = &resumed {
        if !fates.iter().any(carry::Fate::runs) {
            return Ok(start::nothing_to_resume(&state, earlier));
        }
    }
    let programs = preflight(&loaded, &sweep_plan, &fates)?;
    let worktree_notes = isolation::preflight(&loaded, &sweep_plan, &root, &fates)?;
    confine::preflight(&loaded, &sweep_plan, &fates)?;
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
    let worktree_notes = [
        worktree_notes,
        isolation::make_way(&loaded, &sweep_plan, &root, &fates)?,
    ]
    .concat();
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
    sweep.prompter = Some(prompter);
    // The plan's rendering and the records' making leave freed memory in
    // the planning threads' arenas that the runner's thread never reuses.
    crate::util::memory::release_freed_in_run(sweep.slots.len());
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
) -> Result<Vec<Option<Arc<Path>>>, Invalid> {
    let mut problems = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    let mut found: HashMap<&str, Option<Arc<Path>>> = HashMap::new();
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
            .or_insert_with(|| find_program(program, Path::new(task.paths.root())).map(Arc::from))
            .clone();
        programs.push(path.clone());
        if path.is_some() || reported.contains(&program.as_str()) {
            continue;
        }
        reported.push(program);
        let mut d = loaded.error_at_key(
            &["tasks", &*task.source_id],
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

/// The state of one run in progress: one slot per task, and what the run
/// shares (the conversation, budgets, escalations, output).
struct Sweep {
    name: String,
    run_id: String,
    state: StateDir,
    /// The plan's sweep-wide settings; its tasks are in `slots`.
    plan: SweepPlan,
    slots: Vec<slot::TaskSlot>,
    /// New task folders, written in the background.
    task_folders: folders::Folders,
    /// Renders each task's worker prompt at its launch (the plan keeps
    /// none).
    prompter: Option<plan::prompt::Prompter>,
    /// Tasks making their worktree (each holds a worker slot), and tasks
    /// whose branch is being settled.
    preparing: usize,
    settling: usize,
    /// The tasks whose worker runs (a launch looks for a free lane among
    /// them, not among every task).
    running: HashSet<usize>,
    scheduler: schedule::Scheduler,
    spent: budget::Spent,
    /// Watched `ipc/` folders.
    folder_watch: Option<FolderWatch>,
    /// The running tasks' `ipc/` folders, and whose they are.
    folders: HashMap<PathBuf, usize>,
    seen_questions: HashSet<(usize, u32)>,
    /// Questions no rule answered, most urgent first.
    pending: Vec<conversation::Pending>,
    warned_waiting: HashSet<(usize, u32)>,
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
    run_record: RunRecord,
    /// State files are written on its thread, never on the runner's.
    writer: Writer,
    /// Running tasks' plans are read on its thread.
    plans: plans::PlanReader,
    plan_changes: Option<mpsc::UnboundedReceiver<plans::Read>>,
    usage_tx: mpsc::UnboundedSender<launch::UsageUpdate>,
    usage_rx: Option<mpsc::UnboundedReceiver<launch::UsageUpdate>>,
    /// Launches waiting for their task folder, written off this thread.
    folder_waits: stage::FolderWaits,
    /// Workers' start times, read off this thread after their launch.
    identified_tx: mpsc::UnboundedSender<launch::Identified>,
    identified_rx: Option<mpsc::UnboundedReceiver<launch::Identified>>,
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
    prepared_tx: mpsc::UnboundedSender<isolation::Prepared>,
    prepared_rx: Option<mpsc::UnboundedReceiver<isolation::Prepared>>,
    settled_tx: mpsc::UnboundedSender<isolation::Settled>,
    settled_rx: Option<mpsc::UnboundedReceiver<isolation::Settled>>,
    staged_tx: mpsc::UnboundedSender<stage::Staged>,
    staged_rx: Option<mpsc::UnboundedReceiver<stage::Staged>>,
    interrupted: u32,
    started: Instant,
}

/// Take a receiver the sweep made for its loop (an empty one if taken).
fn take<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> mpsc::UnboundedReceiver<T> {
    rx.take().unwrap_or_else(|| mpsc::unbounded_channel().1)
}

impl Sweep {
    fn emit(&mut self, event: Event) {
        self.reporters.emit(event);
    }

    /// Say what the state writer and the worker-log thread could not
    /// write, as warnings: they have no output of their own (see
    /// `state::writer`, `supervise::worker_log`).
    fn warn_unwritten(&mut self) {
        let problems = self.writer.problems();
        for problem in problems.into_iter().chain(crate::supervise::log_problems()) {
            self.emit(Event::Warning {
                task: None,
                message: problem,
            });
        }
    }

    /// Mark a record changed; progress is written at most once a second per
    /// task (start and end are written at once). Every rewrite of a state
    /// file costs a new inode, which adds up on ext4 in a large sweep.
    fn save_soon(&mut self, index: usize) {
        self.slots[index].unsaved = true;
    }

    /// Write the records changed more than a second after their last save.
    fn flush_progress(&mut self) {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.unsaved && now.duration_since(slot.saved_at) >= PROGRESS_SAVE_INTERVAL {
                self.save(index);
            }
        }
    }

    /// Write a task's record (on the writer's thread, or with its folder).
    fn save(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.unsaved = false;
        slot.saved_at = Instant::now();
        self.redactor.scrub_in_place(&mut *slot.record);
        let path = self.state.task_dir(&slot.record.id).join("task.json");
        let record = state::pretty_json(&slot.record);
        // A record is saved into its folder, which must exist and never be
        // written after it with the pending record: one not written yet
        // takes the record with it (written off this thread).
        let Err(record) = self.task_folders.hold(index, record) else {
            return;
        };
        if let folders::Look::Failed(e) = self.task_folders.look(index) {
            self.emit(Event::Warning {
                task: Some(self.slots[index].task.id.clone()),
                message: e.to_string(),
            });
        }
        self.writer.replace(path, record);
    }

    /// Whether nothing is running, being made or being settled.
    fn idle(&self, workers: &launch::Workers) -> bool {
        workers.is_empty() && self.preparing == 0 && self.settling == 0
    }

    /// The select loop: every source of work is a channel, a timer or a
    /// signal, and each arm hands its message to the part that deals with
    /// it. Nothing here reads or writes a file.
    async fn drive(mut self) -> RunResult {
        self.emit(Event::RunStarted {
            run_id: self.run_id.clone(),
            name: self.name.clone(),
            manifest: self.plan.manifest.clone(),
            tasks: self.slots.len(),
            concurrency: self.plan.concurrency,
        });
        self.warn_left_out();
        self.warn_missing_credentials();
        if let Some(problem) = self.plans.problem.take() {
            self.emit(Event::Warning {
                task: None,
                message: problem,
            });
        }
        for index in 0..self.slots.len() {
            let record = &self.slots[index].record;
            if let Some(from_run) = record.carried_from.clone() {
                let event = Event::TaskCarried {
                    task: record.id.clone(),
                    status: record.status,
                    from_run,
                };
                self.emit(event);
            }
        }
        let mut workers: launch::Workers = JoinSet::new();
        let mut interrupts = signals::interrupts();
        let mut cancels = interrupt::cancel_signals();
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (folder_watch, mut folder_changes) = FolderWatch::new();
        self.folder_watch = Some(folder_watch);
        let mut usage = take(&mut self.usage_rx);
        let mut identified = take(&mut self.identified_rx);
        let mut plan_changes = take(&mut self.plan_changes);
        let mut hook_problems = take(&mut self.hook_problems);
        let mut prepared = take(&mut self.prepared_rx);
        let mut settled = take(&mut self.settled_rx);
        let mut staged = take(&mut self.staged_rx);
        let mut folder_made = take(&mut self.folder_waits.made_rx);
        let mut ticks: u64 = 0;
        let mut typed = if self.interactive {
            conversation::stdin_lines()
        } else {
            mpsc::unbounded_channel().1
        };
        loop {
            self.start_ready(&mut workers);
            // With nothing running, the loop waits for the next retry's
            // back-off, still listening for interrupts and cancels; with
            // no retry either, the run is over.
            let retry_at = if self.idle(&workers) {
                match schedule::next_retry(&self.slots) {
                    Some(at) if self.interrupted == 0 => Some(at),
                    _ => break,
                }
            } else {
                None
            };
            tokio::select! {
                // Usage and plan changes are counted before the worker's
                // end is handled.
                biased;
                Some(update) = usage.recv() => self.usage_changed(update),
                Some(read) = plan_changes.recv() => self.files_read(read),
                Some(known) = identified.recv() => self.identified(known),
                Some(joined) = workers.join_next() => {
                    if let Ok(end) = joined {
                        self.finish(end);
                    }
                }
                Some(done) = settled.recv() => self.settled(done),
                Some(ready) = prepared.recv() => self.worktree_ready(ready, &mut workers),
                Some(files) = staged.recv() => self.staged(files, &mut workers),
                Some((index, cancelled)) = folder_made.recv() => self.folder_made(index, cancelled, &mut workers),
                Some(folder) = folder_changes.recv() => self.folders_changed(folder, &mut folder_changes),
                _ = ticker.tick() => {
                    ticks += 1;
                    self.tick(ticks);
                }
                Some(problem) = hook_problems.recv() => self.emit(Event::Warning { task: None, message: problem }),
                Some(line) = typed.recv() => self.typed(line),
                _ = interrupts.recv() => self.interrupt(),
                Some(()) = cancels.recv() => self.cancel_requested(),
                _ = sleep_until(retry_at) => {}
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
        self.task_folders.finish();
        self.conclude().await
    }

    /// The regular poll: plans (asked of the plan reader), questions and
    /// findings every second, question deadlines, progress saves.
    fn tick(&mut self, ticks: u64) {
        self.plans.poll();
        if ticks % RUNNING_POLL_TICKS == 0 {
            self.poll_running();
        }
        self.question_deadlines();
        self.stop_stalled();
        self.flush_progress();
        self.warn_unwritten();
    }

    /// A worktree is ready (or failed): launch its task if it may.
    fn worktree_ready(&mut self, ready: isolation::Prepared, workers: &mut launch::Workers) {
        let index = ready.index;
        if self.worktree_prepared(ready) {
            self.launch(index, workers);
        }
    }

    /// One look per folder for a burst of events (a question is a create,
    /// a write and a rename).
    fn folders_changed(&mut self, folder: PathBuf, more: &mut mpsc::UnboundedReceiver<PathBuf>) {
        let mut folders = vec![folder];
        while let Ok(next) = more.try_recv() {
            if !folders.contains(&next) {
                folders.push(next);
            }
        }
        for folder in folders {
            self.folder_changed(folder);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
