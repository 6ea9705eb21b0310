//! The signals that end a run in order: Ctrl-C (SIGINT), SIGTERM (a
//! service manager, `dispatch cancel`, a CI runner's cancel) and SIGHUP (a
//! closed terminal, a dropped SSH session). Each stops the workers (grace,
//! then kill), writes the records and reports, and exits with 128 + the
//! signal's number, as a shell reports a process killed by it: 130, 143,
//! 129. A script can tell a hang-up from a cancel, and `$?` reads the same
//! as if dispatch had died of the signal, but with its reports written.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// The first stopping signal this process received (0: none yet); it
/// decides the exit code. A process runs one sweep.
static FIRST: AtomicI32 = AtomicI32::new(0);
/// The latest one, for the event that reports it.
static LATEST: AtomicI32 = AtomicI32::new(0);

/// SIGINT, SIGTERM and SIGHUP, as one stream. Must be called inside a
/// tokio runtime; from then on these signals no longer kill the process.
pub fn interrupts() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, number) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
    ] {
        let tx = tx.clone();
        if let Ok(mut stream) = signal(kind) {
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    let _ = FIRST.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
                    LATEST.store(number, Ordering::SeqCst);
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
    }
    rx
}

/// The exit code of an interrupted run: 128 + the first signal's number
/// (130 when none was seen, as for Ctrl-C).
pub fn exit_code() -> u8 {
    match FIRST.load(Ordering::SeqCst) {
        libc::SIGHUP => crate::domain::exit::HANGUP,
        libc::SIGTERM => crate::domain::exit::TERMINATED,
        _ => crate::domain::exit::INTERRUPTED,
    }
}

/// The name of the latest stopping signal, for the `interrupted` event.
pub fn latest_name() -> String {
    match LATEST.load(Ordering::SeqCst) {
        libc::SIGHUP => "SIGHUP",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGINT",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_128_plus_the_signal() {
        assert_eq!(crate::domain::exit::HANGUP as i32, 128 + libc::SIGHUP);
        assert_eq!(crate::domain::exit::INTERRUPTED as i32, 128 + libc::SIGINT);
        assert_eq!(crate::domain::exit::TERMINATED as i32, 128 + libc::SIGTERM);
    }
}
