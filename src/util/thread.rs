//! Helper threads that take no signals.
//!
//! A signal sent to the process (SIGCHLD at every worker's exit, Ctrl-C,
//! SIGTERM) is handled on any one of its threads that does not block it.
//! When it lands on a helper asleep in a timed wait (the writer gathering
//! saves, say), it wakes that thread for nothing, and the handler there
//! wakes the runner anyway: two wakes per worker exit instead of one.
//! Helpers therefore block the signals that come from outside, and the
//! runner thread, which acts on them, takes every one. Faults (SIGSEGV and
//! the like) are left alone: they belong to the thread that caused them.
//! Threads that only compute for a moment (`parallel.rs`, the reports'
//! pair) are left as they are: they are awake anyway.

use std::io;
use std::thread::{Builder, JoinHandle};

/// The signals a helper thread leaves to the runner.
#[cfg(unix)]
const FROM_OUTSIDE: [libc::c_int; 9] = [
    libc::SIGCHLD,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
];

/// Start `work` on a thread made by `builder` that blocks the signals from
/// outside before it does anything else.
pub fn spawn<T, F>(builder: Builder, work: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    builder.spawn(move || {
        leave_signals_to_others();
        work()
    })
}

/// Block the signals from outside on the calling thread; for threads
/// started by others (tokio's blocking pool).
pub fn leave_signals_to_others() {
    #[cfg(unix)]
    {
        // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to overwrite.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for signal in FROM_OUTSIDE {
            // SAFETY: `set` is initialised and `signal` a valid signal number.
            unsafe { libc::sigaddset(&mut set, signal) };
        }
        // SAFETY: `set` is initialised, a null old mask is allowed, and only this thread's mask changes.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The blocked set of a thread, from its `/proc` status line.
    fn blocked_mask() -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .expect("SigBlk line");
        u64::from_str_radix(line.trim(), 16).expect("hex mask")
    }

    fn bit(signal: libc::c_int) -> u64 {
        1 << (signal - 1)
    }

    #[test]
    fn a_helper_blocks_the_signals_from_outside_and_not_faults() {
        let mask = spawn(Builder::new(), blocked_mask)
            .expect("spawn")
            .join()
            .expect("join");
        for signal in FROM_OUTSIDE {
            assert_ne!(mask & bit(signal), 0, "signal {signal} not blocked");
        }
        for fault in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL] {
            assert_eq!(mask & bit(fault), 0, "fault {fault} blocked");
        }
    }

    #[test]
    fn the_thread_that_spawns_a_helper_keeps_its_mask() {
        let before = std::thread::spawn(|| {
            let before = blocked_mask();
            spawn(Builder::new(), || ())
                .expect("spawn")
                .join()
                .expect("join");
            (before, blocked_mask())
        })
        .join()
        .expect("join");
        assert_eq!(before.0, before.1);
        assert_eq!(before.0 & bit(libc::SIGCHLD), 0);
    }
}
