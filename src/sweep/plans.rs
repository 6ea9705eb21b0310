//! Running tasks' plans and `ipc/` files, read on a thread of their own.
//!
//! Reading a plan is a `stat` and, when it changed, a read: nothing on a
//! healthy disk, seconds on a stalled one; so are a task's questions, its
//! findings and its `ipc/.cancel`. The runner's thread serves every
//! worker's timeout and Ctrl-C, so it only asks; this thread owns the
//! [`PlanWatch`]es and the findings readers, looks when asked (every poll
//! tick, and when `ipc/` changes), sends what it found back ([`Read`]), and
//! gives each worker future its closing look (the plan, questions, findings
//! and `ipc/.done` as the worker left them) for the verdict, together with
//! the look for processes the worker left (`supervise::look_at_end`, one
//! read of `/proc` for the tasks that ended together): two hand-offs to
//! two threads at every task's end were one more wake of a thread, and of
//! the runner, than a sweep of short tasks needed. Requests are
//! served in order, so a task's closing look comes after every change seen
//! before it; and the runner takes what was sent before it handles the
//! worker's end (its loop is biased that way).
//!
//! After each batch the thread lets requests gather for [`GATHER`]
//! ([`crate::util::gather`]): a sweep of short tasks asks for a watch, an
//! `ipc/` read and a closing look per task, and a wake for each cost more
//! than the reads. What somebody waits for ends the window at once: a
//! closing look (a worker's end waits for it) and the read of an `ipc/`
//! that just changed (a question wants its answer at once; see
//! `benches/question_latency.sh`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use crate::domain::checklist::Checklist;
use crate::ipc::findings::{Finding, FindingsReader, Malformed};
use crate::ipc::questions::{self, Question};
use crate::state::plan_watch::{self as monitor, PlanWatch};
use crate::supervise::procfs::Marker;
use crate::supervise::{look_at_end, Leftovers};
use crate::util::gather::Gate;

/// How long requests gather after a batch: a plan change, a question or a
/// cancel is seen at most this much later.
const GATHER: Duration = Duration::from_millis(10);

/// A running task's plan changed.
pub(super) struct PlanChange {
    pub(super) index: usize,
    pub(super) before: Checklist,
    pub(super) now: Checklist,
}

/// What the reading thread sends the runner.
pub(super) enum Read {
    Plan(PlanChange),
    Ipc(IpcNews),
    /// These tasks have an `ipc/.cancel` (`dispatch cancel --task`).
    Cancelled(Vec<usize>),
}

/// A task's questions not yet settled (asked, or answered since) and its
/// new findings.
#[derive(Default)]
pub(super) struct IpcNews {
    pub(super) index: usize,
    pub(super) questions: Vec<Question>,
    pub(super) findings: Vec<Result<Finding, Malformed>>,
}

impl IpcNews {
    fn is_empty(&self) -> bool {
        self.questions.is_empty() && self.findings.is_empty()
    }
}

/// What a worker left, read once it ended.
#[derive(Default)]
pub(super) struct ClosingLook {
    /// `None` when `plan.md` is gone or unreadable.
    pub(super) plan: Option<Checklist>,
    /// What changed since the last look.
    pub(super) change: Option<(Checklist, Checklist)>,
    /// The worker touched `ipc/.done`.
    pub(super) done_marker: bool,
    /// Its questions and findings since the last look.
    pub(super) ipc: IpcNews,
}

/// A task's `ipc/` as the thread follows it, across its attempts.
struct TaskIpc {
    ipc: PathBuf,
    findings: FindingsReader,
    /// Questions already sent with their answer: nothing more to learn.
    settled: HashSet<u32>,
    /// Its worker runs: the regular poll looks at it.
    running: bool,
}

impl TaskIpc {
    fn read(&mut self, index: usize) -> IpcNews {
        let settled = &self.settled;
        let questions =
            questions::list_where(&self.ipc, |seq| !settled.contains(&seq)).unwrap_or_default();
        for question in &questions {
            if question.answer.is_some() {
                self.settled.insert(question.seq);
            }
        }
        IpcNews {
            index,
            questions,
            findings: self.findings.poll(),
        }
    }
}

enum Job {
    /// Watch a task's plan (`None`: read what is there first, a retry's)
    /// and its `ipc/` folder and findings file.
    Watch {
        index: usize,
        path: PathBuf,
        initial: Option<Checklist>,
        ipc: PathBuf,
        findings: FindingsReader,
    },
    /// Look at every watched plan.
    Poll,
    /// Read a running task's questions and findings, or every running
    /// task's (`None`).
    Ipc(Option<usize>),
    /// Which of these tasks' `ipc/` folders hold a `.cancel`.
    Cancels(Vec<(usize, PathBuf)>),
    /// The task's worker ended: one last look, and stop watching; and,
    /// given its marker, the look for the processes it left.
    Close {
        index: usize,
        plan: PathBuf,
        ipc: PathBuf,
        marker: Option<Marker>,
        reply: oneshot::Sender<(Leftovers, ClosingLook)>,
    },
    /// The task is done with in this run (no retry follows): what the
    /// thread kept of its `ipc/` across attempts goes.
    Forget(usize),
    /// How many tasks' `ipc/` the thread still follows.
    #[cfg(test)]
    Followed(oneshot::Sender<usize>),
}

/// The asking side; cheap to clone (each worker future holds one).
#[derive(Clone)]
pub(super) struct PlanReader {
    jobs: Sender<Job>,
    /// Closing looks and reads of a changed `ipc/` are urgent: they end
    /// the thread's gathering window.
    gate: Arc<Gate>,
    /// Why the reading thread could not start, for the run to warn about.
    pub(super) problem: Option<String>,
}

impl PlanReader {
    /// Start the reading thread; changes go to `changes`. It ends when
    /// every `PlanReader` is dropped.
    pub(super) fn start(changes: tokio_mpsc::UnboundedSender<Read>) -> PlanReader {
        PlanReader::start_gathering(changes, GATHER)
    }

    fn start_gathering(changes: tokio_mpsc::UnboundedSender<Read>, gather: Duration) -> PlanReader {
        let (jobs, queue) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        let thread_gate = Arc::clone(&gate);
        let builder = std::thread::Builder::new().name("dispatch-plans".to_owned());
        let spawned = crate::util::thread::spawn(builder, move || {
            read_loop(queue, changes, gather, &thread_gate)
        });
        if let Ok(thread) = &spawned {
            gate.serve(thread.thread().clone());
        }
        let problem = spawned.err().map(|e| {
            format!(
                "cannot start the plan reader thread: {e}; plans are read only when a worker ends"
            )
        });
        PlanReader {
            jobs,
            gate,
            problem,
        }
    }

    pub(super) fn watch(
        &self,
        index: usize,
        path: PathBuf,
        initial: Option<Checklist>,
        ipc: PathBuf,
        findings: FindingsReader,
    ) {
        let _ = self.jobs.send(Job::Watch {
            index,
            path,
            initial,
            ipc,
            findings,
        });
    }

    pub(super) fn poll(&self) {
        let _ = self.jobs.send(Job::Poll);
    }

    /// Stop following a task that ended for good. Without it the thread
    /// kept every task's `ipc/` path, findings reader and settled questions
    /// to the run's end (about 0.3 KiB a task, 17 MB at 50,000 tasks), and
    /// walked them all at every look for news.
    pub(super) fn forget(&self, index: usize) {
        let _ = self.jobs.send(Job::Forget(index));
    }

    #[cfg(test)]
    async fn followed(&self) -> usize {
        let (reply, count) = oneshot::channel();
        let _ = self.jobs.send(Job::Followed(reply));
        count.await.unwrap_or(usize::MAX)
    }

    /// Ask for a running task's questions and findings (`None`: every
    /// running task's); they come back as [`Read::Ipc`].
    pub(super) fn read_ipc(&self, index: Option<usize>) {
        if index.is_none() {
            // The regular poll: it may wait for the window.
            let _ = self.jobs.send(Job::Ipc(index));
            return;
        }
        self.gate.urgent();
        let _ = self.jobs.send(Job::Ipc(index));
        self.gate.wake();
    }

    /// Ask which of these tasks were cancelled; the answer comes back as
    /// [`Read::Cancelled`].
    pub(super) fn cancels(&self, tasks: Vec<(usize, PathBuf)>) {
        let _ = self.jobs.send(Job::Cancels(tasks));
    }

    /// The closing look at a task whose worker ended, and the look for
    /// what it left when its `marker` is given (see
    /// [`Running::wait_then`](crate::supervise::process::Running::wait_then)):
    /// both on one trip to the thread. Without the thread they are read
    /// here, on a blocking thread.
    pub(super) async fn close(
        &self,
        index: usize,
        plan: PathBuf,
        ipc: PathBuf,
        marker: Option<Marker>,
    ) -> (Leftovers, ClosingLook) {
        let (reply, look) = oneshot::channel();
        self.gate.urgent();
        let sent = self.jobs.send(Job::Close {
            index,
            plan: plan.clone(),
            ipc: ipc.clone(),
            marker: marker.clone(),
            reply,
        });
        self.gate.wake();
        if sent.is_ok() {
            if let Ok(look) = look.await {
                return look;
            }
        }
        // No thread: nothing was read while the worker ran, so all of
        // its findings file is new.
        tokio::task::spawn_blocking(move || {
            let findings = ipc.with_file_name(crate::state::layout::FINDINGS);
            let mut task = TaskIpc {
                findings: FindingsReader::new(findings),
                ipc: ipc.clone(),
                settled: HashSet::new(),
                running: false,
            };
            let look = closing_look(None, Some(&mut task), index, &plan, &ipc);
            let found = marker
                .and_then(|marker| look_at_end(&[&marker]).pop())
                .unwrap_or_default();
            (found, look)
        })
        .await
        .unwrap_or_default()
    }
}

fn read_loop(
    queue: Receiver<Job>,
    changes: tokio_mpsc::UnboundedSender<Read>,
    gather: Duration,
    gate: &Gate,
) {
    let mut watches: BTreeMap<usize, PlanWatch> = BTreeMap::new();
    let mut ipcs: BTreeMap<usize, TaskIpc> = BTreeMap::new();
    while let Ok(first) = queue.recv() {
        // Polls that queued up while a read was slow are one poll.
        let mut polled = false;
        // Closing looks, answered once the batch's look for leftovers is
        // made: one read of `/proc` for every task that ended together.
        let mut closed = Vec::new();
        // Jobs somebody waits for (see `Gate::urgent`), answered.
        let mut urgent = 0;
        for job in std::iter::once(first).chain(queue.try_iter().collect::<Vec<_>>()) {
            match job {
                Job::Watch {
                    index,
                    path,
                    initial,
                    ipc,
                    findings,
                } => {
                    let initial =
                        initial.unwrap_or_else(|| monitor::read_plan(&path).unwrap_or_default());
                    watches.insert(index, PlanWatch::new(path, initial));
                    // A retry goes on where the last attempt's reading
                    // stopped: its findings are not read twice.
                    ipcs.entry(index)
                        .or_insert_with(|| TaskIpc {
                            ipc,
                            findings,
                            settled: HashSet::new(),
                            running: true,
                        })
                        .running = true;
                }
                Job::Poll if polled => {}
                Job::Poll => {
                    polled = true;
                    for (&index, watch) in watches.iter_mut() {
                        if let Some((before, now)) = watch.poll() {
                            let _ = changes.send(Read::Plan(PlanChange { index, before, now }));
                        }
                    }
                }
                Job::Ipc(only) => {
                    urgent += usize::from(only.is_some());
                    let running = ipcs
                        .iter_mut()
                        .filter(|(&index, task)| task.running && only.is_none_or(|i| i == index));
                    for (&index, task) in running {
                        let news = task.read(index);
                        if !news.is_empty() {
                            let _ = changes.send(Read::Ipc(news));
                        }
                    }
                }
                Job::Cancels(tasks) => {
                    let cancelled: Vec<usize> = tasks
                        .into_iter()
                        .filter(|(_, ipc)| super::cancel::requested(ipc))
                        .map(|(index, _)| index)
                        .collect();
                    if !cancelled.is_empty() {
                        let _ = changes.send(Read::Cancelled(cancelled));
                    }
                }
                Job::Close {
                    index,
                    plan,
                    ipc,
                    marker,
                    reply,
                } => {
                    let task = ipcs.get_mut(&index);
                    let look = closing_look(watches.remove(&index), task, index, &plan, &ipc);
                    closed.push((marker, reply, look));
                    urgent += 1;
                }
                Job::Forget(index) => {
                    watches.remove(&index);
                    ipcs.remove(&index);
                }
                #[cfg(test)]
                Job::Followed(reply) => {
                    let _ = reply.send(ipcs.len());
                }
            }
        }
        answer_closed(closed);
        gate.answered(urgent);
        gate.gather(gather);
    }
}

/// A closing look made, waiting for the batch's look for leftovers: the
/// task's marker, where to answer, and the look.
type Closed = (
    Option<Marker>,
    oneshot::Sender<(Leftovers, ClosingLook)>,
    ClosingLook,
);

/// Answer the batch's closing looks, with what the one look at `/proc`
/// found for each that gave its marker.
fn answer_closed(closed: Vec<Closed>) {
    let markers: Vec<&Marker> = closed.iter().filter_map(|(m, _, _)| m.as_ref()).collect();
    let mut found = if markers.is_empty() {
        Vec::new()
    } else {
        look_at_end(&markers)
    }
    .into_iter();
    for (marker, reply, look) in closed {
        let left = match marker {
            Some(_) => found.next().unwrap_or_default(),
            None => Leftovers::default(),
        };
        let _ = reply.send((left, look));
    }
}

fn closing_look(
    watch: Option<PlanWatch>,
    task: Option<&mut TaskIpc>,
    index: usize,
    plan: &Path,
    ipc: &Path,
) -> ClosingLook {
    let (plan, change) = match watch {
        Some(watch) => watch.last_look(),
        None => (monitor::read_plan(plan), None),
    };
    let ipc_news = match task {
        Some(task) => {
            task.running = false;
            task.read(index)
        }
        None => IpcNews {
            index,
            ..IpcNews::default()
        },
    };
    ClosingLook {
        plan,
        change,
        done_marker: crate::ipc::questions::all_done(ipc),
        ipc: ipc_news,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that ended for good leaves nothing behind on the reading
    /// thread; one that may be retried keeps its reader (its findings are
    /// not read twice).
    #[tokio::test]
    async fn a_task_done_with_is_no_longer_followed() {
        let temp = tempfile::tempdir().expect("tempdir");
        let (changes, _read) = tokio_mpsc::unbounded_channel();
        let reader = PlanReader::start(changes);
        for index in 0..2 {
            let dir = temp.path().join(index.to_string());
            let ipc = dir.join("ipc");
            std::fs::create_dir_all(&ipc).expect("ipc folder");
            let findings = FindingsReader::new(dir.join(crate::state::layout::FINDINGS));
            reader.watch(index, dir.join("plan.md"), None, ipc.clone(), findings);
            reader.close(index, dir.join("plan.md"), ipc, None).await;
        }
        assert_eq!(reader.followed().await, 2, "kept for a retry");
        reader.forget(0);
        assert_eq!(reader.followed().await, 1);
        reader.forget(1);
        assert_eq!(reader.followed().await, 0);
    }

    /// A worker's end waits for its closing look, so the look must not
    /// wait for the thread's gathering window (here far longer than the
    /// test may take: only the wake can end it).
    #[tokio::test]
    async fn a_closing_look_ends_the_gathering_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (plan, ipc) = (dir.path().join("plan.md"), dir.path().join("ipc"));
        std::fs::create_dir(&ipc).expect("mkdir");
        std::fs::write(&plan, "- [x] one\n").expect("write");
        let (changes, mut read) = tokio_mpsc::unbounded_channel();
        let reader = PlanReader::start_gathering(changes, Duration::from_secs(600));
        let findings = FindingsReader::new(dir.path().join("findings.jsonl"));
        let before = crate::domain::checklist::parse("- [ ] one\n");
        reader.watch(0, plan.clone(), Some(before), ipc.clone(), findings);
        reader.poll();
        // The thread serves the watch (with the poll, whose news then
        // comes, or alone, the poll waiting for the window) and gathers.
        let news = tokio::time::timeout(Duration::from_millis(500), read.recv()).await;
        assert!(
            matches!(news, Ok(Some(Read::Plan(_))) | Err(_)),
            "other news"
        );
        let (_, look) =
            tokio::time::timeout(Duration::from_secs(120), reader.close(0, plan, ipc, None))
                .await
                .expect("the closing look came before the window ended");
        assert_eq!(look.plan.map(|p| p.counts().done), Some(1));
    }

    /// The read of an `ipc/` that changed (a question waits for its
    /// answer) does not wait for the window either.
    #[tokio::test]
    async fn a_changed_ipc_is_read_before_the_gathering_window_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (plan, ipc) = (dir.path().join("plan.md"), dir.path().join("ipc"));
        std::fs::create_dir(&ipc).expect("mkdir");
        std::fs::write(&plan, "- [ ] one\n").expect("write");
        let findings_path = dir.path().join("findings.jsonl");
        let (changes, mut read) = tokio_mpsc::unbounded_channel();
        let reader = PlanReader::start_gathering(changes, Duration::from_secs(600));
        let findings = FindingsReader::new(findings_path.clone());
        reader.watch(0, plan, None, ipc, findings);
        reader.poll();
        std::fs::write(&findings_path, "not a finding\n").expect("write");
        reader.read_ipc(Some(0));
        let news = tokio::time::timeout(Duration::from_secs(120), read.recv())
            .await
            .expect("read before the window ended");
        assert!(matches!(news, Some(Read::Ipc(news)) if news.findings.len() == 1));
    }
}
