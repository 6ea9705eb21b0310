//! The files a worker needs before it starts, written on a blocking
//! thread: an agent CLI's private config folder (folders, login links,
//! settings) and, for a backend that reads its prompt from a file, the
//! prompt rendered at launch or a retry's prompt. Written inline they put
//! file work on the thread that serves every worker's timeout and Ctrl-C,
//! so a stalled disk would have held those up.
//!
//! A launch that needs them is done in two steps, as a worktree task's is:
//! the task holds its worker slot ([`Phase::Preparing`]) while the files
//! are written, and launches when they are back, unless the run was
//! interrupted, halted or the task cancelled meanwhile.
//!
//! So is a launch whose task folder the folder thread has not written yet
//! ([`Sweep::launch_in_order`]); those wait in one queue, so that they
//! start in the order the schedule gave them.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::launch::Workers;
use super::slot::Phase;
use super::Sweep;
use crate::agents::cli_home;
use crate::domain::status::TaskStatus;
use crate::manifest::types::PromptMode;
use crate::plan::PlannedTask;
use crate::state::StateError;

/// A task's launch files, handed back to the event loop.
pub(super) struct Staged {
    pub index: usize,
    pub files: LaunchFiles,
    /// `dispatch cancel --task` came while they were written.
    pub cancelled: bool,
}

/// What writing a task's launch files gave.
#[derive(Default)]
pub(super) struct LaunchFiles {
    /// The environment that points the CLI at its private config folder,
    /// or why the folder could not be made; `None`: the task has none.
    pub cli_env: Option<Result<Vec<(String, String)>, StateError>>,
    /// Why the prompt file could not be written (the worker still starts,
    /// and may find an older prompt there: a warning says so).
    pub prompt_failure: Option<StateError>,
}

/// Whether this launch of `task` writes files first: a private config
/// folder, or a prompt file the plan did not write (a prompt rendered at
/// launch, or a retry's).
pub(super) fn needed(task: &PlannedTask, fresh: bool) -> bool {
    task.cli_home.is_some() || prompt_file_needed(task, fresh)
}

fn prompt_file_needed(task: &PlannedTask, fresh: bool) -> bool {
    task.prompt_via == PromptMode::File && (!fresh || task.prompt.is_empty())
}

impl Sweep {
    /// Write `task`'s launch files on a blocking thread; the task launches
    /// when [`Sweep::staged`] gets them back.
    pub(super) fn stage(
        &mut self,
        index: usize,
        task: &Arc<PlannedTask>,
        prompt: &str,
        fresh: bool,
        ready: &mpsc::UnboundedSender<Staged>,
    ) {
        self.set_phase(index, Phase::Preparing);
        let prompt_file = prompt_file_needed(task, fresh)
            .then(|| (PathBuf::from(task.paths.prompt()), prompt.to_owned()));
        let home = task.cli_home.clone();
        let backend = task.backend.clone();
        let user = self.user_config.with_env(&task.env);
        let ipc = PathBuf::from(task.paths.ipc());
        let ready = ready.clone();
        tokio::task::spawn_blocking(move || {
            test_pause();
            let prompt_failure = prompt_file
                .and_then(|(path, text)| crate::state::write_state(&path, text.as_bytes()).err());
            let cli_env = home.map(|home| cli_home::prepare(&backend, Path::new(&home), &user));
            let _ = ready.send(Staged {
                index,
                files: LaunchFiles {
                    cli_env,
                    prompt_failure,
                },
                cancelled: super::cancel::requested(&ipc),
            });
        });
    }

    /// A task's launch files are written (or failed, which its launch
    /// reports): launch it, unless the run or the task was stopped while
    /// they were written.
    pub(super) fn staged(&mut self, staged: Staged, workers: &mut Workers) {
        let index = staged.index;
        self.set_phase(index, Phase::Pending);
        if staged.cancelled {
            self.end_unlaunched(
                index,
                TaskStatus::Cancelled,
                "cancelled by `dispatch cancel`".to_owned(),
            );
            return;
        }
        if self.interrupted == 0 && self.halted.is_none() {
            self.slots[index].staged = Some(Box::new(staged.files));
            self.launch(index, workers);
        }
    }
}

/// Launches waiting for their task folder.
pub(super) struct FolderWaits {
    /// A folder is there (or failed), with whether `dispatch cancel
    /// --task` came meanwhile.
    made_tx: mpsc::UnboundedSender<(usize, bool)>,
    pub(super) made_rx: Option<mpsc::UnboundedReceiver<(usize, bool)>>,
    /// In the order they were decided.
    waiting: VecDeque<usize>,
    /// Those whose folder is there, with whether their task was cancelled.
    made: HashMap<usize, bool>,
}

impl FolderWaits {
    pub(super) fn new() -> Self {
        let (made_tx, made_rx) = mpsc::unbounded_channel();
        FolderWaits {
            made_tx,
            made_rx: Some(made_rx),
            waiting: VecDeque::new(),
            made: HashMap::new(),
        }
    }
}

impl Sweep {
    /// Launch a task the schedule decided to start, once its folder is
    /// written. The runner's thread never writes a folder or waits for one
    /// (a stalled disk would hold up every timeout and Ctrl-C): one not
    /// written yet is written, or waited for, on a blocking thread while
    /// the task holds its slot. Launches keep the order the schedule gave
    /// them: one whose folder is ready waits behind one that waits.
    pub(super) fn launch_in_order(&mut self, index: usize, workers: &mut Workers) {
        let pending = matches!(self.task_folders.look(index), super::folders::Look::Pending);
        if !pending && self.folder_waits.waiting.is_empty() {
            self.launch(index, workers);
            return;
        }
        self.set_phase(index, Phase::Preparing);
        self.folder_waits.waiting.push_back(index);
        let made = self.folder_waits.made_tx.clone();
        let ipc = PathBuf::from(self.slots[index].task.paths.ipc());
        // One whose folder is ready still asks, so that it is launched
        // when its turn comes.
        self.task_folders.ensure_then(index, move || {
            let cancelled = super::cancel::requested(&ipc);
            let _ = made.send((index, cancelled));
        });
    }

    /// A task's folder, which its launch waited for, is written (or
    /// failed, which its launch reports): launch the waiting tasks whose
    /// turn it is, unless the run or the task was stopped meanwhile, as
    /// for [`Sweep::staged`].
    pub(super) fn folder_made(&mut self, index: usize, cancelled: bool, workers: &mut Workers) {
        self.folder_waits.made.insert(index, cancelled);
        while let Some(&next) = self.folder_waits.waiting.front() {
            let Some(cancelled) = self.folder_waits.made.remove(&next) else {
                break;
            };
            self.folder_waits.waiting.pop_front();
            self.set_phase(next, Phase::Pending);
            if cancelled {
                self.end_unlaunched(
                    next,
                    TaskStatus::Cancelled,
                    "cancelled by `dispatch cancel`".to_owned(),
                );
            } else if self.interrupted == 0 && self.halted.is_none() {
                self.launch(next, workers);
            }
        }
    }
}

/// Tests make the launch files slow to write (`DISPATCH_TEST_STAGE_DELAY_MS`)
/// to show that it holds up no other worker's timeout. Debug builds only:
/// a release build never reads the variable.
fn test_pause() {
    #[cfg(debug_assertions)]
    if let Some(delay) = std::env::var("DISPATCH_TEST_STAGE_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(delay));
    }
}
