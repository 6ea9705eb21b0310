//! New task folders written in the background while the first workers
//! already run.
//!
//! A fresh task's folder (`ipc/`, `plan.md`, `prompt.md` where the backend
//! reads it, `task.json`, an empty `worker.log`) is up to six file-system
//! entries; at 50,000 tasks that is a quarter of a million, which took
//! minutes on a loaded machine when every one was written before the first
//! launch. Now one thread writes them in schedule order, and a task's
//! folder is made sure of only where it is needed: before the task
//! launches and before its record is first saved. Whoever comes first
//! writes it (a claim per task, so it is written exactly once), and a claim
//! another holds is waited for, so a newer `task.json` is never overwritten
//! with the pending one. The run waits for the thread before it concludes,
//! so every task of a finished run has its folder, as the dispatch skill's
//! layout expects.
//!
//! The runner's thread never writes a folder or waits for one: a launch
//! that finds its folder not written has it written, or waited for, on a
//! blocking thread ([`Folders::ensure_then`]), and a record saved before
//! its folder is written (a task skipped early) is held ([`Folders::hold`])
//! and written by whoever writes the folder, over the pending one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::domain::redact::Redactor;
use crate::plan::PlannedTask;
use crate::state::{StateDir, StateError, TaskFolders};

/// Not written yet; nobody has claimed it.
const TO_WRITE: u8 = 0;
/// Claimed: being written by whoever claimed it.
const WRITING: u8 = 1;
/// Written (or never this run's to write: carried, kept, resumed).
const WRITTEN: u8 = 2;
/// Its write failed; the error is in `Shared::errors`.
const FAILED: u8 = 3;

/// Where a task's folder is.
pub(super) enum Look {
    Written,
    /// It could not be written: why.
    Failed(StateError),
    /// Not written yet, or being written.
    Pending,
}

/// The task folders of a run still to be written, and the thread that
/// writes them.
pub(super) struct Folders {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: StateDir,
    /// `.dispatch/tasks/`, held open (`None`: it could not be; each folder
    /// is then made by its path).
    task_folders: Option<TaskFolders>,
    run_id: Arc<str>,
    redactor: Arc<Redactor>,
    tasks: Vec<Arc<PlannedTask>>,
    marks: Vec<AtomicU8>,
    /// Why a task's folder could not be written, by task index.
    errors: Mutex<HashMap<usize, String>>,
    /// Wakes those waiting for a claim to end.
    ended: Condvar,
    /// How many wait on `ended`: a write ends without a wake (a system
    /// call) when nobody does, as for almost every folder.
    waiting: Mutex<usize>,
    /// Records (`task.json` bytes) saved while their folder was not
    /// written, by task: the last one is written over the pending record
    /// before the folder is marked written, under this lock.
    held: Mutex<HashMap<usize, Vec<u8>>>,
}

impl Folders {
    /// Start writing the folders of the tasks at `fresh` (indexes into
    /// `tasks`, in schedule order); every other task's folder counts as
    /// written already.
    pub(super) fn start(
        state: StateDir,
        run_id: Arc<str>,
        redactor: Arc<Redactor>,
        tasks: Vec<Arc<PlannedTask>>,
        fresh: Vec<usize>,
    ) -> Folders {
        let marks: Vec<AtomicU8> = (0..tasks.len()).map(|_| AtomicU8::new(WRITTEN)).collect();
        for &i in &fresh {
            if let Some(mark) = marks.get(i) {
                mark.store(TO_WRITE, Ordering::Release);
            }
        }
        let task_folders = if fresh.is_empty() {
            None
        } else {
            TaskFolders::open(&state).ok()
        };
        let shared = Arc::new(Shared {
            state,
            task_folders,
            run_id,
            redactor,
            tasks,
            marks,
            errors: Mutex::default(),
            ended: Condvar::new(),
            waiting: Mutex::default(),
            held: Mutex::default(),
        });
        let thread = if fresh.is_empty() {
            None
        } else {
            let shared = shared.clone();
            let builder = std::thread::Builder::new().name("dispatch-folders".to_owned());
            crate::util::thread::spawn(builder, move || {
                for i in fresh {
                    shared.write_if_unclaimed(i);
                }
            })
            // No thread: each folder is written when its task needs it.
            .ok()
        };
        Folders { shared, thread }
    }

    /// Whether task `index`'s folder is written, without waiting: what a
    /// launch asks on the runner's thread, which never writes one or waits
    /// for one (a stalled disk would hold up every timeout and Ctrl-C).
    pub(super) fn look(&self, index: usize) -> Look {
        match self.shared.mark(index) {
            WRITTEN => Look::Written,
            FAILED => Look::Failed(self.shared.failure(index)),
            _ => Look::Pending,
        }
    }

    /// Keep `record` (a `task.json`'s bytes) for task `index`'s folder if
    /// that is not written yet: it is written with the folder, and the
    /// caller writes nothing. Handed back when the folder is written (or
    /// failed): the caller writes it.
    pub(super) fn hold(&self, index: usize, record: Vec<u8>) -> Result<(), Vec<u8>> {
        let mut held = self.shared.held();
        match self.shared.mark(index) {
            TO_WRITE | WRITING => {
                held.insert(index, record);
                Ok(())
            }
            _ => Err(record),
        }
    }

    /// Make sure task `index`'s folder is written, on a blocking thread
    /// (write it there if nobody has, or wait for the thread's write of
    /// it), then `done`.
    pub(super) fn ensure_then(&self, index: usize, done: impl FnOnce() + Send + 'static) {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let _ = shared.ensure(index);
            done();
        });
    }

    /// Wait until every folder is written (before the run concludes, so
    /// its reports and `dispatch status` find each task's record).
    pub(super) fn finish(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Whatever the thread did not reach (it could not start, or ended
        // early): written here.
        for i in 0..self.shared.marks.len() {
            let _ = self.shared.ensure(i);
        }
        // The tasks are not needed any more: let the run's reports, which
        // come next and take the most memory of a run, have theirs.
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.tasks = Vec::new();
        }
    }
}

impl Shared {
    fn mark(&self, index: usize) -> u8 {
        self.marks
            .get(index)
            .map_or(WRITTEN, |m| m.load(Ordering::Acquire))
    }

    fn claim(&self, index: usize) -> bool {
        self.marks.get(index).is_some_and(|m| {
            m.compare_exchange(TO_WRITE, WRITING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    fn write_if_unclaimed(&self, index: usize) {
        if self.claim(index) {
            self.write(index);
        }
    }

    /// Write a claimed folder and end the claim.
    fn write(&self, index: usize) {
        if let Some(delay) = test_delay() {
            std::thread::sleep(delay);
        }
        let written = match self.tasks.get(index) {
            Some(task) => {
                let record = super::prepare::new_record(task, &self.run_id, &self.redactor);
                super::prepare::write_task_folder(
                    &self.state,
                    self.task_folders.as_ref(),
                    task,
                    &record,
                )
                .map(drop)
            }
            None => Ok(()),
        };
        let mut mark = match written {
            Ok(()) => WRITTEN,
            Err(e) => {
                self.errors().insert(index, e.to_string());
                FAILED
            }
        };
        // Records saved meanwhile replace the pending one, the last one
        // last; the mark changes under the same lock, so a later save
        // either is written here or finds the folder written.
        let mut held = self.held();
        while mark == WRITTEN {
            let Some(record) = held.remove(&index) else {
                break;
            };
            drop(held);
            if let Err(e) = self.write_record(index, &record) {
                self.errors().insert(index, e.to_string());
                mark = FAILED;
            }
            held = self.held();
        }
        held.remove(&index);
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        self.marks[index].store(mark, Ordering::Release);
        drop(held);
        if *waiting > 0 {
            self.ended.notify_all();
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Vec<u8>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write a held record into task `index`'s folder.
    fn write_record(&self, index: usize, record: &[u8]) -> Result<(), StateError> {
        let Some(task) = self.tasks.get(index) else {
            return Ok(());
        };
        let path = self
            .state
            .task_dir(&task.id)
            .join(crate::state::layout::TASK_RECORD);
        crate::state::write_state(&path, record)
    }

    /// Why task `index`'s folder could not be written.
    fn failure(&self, index: usize) -> StateError {
        let why = self
            .errors()
            .get(&index)
            .cloned()
            .unwrap_or_else(|| "cannot write the task's folder".to_owned());
        let dir: PathBuf = self
            .tasks
            .get(index)
            .map(|task| self.state.task_dir(&task.id))
            .unwrap_or_default();
        StateError::io(&dir, std::io::Error::other(why))
    }

    fn errors(&self) -> std::sync::MutexGuard<'_, HashMap<usize, String>> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure(&self, index: usize) -> Result<(), StateError> {
        loop {
            match self.mark(index) {
                WRITTEN => return Ok(()),
                FAILED => return Err(self.failure(index)),
                TO_WRITE => self.write_if_unclaimed(index),
                _ => {
                    let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                    if self.mark(index) == WRITING {
                        *waiting += 1;
                        waiting = self.ended.wait(waiting).unwrap_or_else(|e| e.into_inner());
                        *waiting -= 1;
                    }
                }
            }
        }
    }
}

/// Tests make each folder slow to write (`DISPATCH_TEST_FOLDER_DELAY_MS`)
/// to show that the first worker does not wait for the others' folders.
/// Debug builds only: a release build never reads the variable.
#[cfg(debug_assertions)]
fn test_delay() -> Option<std::time::Duration> {
    std::env::var("DISPATCH_TEST_FOLDER_DELAY_MS")
        .ok()?
        .parse()
        .ok()
        .map(std::time::Duration::from_millis)
}

#[cfg(not(debug_assertions))]
fn test_delay() -> Option<std::time::Duration> {
    None
}
