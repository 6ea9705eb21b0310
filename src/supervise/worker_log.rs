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
//! A log reaches the thread with its first bytes, not when it is opened: a
//! worker that prints nothing (many do; their output goes to files) then
//! costs the thread nothing, where handing over its open and its close
//! woke the thread twice per task.

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
    /// Take over an open log, and append its first bytes.
    Open {
        id: LogId,
        file: LogFile,
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

/// The sending side of one worker's log.
pub struct WorkerLog {
    /// Opened, nothing written yet: not handed to the thread.
    unsent: Option<LogFile>,
    queue: Option<Queue>,
    /// Without the thread (it could not be started) the log is written
    /// here.
    inline: Option<LogFile>,
}

impl WorkerLog {
    /// Open (or continue) the log at `path`. The open itself happens here,
    /// so a log that cannot be made fails the launch with its reason.
    pub fn open(path: PathBuf) -> Result<Self, StateError> {
        Ok(Self {
            unsent: Some(LogFile::open(path)?),
            queue: None,
            inline: None,
        })
    }

    /// Hand the log to the thread with its first bytes.
    fn hand_over(&mut self, mut file: LogFile, bytes: &[u8]) {
        let Some((jobs, id)) = enqueue() else {
            // No thread to be had: write on this thread, slower but whole.
            file.write(bytes);
            self.inline = Some(file);
            return;
        };
        let bytes = bytes.to_vec();
        match jobs.send(Job::Open { id, file, bytes }) {
            Ok(()) => self.queue = Some((jobs, id)),
            // The thread is gone (only a panic ends it): the same.
            Err(mpsc::SendError(Job::Open {
                mut file, bytes, ..
            })) => {
                file.write(&bytes);
                self.inline = Some(file);
            }
            Err(_) => {}
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(file) = self.unsent.take() {
            self.hand_over(file, bytes);
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
        // Nothing was written to it: closing the descriptor is all.
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
                Job::Open { id, file, bytes } => {
                    logs.insert(id, file);
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

    /// A worker that prints nothing costs the log thread nothing: its end
    /// has nothing to wait for, and its (empty) log is still there.
    #[tokio::test]
    async fn a_log_that_got_no_bytes_never_reaches_the_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.log");
        let mut log = WorkerLog::open(path.clone()).expect("open");
        log.write(b"");
        assert!(log.close().is_none(), "nothing to wait for");
        assert_eq!(std::fs::read(&path).expect("the log is made"), b"");
    }

    #[tokio::test]
    async fn a_log_goes_to_the_thread_with_its_first_bytes_and_is_whole_at_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.log");
        let mut log = WorkerLog::open(path.clone()).expect("open");
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
        let mut log = WorkerLog::open(path.clone()).expect("open");
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
