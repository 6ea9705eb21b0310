//! Running tasks' plans and `ipc/` files, read on a thread of their own.
//!
//! Reading a plan is a `stat` and, when it changed, a read: nothing on a
//! healthy disk, seconds on a stalled one; so are a task's questions, its
//! findings and its `ipc/.cancel`. The runner's thread serves every
//! worker's timeout and Ctrl-C, so it only asks; this thread owns the
//! [`PlanWatch`]es and the findings readers, looks when asked (every poll
//! tick, and when `ipc/` changes), sends what it found back ([`Read`]), and
//! gives each worker future its closing look (the plan, questions, findings
//! and `ipc/.done` as the worker left them) for the verdict. Requests are
//! served in order, so a task's closing look comes after every change seen
//! before it; and the runner takes what was sent before it handles the
//! worker's end (its loop is biased that way).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};

use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use crate::domain::checklist::Checklist;
use crate::ipc::findings::{Finding, FindingsReader, Malformed};
use crate::ipc::questions::{self, Question};
use crate::state::plan_watch::{self as monitor, PlanWatch};

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
    /// The task's worker ended: one last look, and stop watching.
    Close {
        index: usize,
        plan: PathBuf,
        ipc: PathBuf,
        reply: oneshot::Sender<ClosingLook>,
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
    /// Why the reading thread could not start, for the run to warn about.
    pub(super) problem: Option<String>,
}

impl PlanReader {
    /// Start the reading thread; changes go to `changes`. It ends when
    /// every `PlanReader` is dropped.
    pub(super) fn start(changes: tokio_mpsc::UnboundedSender<Read>) -> PlanReader {
        let (jobs, queue) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("dispatch-plans".to_owned())
            .spawn(move || read_loop(queue, changes));
        let problem = spawned.err().map(|e| {
            format!(
                "cannot start the plan reader thread: {e}; plans are read only when a worker ends"
            )
        });
        PlanReader { jobs, problem }
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
        let _ = self.jobs.send(Job::Ipc(index));
    }

    /// Ask which of these tasks were cancelled; the answer comes back as
    /// [`Read::Cancelled`].
    pub(super) fn cancels(&self, tasks: Vec<(usize, PathBuf)>) {
        let _ = self.jobs.send(Job::Cancels(tasks));
    }

    /// The closing look at a task whose worker ended. Without the thread
    /// it is read here, on a blocking thread.
    pub(super) async fn close(&self, index: usize, plan: PathBuf, ipc: PathBuf) -> ClosingLook {
        let (reply, look) = oneshot::channel();
        let sent = self.jobs.send(Job::Close {
            index,
            plan: plan.clone(),
            ipc: ipc.clone(),
            reply,
        });
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
            closing_look(None, Some(&mut task), index, &plan, &ipc)
        })
        .await
        .unwrap_or_default()
    }
}

fn read_loop(queue: Receiver<Job>, changes: tokio_mpsc::UnboundedSender<Read>) {
    let mut watches: BTreeMap<usize, PlanWatch> = BTreeMap::new();
    let mut ipcs: BTreeMap<usize, TaskIpc> = BTreeMap::new();
    while let Ok(first) = queue.recv() {
        // Polls that queued up while a read was slow are one poll.
        let mut polled = false;
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
                    reply,
                } => {
                    let task = ipcs.get_mut(&index);
                    let look = closing_look(watches.remove(&index), task, index, &plan, &ipc);
                    let _ = reply.send(look);
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
            reader.close(index, dir.join("plan.md"), ipc).await;
        }
        assert_eq!(reader.followed().await, 2, "kept for a retry");
        reader.forget(0);
        assert_eq!(reader.followed().await, 1);
        reader.forget(1);
        assert_eq!(reader.followed().await, 0);
    }
}
