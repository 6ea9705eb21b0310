//! `/proc` reads a task needs while it runs, on one thread of their own:
//! the look for strays at each task's end, and the start time of each new
//! worker. (A sweep's workers have their end's look made by the sweep's
//! file-reading thread instead, with the task's last plan: see
//! [`crate::supervise::process::Running::wait_then`]. This thread makes it
//! for every other process dispatch runs: hooks, checks.)
//!
//! Every task's end looks for what its worker left behind (`reaper`),
//! after the worker exits and before the end is reported, and the look
//! reads `/proc`, which is never done on the runtime's thread. A blocking
//! job per task cost a hand-off to the blocking pool and back, and a read
//! of this process's `children`, for each of a sweep's tasks: the largest
//! piece of a short task's cost in the runner. So one long-lived thread
//! serves them: each ending task queues its marker, and the thread takes
//! every look queued by then, reads `/proc` once for all of them, and
//! answers each with what carries its own marker. A read started after a
//! look was queued sees what that task's worker left as well as a read of
//! its own would; tasks that end together share it.
//!
//! A new worker's start time (recorded beside its pid, so a later signal
//! can tell it from a process that reused the pid) was read on the
//! runtime's thread right after the spawn. The worker is then still
//! loading its program, and the kernel makes `/proc/PID/stat` wait for
//! that: the read cost the runner more than the rest of a launch's file
//! work (8% of a short sweep's wall time). Here it is read a moment later
//! ([`IDENTIFY_AFTER`]), off the runner's path, not at all for a worker
//! that has ended by then, and it is kept only if the worker was not yet
//! reaped when it was read ([`identified`]), since after that its pid may
//! name another process.
//!
//! Stopping what was found (SIGTERM, grace, SIGKILL) takes seconds at
//! worst, so it is the asking task's own blocking job, as before: one
//! task's stubborn daemon holds up no other task's look.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::procfs::Marker;
use super::reaper::{self, Found, Scope, Stray};

/// One task's look: its marker, and where to send what carries it.
struct Look {
    marker: Marker,
    reply: oneshot::Sender<Vec<Found>>,
}

/// A new worker to read the start time of, and whom to give it to. (None
/// is made off Linux, where there is no `/proc` to read it from.)
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Identify {
    pid: u32,
    /// Opened before the worker could be reaped: it tells whether the pid
    /// still names the worker when its start time is read.
    pidfd: OwnedFd,
    reply: Box<dyn FnOnce(u64) + Send>,
}

enum Job {
    Look(Look),
    /// A start time was queued while none was waiting: the thread must
    /// now wake when it is due.
    Due,
}

/// Start times still to read, oldest first, each with when it is due.
/// They wait beside the queue rather than in it: a queued job wakes the
/// thread, and a sweep of short tasks would wake it at every launch for a
/// read that is not due yet (and that the worker's end usually makes
/// needless).
type DueList = Mutex<VecDeque<(Instant, Identify)>>;

static DUE: DueList = Mutex::new(VecDeque::new());

/// How long after its launch a worker's start time is read. Right after
/// the spawn the worker is still loading its program, which the read has
/// to wait for; a worker that has ended by then needs no start time. Not
/// longer: each start time waiting holds a pidfd open, and every spawn
/// copies the process's descriptor table (at 50 ms a sweep of short tasks
/// kept eighty of them open).
const IDENTIFY_AFTER: Duration = Duration::from_millis(10);

/// Start times queued within this long of each other are read together,
/// on one wake of the thread: each at least `IDENTIFY_AFTER` less this
/// after its launch.
const IDENTIFY_TOGETHER: Duration = Duration::from_millis(5);

/// The looking thread's queue; `None` when the thread could not start.
static LOOKER: OnceLock<Option<Sender<Job>>> = OnceLock::new();

fn looker() -> Option<&'static Sender<Job>> {
    LOOKER
        .get_or_init(|| {
            let (looks, queue) = mpsc::channel();
            let builder = std::thread::Builder::new().name("dispatch-strays".to_owned());
            crate::util::thread::spawn(builder, move || {
                serve(&queue, Scope::Ours, &DUE);
            })
            .ok()
            .map(|_| looks)
        })
        .as_ref()
}

/// What a task's end-of-task look found: processes that carry its marker
/// and outlived its worker, still to be stopped (`stop_found`).
#[derive(Default)]
pub struct Leftovers(Vec<Found>);

/// The end-of-task look for several ending tasks, from one read of
/// `/proc`: blocking, for a thread that reads files for the run (never the
/// runtime's). One per marker, in order.
pub fn look_at_end(markers: &[&Marker]) -> Vec<Leftovers> {
    reaper::find_each(markers, Scope::Ours)
        .into_iter()
        .map(Leftovers)
        .collect()
}

/// The end-of-task look for one task, on the looking thread (or, without
/// it, on a blocking thread).
pub async fn look(marker: Marker) -> Leftovers {
    let Some(looks) = looker() else {
        return tokio::task::spawn_blocking(move || {
            look_at_end(&[&marker]).pop().unwrap_or_default()
        })
        .await
        .unwrap_or_default();
    };
    let (reply, answer) = oneshot::channel();
    if looks.send(Job::Look(Look { marker, reply })).is_err() {
        return Leftovers::default();
    }
    Leftovers(answer.await.unwrap_or_default())
}

/// Stop what a look found (SIGTERM, `grace`, SIGKILL), on a blocking
/// thread. `when` says when, for the record.
pub async fn stop_found(found: Leftovers, grace: Duration, when: &'static str) -> Vec<Stray> {
    if found.0.is_empty() {
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || reaper::stop(found.0, grace, when))
        .await
        .unwrap_or_default()
}

/// Hand `pid`'s start time (`/proc/PID/stat`) to `reply`, read on the
/// looking thread [`IDENTIFY_AFTER`] from now; `reply` is dropped uncalled
/// when the worker has exited by then, or the time cannot be read. `pid`
/// must be a child of this process not yet waited for, as a just-started
/// worker is. Without `/proc` (not Linux) there is no start time to read.
pub fn identify(pid: u32, reply: impl FnOnce(u64) + Send + 'static) {
    let Some(pidfd) = pidfd_open(pid) else {
        return;
    };
    let job = Identify {
        pid,
        pidfd,
        reply: Box::new(reply),
    };
    let Some(looks) = looker() else {
        // No thread for looks: read off the runtime's thread all the same,
        // on a blocking job of its own.
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(IDENTIFY_AFTER);
            identified(job, super::procfs::start_time);
        });
        return;
    };
    let first = {
        let mut due = DUE.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = Instant::now() + IDENTIFY_AFTER;
        if let Some((last, _)) = due.back() {
            if *last + IDENTIFY_TOGETHER >= at {
                at = *last;
            }
        }
        due.push_back((at, job));
        due.len() == 1
    };
    if first {
        let _ = looks.send(Job::Due);
    }
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: u32) -> Option<OwnedFd> {
    None
}

/// Answer one [`Identify`] with the start time `read` gives, if the worker
/// still runs: one that has exited needs no start time, and once it has
/// been reaped its pid may name another process. `waitid` on its pidfd,
/// which reaps nothing, tells which, before the read and after it.
#[cfg(target_os = "linux")]
fn identified(job: Identify, read: impl FnOnce(u32) -> Option<u64>) {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let state = || {
        waitid(
            WaitId::PidFd(std::os::fd::AsFd::as_fd(&job.pidfd)),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        )
    };
    // `Ok(None)`: not exited. A zombie gives `Ok(Some(_))`, a reaped
    // worker an error.
    if !matches!(state(), Ok(None)) {
        return;
    }
    let Some(start_time) = read(job.pid) else {
        return;
    };
    if state().is_ok() {
        (job.reply)(start_time);
    }
}

#[cfg(not(target_os = "linux"))]
fn identified(job: Identify, _read: impl FnOnce(u32) -> Option<u64>) {
    drop(job);
}

/// The looking thread: the looks queued when it wakes are answered from
/// one read, and start times are read once due, until the queue's senders
/// are gone (never, in a run); then what is still due is read as it comes
/// due. Returns how many reads for looks that took (fewer than the looks
/// when they queued up).
fn serve(queue: &Receiver<Job>, scope: Scope, due: &DueList) -> usize {
    let mut reads = 0;
    loop {
        let next = due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .map(|(at, _)| *at);
        let job = match next {
            Some(at) => match queue.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match queue.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        let looks: Vec<Look> = job
            .into_iter()
            .chain(queue.try_iter())
            .filter_map(|job| match job {
                Job::Look(look) => Some(look),
                Job::Due => None,
            })
            .collect();
        if !looks.is_empty() {
            answer(looks, scope);
            reads += 1;
        }
        read_due(due, false);
    }
    read_due(due, true);
    reads
}

/// Read the start times that are due (all of them, waiting for each, when
/// `all`).
fn read_due(due: &DueList, all: bool) {
    loop {
        let job = {
            let mut due = due.lock().unwrap_or_else(|e| e.into_inner());
            match due.front() {
                Some((at, _)) if all || *at <= Instant::now() => due.pop_front(),
                _ => None,
            }
        };
        let Some((at, job)) = job else {
            return;
        };
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        identified(job, super::procfs::start_time);
    }
}

fn answer(batch: Vec<Look>, scope: Scope) {
    let markers: Vec<&Marker> = batch.iter().map(|look| &look.marker).collect();
    let found = reaper::find_each(&markers, scope);
    for (look, found) in batch.into_iter().zip(found) {
        // The task may have been dropped meanwhile (the run was cut
        // short); nobody is left to tell.
        let _ = look.reply.send(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    fn marked_sleep(run: &str, task: &str) -> Child {
        let child = Command::new("sleep")
            .arg("30")
            .env("DISPATCH_RUN_ID", run)
            .env("DISPATCH_TASK_ID", task)
            .spawn()
            .expect("sleep");
        super::super::procfs::wait_for_environ(child.id());
        child
    }

    /// Two tasks whose looks were queued together: one read answers both,
    /// and each gets its own processes, not the other's. (A test thread is
    /// not the leader whose `children` the task-end look reads, so this
    /// looks anywhere, as a dead run's leftovers are looked for.)
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn looks_queued_together_each_get_their_own_strays() {
        let run = format!("looks-test-{}", std::process::id());
        let mut a = marked_sleep(&run, "a");
        let mut b1 = marked_sleep(&run, "b");
        let mut b2 = marked_sleep(&run, "b");
        let mut other = marked_sleep(&run, "c");
        let (looks, queue) = mpsc::channel();
        let mut answers = Vec::new();
        for task in ["a", "b", "d"] {
            let (reply, answer) = oneshot::channel();
            looks
                .send(Job::Look(Look {
                    marker: Marker::task(&run, task),
                    reply,
                }))
                .expect("queued");
            answers.push(answer);
        }
        drop(looks);
        assert_eq!(
            serve(&queue, Scope::Anywhere, &DueList::default()),
            1,
            "one read for three looks"
        );
        let pids: Vec<Vec<u32>> = answers
            .into_iter()
            .map(|answer| {
                let mut pids: Vec<u32> = answer
                    .blocking_recv()
                    .expect("answered")
                    .into_iter()
                    .map(|f| reaper::stop(vec![f], Duration::from_millis(200), "test")[0].pid)
                    .collect();
                pids.sort_unstable();
                pids
            })
            .collect();
        let mut b = vec![b1.id(), b2.id()];
        b.sort_unstable();
        assert_eq!(pids, vec![vec![a.id()], b, vec![]]);
        for child in [&mut a, &mut b1, &mut b2] {
            // Stopped above; reaped here (or already, by the reaper).
            let _ = child.wait();
        }
        assert!(
            other.try_wait().expect("try_wait").is_none(),
            "another task's process is left alone"
        );
        let _ = other.kill();
        let _ = other.wait();
    }

    fn identify_job(child: &Child) -> (Identify, std::sync::mpsc::Receiver<u64>) {
        let (sent, got) = std::sync::mpsc::channel();
        let job = Identify {
            pid: child.id(),
            pidfd: pidfd_open(child.id()).expect("pidfd"),
            reply: Box::new(move |start_time| {
                let _ = sent.send(start_time);
            }),
        };
        (job, got)
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn a_running_worker_is_identified_by_its_start_time() {
        let mut child = marked_sleep("identify-test", "a");
        let (job, got) = identify_job(&child);
        identified(job, super::super::procfs::start_time);
        let expected = super::super::procfs::start_time(child.id()).expect("readable");
        assert_eq!(got.try_recv(), Ok(expected));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Exited but not reaped: its pid is still its own, but it needs no
    /// start time, and none is read.
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: pidfd")]
    fn a_worker_that_has_exited_is_not_read() {
        let mut child = Command::new("true").spawn().expect("true");
        let (job, got) = identify_job(&child);
        #[cfg(target_os = "linux")]
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(std::os::fd::AsFd::as_fd(&job.pidfd)),
            rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT,
        );
        identified(job, |_| panic!("read the start time of an exited worker"));
        assert!(got.try_recv().is_err(), "no start time for it");
        let _ = child.wait();
    }

    /// The worker is reaped while its start time is read: what was read may
    /// be another process's, which took the pid, so it is not kept.
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: pidfd")]
    fn a_start_time_read_after_the_worker_was_reaped_is_not_kept() {
        let mut child = marked_sleep("identify-test", "b");
        let (job, got) = identify_job(&child);
        identified(job, |_| {
            let _ = child.kill();
            let _ = child.wait();
            Some(42)
        });
        assert!(
            got.try_recv().is_err(),
            "a start time after the reap was kept"
        );
    }

    /// Queued start times are read once due, not when queued, and the
    /// thread wakes for them by itself.
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn a_start_time_is_read_when_due() {
        let mut child = marked_sleep("identify-test", "c");
        let (job, got) = identify_job(&child);
        let due: &'static DueList = Box::leak(Box::default());
        due.lock()
            .expect("due")
            .push_back((Instant::now() + Duration::from_millis(300), job));
        let (looks, queue) = mpsc::channel();
        let thread = std::thread::spawn(move || serve(&queue, Scope::Anywhere, due));
        looks.send(Job::Due).expect("queued");
        assert!(got.try_recv().is_err(), "read before it was due");
        let expected = super::super::procfs::start_time(child.id()).expect("readable");
        assert_eq!(got.recv_timeout(Duration::from_secs(10)), Ok(expected));
        drop(looks);
        thread.join().expect("served");
        let _ = child.kill();
        let _ = child.wait();
    }
}
