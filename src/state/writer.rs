//! State writes on a thread of their own.
//!
//! The runner's one thread serves every worker's timeout and Ctrl-C. A
//! state file written there (a `task.json` save, an `events.jsonl` line)
//! holds all of that up for as long as the disk takes, and a stalled disk
//! (a full NFS server, a laptop's failing drive) takes seconds. So the
//! runner only serialises what to write and hands the bytes over; this
//! thread writes them, in order, and the runner waits for it only at the
//! end of the run ([`Writer::flush`]).
//!
//! When writes queue up, the thread catches up in one go: a file rewritten
//! several times is written once, with its last contents, and the lines
//! for an append-only log go out in one `write`.
//!
//! After each batch the thread lets writes gather for [`GATHER`] before it
//! looks again ([`crate::util::gather`]). A sweep of short tasks sends a
//! save and an event line at every start and end; woken for each, the
//! thread cost a sleep and a wake (two context switches) per write, more
//! than the writes. A sender never wakes a gathering thread;
//! [`Writer::flush`] does, so the run's end does not wait for the window.
//!
//! A write that fails is kept as a problem ([`Writer::problems`]) for the
//! runner to emit as a warning: this layer has no output of its own, and
//! what reaches the terminal or a CI log goes through the reporters, which
//! redact and escape it (`events::reporter`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::gather::Gate;

/// How long writes gather after a batch before the thread looks again: a
/// state file is at most this much later on disk (and a reader such as
/// `dispatch status` that much behind), in exchange for one wake per window
/// instead of one per write.
pub const GATHER: Duration = Duration::from_millis(10);

/// One log file the writer appends to, handed over with [`Writer::adopt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogId(usize);

enum Job {
    /// Replace a state file atomically with these bytes.
    Replace { path: PathBuf, bytes: Vec<u8> },
    /// Take over an open append-only file.
    Adopt { id: LogId, file: File },
    /// Append these bytes to an adopted file.
    Append { id: LogId, bytes: Vec<u8> },
    /// Answer once every job sent before has been done.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The sending side: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Writer {
    jobs: Sender<Job>,
    /// Flushes are urgent: they end the thread's gathering window.
    gate: Arc<Gate>,
    next_log: Arc<AtomicUsize>,
    /// What could not be written, not yet taken.
    problems: Arc<Problems>,
}

/// Failed writes, said in a line each.
type Problems = Mutex<Vec<String>>;

impl Writer {
    /// Start the writing thread. It ends once every `Writer` is dropped and
    /// what they sent is written.
    pub fn start() -> Writer {
        Writer::start_gathering(GATHER)
    }

    fn start_gathering(gather: Duration) -> Writer {
        let (jobs, queue) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        let thread_gate = Arc::clone(&gate);
        let problems = Arc::new(Problems::default());
        let thread_problems = Arc::clone(&problems);
        let builder = std::thread::Builder::new().name("dispatch-writer".to_owned());
        let spawned = crate::util::thread::spawn(builder, move || {
            write_loop(queue, gather, &thread_gate, &thread_problems);
        });
        if let Ok(thread) = &spawned {
            gate.serve(thread.thread().clone());
        }
        if let Err(e) = spawned {
            // No thread: the jobs queue up unwritten, so say so once; the
            // run itself goes on (its terminal output does not depend on it).
            note(
                &problems,
                format!(
                    "cannot start the state writer thread: {e}; state files will not be updated"
                ),
            );
        }
        Writer {
            jobs,
            gate,
            next_log: Default::default(),
            problems,
        }
    }

    /// What could not be written since the last call, a line each, for
    /// the runner to warn about.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *problems)
    }

    /// Replace `path` with `bytes` (atomically, as [`super::write_state`]).
    pub fn replace(&self, path: PathBuf, bytes: Vec<u8>) {
        let _ = self.jobs.send(Job::Replace { path, bytes });
    }

    /// Replace `path` with `value` as pretty JSON, serialised here (on the
    /// caller's thread, so the value need not be sent).
    pub fn replace_json<T: serde::Serialize>(&self, path: PathBuf, value: &T) {
        self.replace(path, super::pretty_json(value));
    }

    /// Hand over an open append-only file; appends to it go through
    /// [`Writer::append`] from now on.
    pub fn adopt(&self, file: File) -> LogId {
        let id = LogId(self.next_log.fetch_add(1, Ordering::Relaxed));
        let _ = self.jobs.send(Job::Adopt { id, file });
        id
    }

    pub fn append(&self, id: LogId, bytes: Vec<u8>) {
        let _ = self.jobs.send(Job::Append { id, bytes });
    }

    /// Wait until everything sent so far is written (or given up on).
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        self.gate.urgent();
        if self.jobs.send(Job::Flush(done)).is_ok() {
            self.gate.wake();
            let _ = written.await;
        }
    }
}

/// Write what comes until every sender is gone, letting jobs gather for
/// `gather` after each batch; returns how many writes that took (fewer
/// than the jobs when they queued up).
fn write_loop(queue: Receiver<Job>, gather: Duration, gate: &Gate, problems: &Problems) -> usize {
    let delay = test_delay();
    let mut writes = 0;
    let mut logs: HashMap<LogId, File> = HashMap::new();
    // The project root, open for the run; a task's folder once per batch.
    let mut folders = super::beneath::Folders::default();
    while let Ok(first) = queue.recv() {
        // Everything queued behind it too: a file rewritten three times
        // while the disk was slow is written once.
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        // By path: a file queued again keeps its place and takes the
        // newer bytes.
        let mut replaces: indexmap::IndexMap<PathBuf, Vec<u8>> = indexmap::IndexMap::new();
        let mut appends: Vec<(LogId, Vec<u8>)> = Vec::new();
        let mut done_flushes = Vec::new();
        for job in batch {
            match job {
                Job::Replace { path, bytes } => {
                    replaces.insert(path, bytes);
                }
                Job::Adopt { id, file } => {
                    logs.insert(id, file);
                }
                Job::Append { id, mut bytes } => match appends.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, pending)) => pending.append(&mut bytes),
                    None => appends.push((id, bytes)),
                },
                Job::Flush(done) => done_flushes.push(done),
            }
        }
        for (id, bytes) in appends {
            pause(delay);
            writes += 1;
            let failed = logs
                .get_mut(&id)
                .is_some_and(|file| file.write_all(&bytes).is_err());
            if failed {
                // A log that cannot be written is dropped rather than
                // stopping the run, as before the writer had a thread.
                logs.remove(&id);
            }
        }
        for (path, bytes) in replaces {
            pause(delay);
            writes += 1;
            if let Err(e) = super::write_state_in(&mut folders, &path, &bytes) {
                note(problems, format!("cannot update {}: {e}", path.display()));
            }
        }
        folders.end_batch();
        let answered = done_flushes.len();
        for done in done_flushes {
            let _ = done.send(());
        }
        gate.answered(answered);
        // After a flush it waits on the queue at once (the run's end, or a
        // caller that wants what it writes next on disk promptly).
        if answered == 0 {
            gate.gather(gather);
        }
    }
    writes
}

fn note(problems: &Problems, problem: String) {
    problems
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(problem);
}

fn pause(delay: Option<Duration>) {
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
}

/// Tests make every write slow (`DISPATCH_TEST_WRITE_DELAY_MS`) to show
/// that a stalled disk stalls no timeout or interrupt. Debug builds only:
/// a release build never reads the variable.
#[cfg(debug_assertions)]
pub fn test_delay() -> Option<Duration> {
    std::env::var("DISPATCH_TEST_WRITE_DELAY_MS")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

#[cfg(not(debug_assertions))]
pub fn test_delay() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails is kept for the runner to warn about (the
    /// writer prints nothing itself), and taken once.
    #[tokio::test]
    async fn a_failed_write_is_kept_as_a_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_folder = dir.path().join("file");
        std::fs::write(&not_a_folder, "").expect("write");
        let writer = Writer::start();
        writer.replace(not_a_folder.join("task.json"), b"{}".to_vec());
        writer.flush().await;
        let problems = writer.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("cannot update ") && problems[0].contains("task.json"),
            "{problems:?}"
        );
        assert!(writer.problems().is_empty(), "taken once");
    }

    #[tokio::test]
    async fn writes_land_in_order_and_flush_waits_for_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Writer::start();
        let path = dir.path().join("task.json");
        for n in 0..50 {
            writer.replace(path.clone(), format!("{n}\n").into_bytes());
        }
        let log = writer
            .adopt(super::super::open_append(&dir.path().join("events.jsonl")).expect("open"));
        for n in 0..3 {
            writer.append(log, format!("line {n}\n").into_bytes());
        }
        writer.flush().await;
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "49\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("events.jsonl")).expect("read"),
            "line 0\nline 1\nline 2\n"
        );
    }

    /// The gathering window holds a write back (so a burst of writes costs
    /// the thread one wake), and a flush cuts it short. The window here is
    /// far longer than any test runs, so a slow machine cannot make the
    /// write land "in time" by luck.
    #[tokio::test]
    async fn a_write_waits_for_the_window_and_a_flush_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Writer::start_gathering(Duration::from_secs(600));
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        writer.replace(first.clone(), b"1".to_vec());
        writer.flush().await;
        assert!(first.is_file());
        // The thread answered the flush and, with nothing queued, parks in
        // `recv`; this write wakes it, and it then gathers.
        writer.replace(first.clone(), b"2".to_vec());
        while std::fs::read(&first).ok().as_deref() != Some(b"2".as_slice()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.replace(second.clone(), b"3".to_vec());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.exists(), "written while the thread gathers");
        writer.flush().await;
        assert_eq!(std::fs::read(&second).expect("flushed"), b"3");
    }

    #[test]
    fn writes_that_queued_up_are_made_once_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (jobs, queue) = mpsc::channel();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        for n in 0..20 {
            for path in [&a, &b] {
                let bytes = format!("{n}\n").into_bytes();
                jobs.send(Job::Replace {
                    path: path.clone(),
                    bytes,
                })
                .expect("queued");
            }
        }
        let file = super::super::open_append(&dir.path().join("events.jsonl")).expect("open");
        jobs.send(Job::Adopt { id: LogId(0), file })
            .expect("queued");
        for n in 0..5 {
            let bytes = format!("line {n}\n").into_bytes();
            jobs.send(Job::Append {
                id: LogId(0),
                bytes,
            })
            .expect("queued");
        }
        drop(jobs);
        // All of it queued before the loop ran: one write per file.
        let problems = Problems::default();
        assert_eq!(
            write_loop(queue, Duration::ZERO, &Gate::default(), &problems),
            3
        );
        assert!(problems.lock().expect("lock").is_empty());
        assert_eq!(std::fs::read_to_string(&a).expect("a"), "19\n");
        assert_eq!(std::fs::read_to_string(&b).expect("b"), "19\n");
        let log = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("log");
        assert_eq!(log.lines().count(), 5);
    }
}
