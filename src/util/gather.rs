//! A helper thread that lets work gather before it looks at its queue.
//!
//! dispatch hands file work to helper threads (the state writer, the plan
//! reader) so that the runner's thread never waits on a disk. Woken for
//! every job, such a thread costs a sleep and a wake (two context
//! switches) per job; in a sweep of short tasks that is several per task,
//! more than the work itself. So after each batch the thread parks for a
//! short window, during which a sender's job only joins the queue: a
//! channel wakes a receiver waiting in `recv`, not a parked thread. A job
//! somebody waits on (a flush, a task's closing look) calls
//! [`Gate::urgent`] before it is sent and [`Gate::wake`] after, which ends
//! the window at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Shared by the senders and the thread.
#[derive(Debug, Default)]
pub struct Gate {
    /// Urgent jobs sent and not yet answered.
    urgent: AtomicUsize,
    thread: OnceLock<Thread>,
}

impl Gate {
    /// The thread that [`Gate::wake`] unparks; set once it is started.
    pub fn serve(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    /// Say an urgent job is about to be sent (before sending it, so the
    /// thread cannot start a window between the send and the count).
    pub fn urgent(&self) {
        self.urgent.fetch_add(1, Ordering::SeqCst);
    }

    /// End the thread's window, after an urgent job was sent.
    pub fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// The thread answered this many urgent jobs.
    pub fn answered(&self, jobs: usize) {
        self.urgent.fetch_sub(jobs, Ordering::SeqCst);
    }

    /// On the thread, after a batch: park for `window`, or less if an
    /// urgent job is (or comes) on its way. An unpark left over from an
    /// urgent job already answered only makes it look again.
    pub fn gather(&self, window: Duration) {
        let until = Instant::now() + window;
        while self.urgent.load(Ordering::SeqCst) == 0 {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::park_timeout(until - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// An urgent job ends a window far longer than the test, so only the
    /// wake can have ended it.
    #[test]
    fn an_urgent_job_ends_the_window() {
        let gate = Arc::new(Gate::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                gate.gather(Duration::from_secs(600));
                rx.recv().ok()
            })
        };
        gate.serve(thread.thread().clone());
        gate.urgent();
        tx.send("flush").expect("send");
        gate.wake();
        assert_eq!(thread.join().expect("join"), Some("flush"));
    }
}
