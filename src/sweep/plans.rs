//! Running tasks' plans, read on a thread of their own.
//!
//! Reading a plan is a `stat` and, when it changed, a read: nothing on a
//! healthy disk, seconds on a stalled one. The runner's thread serves every
//! worker's timeout and Ctrl-C, so it only asks; this thread owns the
//! [`PlanWatch`]es, looks at them when asked (every poll tick), sends what
//! changed back, and gives each worker future its closing look (the plan
//! and `ipc/.done` as the worker left them) for the verdict. Requests are
//! served in order, so a task's closing look comes after every change seen
//! before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};

use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use crate::domain::checklist::Checklist;
use crate::state::plan_watch::{self as monitor, PlanWatch};

/// A running task's plan changed.
pub(super) struct PlanChange {
    pub(super) index: usize,
    pub(super) before: Checklist,
    pub(super) now: Checklist,
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
}

enum Job {
    /// Watch a task's plan; `None`: read what is there first (a retry's).
    Watch {
        index: usize,
        path: PathBuf,
        initial: Option<Checklist>,
    },
    /// Look at every watched plan.
    Poll,
    /// The task's worker ended: one last look, and stop watching.
    Close {
        index: usize,
        plan: PathBuf,
        ipc: PathBuf,
        reply: oneshot::Sender<ClosingLook>,
    },
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
    pub(super) fn start(changes: tokio_mpsc::UnboundedSender<PlanChange>) -> PlanReader {
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

    pub(super) fn watch(&self, index: usize, path: PathBuf, initial: Option<Checklist>) {
        let _ = self.jobs.send(Job::Watch {
            index,
            path,
            initial,
        });
    }

    pub(super) fn poll(&self) {
        let _ = self.jobs.send(Job::Poll);
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
        tokio::task::spawn_blocking(move || closing_look(None, &plan, &ipc))
            .await
            .unwrap_or_default()
    }
}

fn read_loop(queue: Receiver<Job>, changes: tokio_mpsc::UnboundedSender<PlanChange>) {
    let mut watches: BTreeMap<usize, PlanWatch> = BTreeMap::new();
    while let Ok(first) = queue.recv() {
        // Polls that queued up while a read was slow are one poll.
        let mut polled = false;
        for job in std::iter::once(first).chain(queue.try_iter().collect::<Vec<_>>()) {
            match job {
                Job::Watch {
                    index,
                    path,
                    initial,
                } => {
                    let initial =
                        initial.unwrap_or_else(|| monitor::read_plan(&path).unwrap_or_default());
                    watches.insert(index, PlanWatch::new(path, initial));
                }
                Job::Poll if polled => {}
                Job::Poll => {
                    polled = true;
                    for (&index, watch) in watches.iter_mut() {
                        if let Some((before, now)) = watch.poll() {
                            let _ = changes.send(PlanChange { index, before, now });
                        }
                    }
                }
                Job::Close {
                    index,
                    plan,
                    ipc,
                    reply,
                } => {
                    let look = closing_look(watches.remove(&index), &plan, &ipc);
                    let _ = reply.send(look);
                }
            }
        }
    }
}

fn closing_look(watch: Option<PlanWatch>, plan: &Path, ipc: &Path) -> ClosingLook {
    let (plan, change) = match watch {
        Some(watch) => watch.last_look(),
        None => (monitor::read_plan(plan), None),
    };
    ClosingLook {
        plan,
        change,
        done_marker: crate::ipc::questions::all_done(ipc),
    }
}
