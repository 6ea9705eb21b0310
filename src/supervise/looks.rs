//! The look for strays at each task's end, coalesced.
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
//! Stopping what was found (SIGTERM, grace, SIGKILL) takes seconds at
//! worst, so it is the asking task's own blocking job, as before: one
//! task's stubborn daemon holds up no other task's look.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::oneshot;

use super::procfs::Marker;
use super::reaper::{self, Found, Scope, Stray};

/// One task's look: its marker, and where to send what carries it.
struct Look {
    marker: Marker,
    reply: oneshot::Sender<Vec<Found>>,
}

/// The looking thread's queue; `None` when the thread could not start.
static LOOKER: OnceLock<Option<Sender<Look>>> = OnceLock::new();

fn looker() -> Option<&'static Sender<Look>> {
    LOOKER
        .get_or_init(|| {
            let (looks, queue) = mpsc::channel();
            std::thread::Builder::new()
                .name("dispatch-strays".to_owned())
                .spawn(move || {
                    serve(&queue, Scope::Ours);
                })
                .ok()
                .map(|_| looks)
        })
        .as_ref()
}

/// Stop the processes still alive that carry `marker` (a task's, whose
/// worker has exited): found by the shared look, stopped on a blocking
/// thread. `when` says when, for the record.
pub async fn stop_strays(marker: Marker, grace: Duration, when: &'static str) -> Vec<Stray> {
    let found = match looker() {
        Some(looks) => {
            let (reply, answer) = oneshot::channel();
            if looks.send(Look { marker, reply }).is_err() {
                return Vec::new();
            }
            answer.await.unwrap_or_default()
        }
        // No thread for looks: a blocking job of its own, as it takes.
        None => {
            return tokio::task::spawn_blocking(move || {
                reaper::stop_marked(&marker, Scope::Ours, grace, when)
            })
            .await
            .unwrap_or_default();
        }
    };
    if found.is_empty() {
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || reaper::stop(found, grace, when))
        .await
        .unwrap_or_default()
}

/// The looking thread: every look queued when it wakes is answered from
/// one read, until the queue's senders are gone (never, in a run). Returns
/// how many reads that took (fewer than the looks when they queued up).
fn serve(queue: &Receiver<Look>, scope: Scope) -> usize {
    let mut reads = 0;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        answer(batch, scope);
        reads += 1;
    }
    reads
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
        Command::new("sleep")
            .arg("30")
            .env("DISPATCH_RUN_ID", run)
            .env("DISPATCH_TASK_ID", task)
            .spawn()
            .expect("sleep")
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
                .send(Look {
                    marker: Marker::task(&run, task),
                    reply,
                })
                .expect("queued");
            answers.push(answer);
        }
        drop(looks);
        assert_eq!(
            serve(&queue, Scope::Anywhere),
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
}
