//! Starting a task's worker: its prompt (a retry's says where the last
//! attempt left off), its command line and environment, its plan watched,
//! and a future that ends with what the runner needs for the verdict.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::plans::ClosingLook;
use super::slot::Phase;
use super::{Sweep, LEAK_TIMEOUT};
use crate::agents::cli_home;
use crate::agents::stream::Tracker;
use crate::domain::status::TaskStatus;
use crate::events::Event;
use crate::ipc::findings::FindingsReader;
use crate::manifest;
use crate::manifest::types::{EventFormat, PromptMode};
use crate::plan::PlannedTask;
use crate::record::{Attempt, TaskRecord};
use crate::supervise::process::{self, Finished, Launch, SpawnError, Stop};
use crate::util::clock;

/// The running workers' futures.
pub(super) type Workers = JoinSet<WorkerEnd>;

/// What a finished worker future hands back.
pub(super) struct WorkerEnd {
    pub(super) index: usize,
    pub(super) attempt: u32,
    pub(super) finished: Result<Finished, SpawnError>,
    pub(super) tracker: Tracker,
    /// Its plan and `ipc/.done` as they were once it ended, read off the
    /// runner's thread.
    pub(super) look: ClosingLook,
    /// Its acceptance checks, run when its plan was done.
    pub(super) checks: super::checks::Checked,
}

/// A worker's usage changed, or its CLI said it retries an API call (read
/// from its event stream).
pub(super) struct UsageUpdate {
    pub(super) index: usize,
    pub(super) usage: crate::agents::stream::Usage,
    /// A retry the CLI reported with this line.
    pub(super) retry: Option<crate::agents::evidence::ApiRetry>,
}

impl Sweep {
    pub(super) fn launch(&mut self, index: usize, workers: &mut Workers) {
        // Its folder first (written in the background, usually long
        // before): the worktree's setup log and the worker's files go there.
        // One not written yet is waited for off this thread (`stage.rs`).
        let folder_failure = match self.task_folders.look(index) {
            super::folders::Look::Written => None,
            super::folders::Look::Failed(e) => Some(e),
            super::folders::Look::Pending => {
                self.launch_in_order(index, workers);
                return;
            }
        };
        if folder_failure.is_none() && self.needs_worktree(index) {
            // The worker launches once its worktree is ready.
            let ready = self.prepared_tx.clone();
            self.prepare_worktree(index, &ready);
            return;
        }
        let task = self.slots[index].task.clone();
        let slot = &self.slots[index];
        let attempt = slot.record.attempts.len() as u32 + 1;
        let first_here = attempt == slot.earlier.attempts + 1;
        let fresh = first_here && !slot.earlier.continued;
        // The plan keeps no prompt: rendered here, for this launch only.
        let (base, planned_argv, render_failure) = self.worker_prompt(&task);
        let prompt = if fresh {
            base.clone()
        } else {
            retry_prompt(&base, &task, attempt, &slot.record)
        };
        // Its private config folder and a prompt file are written on a
        // blocking thread first; the launch goes on when they are back.
        let files = match self.slots[index].staged.take() {
            Some(files) => *files,
            None if super::stage::needed(&task, fresh) => {
                let ready = self.staged_tx.clone();
                self.stage(index, &task, &prompt, fresh, &ready);
                return;
            }
            None => super::stage::LaunchFiles::default(),
        };
        if let Some(e) = files.prompt_failure {
            self.emit(Event::Warning {
                task: Some(task.id.clone()),
                message: e.to_string(),
            });
        }
        let mut argv: Vec<String> = planned_argv
            .into_iter()
            .map(|a| {
                if !base.is_empty() && a == base {
                    prompt.clone()
                } else {
                    a
                }
            })
            .collect();
        if let (Some(first), Some(path)) = (argv.first_mut(), &self.slots[index].program) {
            *first = path.display().to_string();
        }
        let redactor = Arc::new(self.redactor.with(task.env.iter(), &self.plan.secrets));
        let (cli_env, cli_failure) = match files.cli_env {
            Some(Ok(env)) => (env, None),
            Some(Err(e)) => (Vec::new(), Some(SpawnError::CliHome(e))),
            None => (Vec::new(), None),
        };
        let cli_failure = folder_failure
            .map(SpawnError::State)
            .or(render_failure)
            .or(cli_failure);
        if &*task.backend == "codex" {
            if let Some(worktree) = &task.worktree {
                let worktree = Path::new(&worktree.path);
                crate::agents::codex::grant_git_writes(&mut argv, worktree);
                // The record shows the grant too (once, however many
                // attempts).
                crate::agents::codex::grant_git_writes(
                    &mut self.slots[index].record.argv,
                    worktree,
                );
            }
        }
        let activity = crate::supervise::activity::Activity::start();
        let env = self.worker_env(&task, cli_env);
        let check_env = (!task.checks.is_empty()).then(|| env.clone());
        let check_redactor = redactor.clone();
        let (confined, cli_failure) = match (cli_failure, self.confine(index, argv, env)) {
            (Some(failure), _) => (None, Some(failure)),
            (None, Ok(confined)) => (Some(confined), None),
            (None, Err(e)) => (None, Some(e)),
        };
        let confined = confined.unwrap_or_else(|| super::confine::Confined::failed(&task));
        let launch = Launch {
            argv: confined.argv,
            env: confined.env,
            clear_env: confined.clear_env,
            ignore_term: confined.ignore_term,
            cwd: PathBuf::from(task.paths.workdir()),
            stdin: (task.prompt_via == PromptMode::Stdin).then(|| prompt.into_bytes()),
            log: PathBuf::from(task.paths.task_dir()).join("worker.log"),
            timeout: task.timeout.as_deref().and_then(manifest::duration::parse),
            grace: self.grace,
            leak_timeout: LEAK_TIMEOUT,
            redactor,
            activity: Some(activity.clone()),
        };
        let task_dir = PathBuf::from(task.paths.task_dir());
        let ipc_dir = PathBuf::from(task.paths.ipc());
        // Questions need an answer at once, so `ipc/` is watched; findings
        // and plans are read on the regular poll, which is live enough and
        // saves a watch per task.
        if let Some(folder_watch) = self.folder_watch.as_mut() {
            folder_watch.watch(&ipc_dir);
        }
        self.folders.insert(ipc_dir.clone(), index);
        let (stop_tx, stop_rx) = watch::channel(Stop::No);
        let checks = check_env.map(|env| super::checks::CheckRun {
            task: task.clone(),
            attempt,
            env,
            redactor: check_redactor,
            grace: self.grace,
            base: self.slots[index]
                .worktree
                .as_ref()
                .map_or_else(|| "HEAD".to_owned(), |w| w.base_commit.clone()),
            stop: stop_rx.clone(),
        });
        // The first attempt's plan is the one just written; a retry's is
        // whatever the earlier attempt left, read by the plan reader.
        let plan_now = fresh.then(|| crate::domain::checklist::parse(&task.plan));
        let plan_path = PathBuf::from(task.paths.plan());
        let findings = self.slots[index]
            .findings
            .take()
            .map(|reader| *reader)
            .unwrap_or_else(|| FindingsReader::new(task_dir.join(crate::state::layout::FINDINGS)));
        self.plans.watch(
            index,
            plan_path.clone(),
            plan_now,
            ipc_dir.clone(),
            findings,
        );
        self.set_phase(index, Phase::Running);
        let lane = free_lane(&self.slots, &self.running, index);
        let slot = &mut self.slots[index];
        slot.record.env_left_out = confined.left_out;
        let forwards = confined.forwards;
        slot.stop = Some(stop_tx);
        slot.activity = Some(activity);
        let record = &mut slot.record;
        record.status = TaskStatus::Running;
        let now = clock::now();
        record.started_at.get_or_insert_with(|| now.clone());
        record.add_attempt(Attempt::begun(attempt, now, Some(lane)));
        let format = task.events;
        let (lines, tracking) = track_usage(format, index, &self.usage_tx);
        // Started here, synchronously: workers start in the order the
        // schedule says, and their pid is recorded before anything else.
        let started = match cli_failure {
            Some(failure) => Err(failure),
            None => process::start(launch, lines),
        };
        let plans = self.plans.clone();
        let running = match started {
            Ok(running) => {
                // Known a moment later, off this thread (see `identified`).
                self.slots[index].record.pid_start_time = None;
                self.mark_started(index, running.pid());
                let identified = self.identified_tx.clone();
                let pid = running.pid();
                running.identify(move |start_time| {
                    let _ = identified.send(Identified {
                        index,
                        pid,
                        start_time,
                    });
                });
                Ok(running)
            }
            Err(e) => {
                if let Some(tracking) = &tracking {
                    tracking.abort();
                }
                Err(e)
            }
        };
        workers.spawn(async move {
            // The last look at its plan and the look for what its worker
            // left, on one trip to the plan reader.
            let (finished, look) = match running {
                Ok(running) => {
                    let close = |marker| plans.close(index, plan_path, ipc_dir, marker);
                    let (finished, look) = running.wait_then(stop_rx, close).await;
                    (Ok(finished), look)
                }
                Err(e) => (Err(e), plans.close(index, plan_path, ipc_dir, None).await.1),
            };
            forwards.iter().for_each(tokio::task::JoinHandle::abort);
            let tracker = match tracking {
                Some(tracking) => tracking.await.unwrap_or_else(|_| Tracker::new(format)),
                None => Tracker::new(format),
            };
            let checks = match (checks, &finished) {
                (Some(run), Ok(finished)) if plan_done(&run.task, finished, &look, &tracker) => {
                    super::checks::run_all(run).await
                }
                _ => super::checks::Checked::default(),
            };
            WorkerEnd {
                index,
                attempt,
                finished,
                tracker,
                look,
                checks,
            }
        });
    }

    /// Say once per backend when its workers' private config folders leave
    /// out something of the user's configuration that the CLI may need to
    /// reach its model: without it a worker fails with the CLI's own login
    /// or network error, which does not point here.
    pub(super) fn warn_left_out(&mut self) {
        let mut backends: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.task.cli_home.is_some() && !s.record.status.is_final())
            .map(|s| s.task.backend.to_string())
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

    /// Say, before any worker starts, which tasks will start without
    /// credentials for their CLI (judged with their manifest `env:` over
    /// dispatch's own): such a worker fails within seconds with an error of
    /// its CLI's own (Gemini CLI's bare exit code 41).
    pub(super) fn warn_missing_credentials(&mut self) {
        let env = |name: &str| std::env::var(name).ok();
        let home = self.user_config.home.clone();
        let mut warnings = Vec::new();
        for slot in self.slots.iter().filter(|s| !s.record.status.is_final()) {
            let task = &slot.task;
            let program = task.argv.first().map(String::as_str).unwrap_or_default();
            if let Some(missing) = crate::agents::doctor::missing_credentials(
                &task.backend,
                program,
                task.model.as_ref().map(|m| m.id.as_str()),
                &task.env,
                &env,
                home.as_deref(),
            ) {
                warnings.push(Event::Warning {
                    task: Some(task.id.clone()),
                    message: missing,
                });
            }
        }
        for warning in warnings {
            self.emit(warning);
        }
    }

    /// The `DISPATCH_*` variables every worker gets, then those pointing
    /// its CLI at its private config folder, then the task's own (which
    /// win, so a sweep can still set `CLAUDE_CONFIG_DIR` itself).
    pub(super) fn worker_env(
        &self,
        task: &PlannedTask,
        cli_env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            ("DISPATCH_RUN_ID".to_owned(), self.run_id.clone()),
            ("DISPATCH_TASK_ID".to_owned(), task.id.clone()),
            (
                "DISPATCH_TASK_DIR".to_owned(),
                task.paths.task_dir().to_owned(),
            ),
            ("DISPATCH_PLAN".to_owned(), task.paths.plan()),
            ("DISPATCH_OUTPUT".to_owned(), task.paths.output()),
            ("DISPATCH_IPC_DIR".to_owned(), task.paths.ipc()),
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
            ("PWD".to_owned(), task.paths.workdir().to_owned()),
        ];
        env.extend(cli_env);
        env.extend(task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// A worker's start time is known: it is recorded beside the pid, so
    /// that `dispatch cancel`, or a run resumed after this one died, tells
    /// the worker from a process that was later given the same pid. A
    /// worker that has ended (or was replaced by a retry) meanwhile needs
    /// none.
    pub(super) fn identified(&mut self, known: Identified) {
        let record = &mut self.slots[known.index].record;
        if record.status != TaskStatus::Running || record.pid != Some(known.pid) {
            return;
        }
        record.pid_start_time = Some(known.start_time);
        self.save(known.index);
    }

    fn mark_started(&mut self, index: usize, pid: u32) {
        let slot = &mut self.slots[index];
        let task = &slot.task;
        let record = &mut slot.record;
        record.pid = Some(pid);
        if let Some(attempt) = record.attempts.last_mut() {
            attempt.pid = Some(pid);
        }
        let event = Event::TaskStarted {
            task: task.id.clone(),
            attempt: record.attempts.len() as u32,
            model: task.model.as_ref().map(|m| m.name.clone()),
            backend: task.backend.to_string(),
            worktree: task.worktree.is_some(),
            pid,
        };
        self.save(index);
        self.emit(event);
    }
}

/// A launched worker's start time, read after its launch.
pub(super) struct Identified {
    index: usize,
    pid: u32,
    start_time: u64,
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
            let retries = tracker.api_retries;
            tracker.feed(&line);
            let retry = (tracker.api_retries != retries)
                .then(|| tracker.last_retry.clone())
                .flatten();
            if tracker.usage != before || retry.is_some() {
                let _ = usage.send(UsageUpdate {
                    index,
                    usage: tracker.usage.clone(),
                    retry,
                });
            }
        }
        tracker
    });
    (Some(lines_tx), Some(tracking))
}

impl Sweep {
    /// The task's worker prompt and its argv with the prompt in place:
    /// the plan's, or rendered now for a plan that keeps none. A prompt
    /// that cannot be rendered now (a template changed since the plan was
    /// checked) fails the launch.
    fn worker_prompt(&self, task: &PlannedTask) -> (String, Vec<String>, Option<SpawnError>) {
        let rendered = match &self.prompter {
            Some(prompter) if task.prompt.is_empty() => prompter.render(task),
            _ => Ok(crate::plan::prompt::Rendered {
                prompt: task.prompt.clone(),
                argv: task.argv.clone(),
            }),
        };
        match rendered {
            Ok(r) => (r.prompt, r.argv, None),
            Err(invalid) => (
                String::new(),
                task.argv.clone(),
                Some(SpawnError::Prompt(invalid.to_string())),
            ),
        }
    }
}

/// Whether the worker's end, by itself, makes the task complete: only
/// then are its checks worth running (a failed plan already says why).
fn plan_done(
    task: &PlannedTask,
    finished: &Finished,
    look: &ClosingLook,
    tracker: &Tracker,
) -> bool {
    let written = crate::domain::checklist::parse(&task.plan);
    let (status, _) = super::verdict::decide(&super::verdict::Evidence {
        finished,
        plan: look.plan.as_ref(),
        written: Some(&written),
        done_marker: look.done_marker,
        outcome: tracker.outcome.as_ref(),
        events: task.events,
    });
    status == TaskStatus::Complete
}

/// The prompt of a retry: the task's prompt, then where the earlier attempt
/// left off, as the dispatch skill's fallback does.
fn retry_prompt(prompt: &str, task: &PlannedTask, attempt: u32, record: &TaskRecord) -> String {
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
    let checks = record
        .attempts
        .last()
        .map(super::check_verdict::feedback)
        .unwrap_or_default();
    format!(
        "{}\n\n## This is attempt {attempt}\n\nAn earlier attempt of this task did not finish.{why} Your plan so far is in `{}`: items marked `[x]` are done, so do not redo them; continue from the first item that is not. Notes from the earlier attempt, if any, are in `{}`.{answers}{checks}\n",
        prompt.trim_end(),
        task.paths.plan(),
        task.paths.context()
    )
}

/// The lowest worker slot no other running attempt holds: at most
/// `concurrency` attempts run at once, so lanes stay below it, and a
/// timeline drawn by lane shows what ran side by side.
fn free_lane(
    slots: &[super::slot::TaskSlot],
    running: &std::collections::HashSet<usize>,
    index: usize,
) -> u32 {
    let taken: std::collections::BTreeSet<u32> = running
        .iter()
        .filter(|&&i| i != index)
        .filter_map(|&i| slots[i].record.attempts.last())
        .filter(|attempt| attempt.ended_at.is_none())
        .filter_map(|attempt| attempt.lane)
        .collect();
    (0..).find(|lane| !taken.contains(lane)).unwrap_or(0)
}
