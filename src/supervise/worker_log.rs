//! `worker.log`, written on one thread shared by every worker's log.
//!
//! A worker's output is read on the runner's one thread, which also serves
//! every other worker's timeout and Ctrl-C. Writing each line to disk there
//! would hold all of that up for as long as the disk takes (seconds, on a
//! stalled network disk), so the reader only hands the redacted bytes over
//! and the log thread writes them, in order. The log is complete once the
//! receiver [`WorkerLog::close`] returns has answered, before anything reads
//! its tail.
//!
//! One thread for all logs rather than one per worker: starting and ending
//! a thread for each task cost more CPU than the writes of a worker that
//! prints little (a sweep of 1,000 short tasks spent a thread's creation,
//! stack and exit on every one). The thread starts with the first log and
//! lives as long as the process.
//!
//! A log reaches the thread with its first bytes, and the thread opens it
//! then: the open is file work too (on a stalled disk it hangs like a
//! write), and a worker that prints nothing (many do; their output goes to
//! files) costs the thread nothing, where handing over its open and its
//! close woke the thread twice per task. Its task's folder is made with an
//! empty `worker.log`, so such a worker still has one. A log that cannot be
//! opened is kept as a problem ([`problems`]) for the runner to warn about.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use crate::state::{open_append, open_append_sized, StateError};

/// `worker.log` is rotated to `worker.log.1` past this size.
pub const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// One log as the thread knows it.
type LogId = u64;

enum Job {
    /// Open (or continue) a log, and append its first bytes.
    Open {
        id: LogId,
        path: PathBuf,
        bytes: Vec<u8>,
    },
    /// Append to it.
    Write { id: LogId, bytes: Vec<u8> },
    /// Nothing more comes: close it and answer once all it was given is
    /// written.
    Close {
        id: LogId,
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// The log thread's queue and the last id given out.
type Queue = (Sender<Job>, LogId);

/// The log thread, started with the first log: `None` until then, and
/// `Some(None)` once it could not be started (logs are then written
/// inline).
static THREAD: Mutex<Option<Option<Queue>>> = Mutex::new(None);

/// A queue to the log thread and an id for a new log on it, starting the
/// thread if this is the first log.
fn enqueue() -> Option<Queue> {
    let mut thread = THREAD.lock().ok()?;
    let state = thread.get_or_insert_with(|| {
        let (jobs, queue) = mpsc::channel();
        let builder = std::thread::Builder::new()
            .name("dispatch-worker-log".to_owned())
            .stack_size(64 * 1024);
        crate::util::thread::spawn(builder, move || write_loop(queue))
            .ok()
            .map(|_| (jobs, 0))
    });
    let (jobs, next) = state.as_mut()?;
    *next += 1;
    Some((jobs.clone(), *next))
}

/// Logs that could not be opened, a line each, not yet taken.
static PROBLEMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The logs that could not be opened since the last call, a line each,
/// for the runner to warn about (this layer has no output of its own).
pub fn problems() -> Vec<String> {
    let mut problems = PROBLEMS.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *problems)
}

/// Open the log at `path`, or say why not and drop what it was given.
fn open_or_note(path: PathBuf) -> Option<LogFile> {
    match LogFile::open(path) {
        Ok(file) => Some(file),
        Err(e) => {
            let problem = format!("a worker's output is not logged: {e}");
            PROBLEMS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(problem);
            None
        }
    }
}

/// The sending side of one worker's log.
pub struct WorkerLog {
    /// Where it goes, while nothing was written: not opened, not handed
    /// to the thread.
    unsent: Option<PathBuf>,
    queue: Option<Queue>,
    /// Without the thread (it could not be started) the log is written
    /// here.
    inline: Option<LogFile>,
}

impl WorkerLog {
    /// The log at `path` (continued if it holds an earlier attempt's),
    /// opened with its first bytes.
    pub fn at(path: PathBuf) -> Self {
        Self {
            unsent: Some(path),
            queue: None,
            inline: None,
        }
    }

    /// Hand the log to the thread with its first bytes.
    fn hand_over(&mut self, path: PathBuf, bytes: &[u8]) {
        let Some((jobs, id)) = enqueue() else {
            // No thread to be had: write on this thread, slower but whole.
            self.write_inline(path, bytes);
            return;
        };
        let bytes = bytes.to_vec();
        match jobs.send(Job::Open { id, path, bytes }) {
            Ok(()) => self.queue = Some((jobs, id)),
            // The thread is gone (only a panic ends it): the same.
            Err(mpsc::SendError(Job::Open { path, bytes, .. })) => {
                self.write_inline(path, &bytes);
            }
            Err(_) => {}
        }
    }

    fn write_inline(&mut self, path: PathBuf, bytes: &[u8]) {
        self.inline = open_or_note(path);
        if let Some(file) = &mut self.inline {
            file.write(bytes);
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(path) = self.unsent.take() {
            self.hand_over(path, bytes);
            return;
        }
        match (&self.queue, &mut self.inline) {
            (Some((jobs, id)), _) => {
                let _ = jobs.send(Job::Write {
                    id: *id,
                    bytes: bytes.to_vec(),
                });
            }
            (None, Some(file)) => file.write(bytes),
            (None, None) => {}
        }
    }

    /// Stop taking bytes, and a receiver that answers once the thread has
    /// written everything this log was given (await it without holding a
    /// lock). `None` when there is nothing to wait for.
    pub fn close(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        // Nothing was written to it: there is nothing to close.
        self.unsent = None;
        self.inline = None;
        let (jobs, id) = self.queue.take()?;
        let (done, written) = tokio::sync::oneshot::channel();
        jobs.send(Job::Close { id, done }).ok()?;
        Some(written)
    }
}

impl Drop for WorkerLog {
    /// A log dropped without [`WorkerLog::close`] (a launch that failed
    /// after the open) is closed too, so the thread lets its file go.
    fn drop(&mut self) {
        if let Some((jobs, id)) = self.queue.take() {
            let (done, _) = tokio::sync::oneshot::channel();
            let _ = jobs.send(Job::Close { id, done });
        }
    }
}

fn write_loop(queue: Receiver<Job>) {
    let mut logs: HashMap<LogId, LogFile> = HashMap::new();
    // Bytes taken but not yet written, per log, in the order first seen.
    let mut pending: Vec<(LogId, Vec<u8>)> = Vec::new();
    while let Ok(first) = queue.recv() {
        // What queued up while the disk was slow goes out in one write per
        // log; a close waits for its log's bytes before it is answered.
        for job in std::iter::once(first).chain(queue.try_iter()) {
            match job {
                Job::Open { id, path, bytes } => {
                    // A log that cannot be opened drops its bytes.
                    if let Some(file) = open_or_note(path) {
                        logs.insert(id, file);
                    }
                    pending.push((id, bytes));
                }
                Job::Write { id, bytes } => match pending.iter_mut().find(|(p, _)| *p == id) {
                    Some((_, queued)) => queued.extend_from_slice(&bytes),
                    None => pending.push((id, bytes)),
                },
                Job::Close { id, done } => {
                    if let Some(at) = pending.iter().position(|(p, _)| *p == id) {
                        let (_, bytes) = pending.remove(at);
                        if let Some(file) = logs.get_mut(&id) {
                            file.write(&bytes);
                        }
                    }
                    logs.remove(&id);
                    let _ = done.send(());
                }
            }
        }
        for (id, bytes) in pending.drain(..) {
            if let Some(file) = logs.get_mut(&id) {
                file.write(&bytes);
            }
        }
    }
}

/// The open file and how much it holds, for rotation.
struct LogFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
}

impl LogFile {
    fn open(path: PathBuf) -> Result<Self, StateError> {
        // Tests stall the disk here too (debug builds only).
        if let Some(delay) = crate::state::writer::test_delay() {
            std::thread::sleep(delay);
        }
        let (file, written) = open_append_sized(&path)?;
        Ok(Self {
            path,
            file: Some(file),
            written,
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        // Tests stall the disk here (debug builds only).
        if let Some(delay) = crate::state::writer::test_delay() {
            std::thread::sleep(delay);
        }
        if self.written + bytes.len() as u64 > LOG_ROTATE_BYTES {
            self.rotate();
        }
        if let Some(file) = &mut self.file {
            if file.write_all(bytes).is_ok() {
                self.written += bytes.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&self.path, &old);
        self.file = open_append(&self.path).ok();
        self.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker that prints nothing costs the log thread nothing, and no
    /// file work is done for it: its end has nothing to wait for, and
    /// nothing was opened (its task's folder holds an empty log).
    #[tokio::test]
    async fn a_log_that_got_no_bytes_is_never_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.log");
        let mut log = WorkerLog::at(path.clone());
        log.write(b"");
        assert!(log.close().is_none(), "nothing to wait for");
        assert!(!path.exists(), "opened without bytes to write");
    }

    /// A log planted as a link is not written through: the worker's bytes
    /// are dropped and the problem is kept for the runner to warn about.
    #[tokio::test]
    async fn a_log_that_cannot_be_opened_is_a_problem_not_a_write_through_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "").expect("write");
        let path = dir.path().join("worker.log");
        std::os::unix::fs::symlink(&outside, &path).expect("symlink");
        let mut log = WorkerLog::at(path.clone());
        log.write(b"secret output\n");
        log.close()
            .expect("the thread has the log")
            .await
            .expect("answered");
        assert_eq!(std::fs::read(&outside).expect("read"), b"");
        let problems = problems();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("a worker's output is not logged")
                    && p.contains("worker.log")),
            "{problems:?}"
        );
    }

    #[tokio::test]
    async fn a_log_goes_to_the_thread_with_its_first_bytes_and_is_whole_at_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.log");
        let mut log = WorkerLog::at(path.clone());
        log.write(b"one\n");
        log.write(b"two\n");
        let written = log.close().expect("the thread has the log");
        written.await.expect("answered");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\ntwo\n");
    }

    /// A log continued from an earlier attempt counts what it already
    /// holds: the write that takes it past the limit rotates it first.
    #[tokio::test]
    async fn a_continued_log_counts_what_it_held_towards_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.log");
        let earlier = std::fs::File::create(&path).expect("create");
        earlier.set_len(LOG_ROTATE_BYTES - 2).expect("grow");
        drop(earlier);
        let mut log = WorkerLog::at(path.clone());
        log.write(b"past the limit\n");
        log.close()
            .expect("the thread has the log")
            .await
            .expect("answered");
        let rotated = dir.path().join("worker.log.1");
        assert_eq!(
            std::fs::metadata(&rotated).expect("rotated").len(),
            LOG_ROTATE_BYTES - 2
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "past the limit\n"
        );
    }
}
