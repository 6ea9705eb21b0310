//! One `dispatch run` per state folder. Two runs writing the same task
//! folders would corrupt each other's plans, so the second is refused with
//! the name of the run that holds the lock.
//!
//! The lock is the kernel's: an exclusive `flock` on `.dispatch/lock`, held
//! on an open descriptor for the life of the run. Taking it is one atomic
//! step however many runs race, even on an empty or stale file, and the
//! kernel drops it when the holder's process dies (`kill -9`, a reboot), so
//! a dead run never blocks the folder. The JSON inside only names the
//! holder for the refusal message; only the holder writes or removes it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateDir, StateError};

/// What the lock file records about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub run_id: String,
    pub started_at: String,
}

/// The held lock; dropping it removes the record and releases the folder.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// The locked descriptor; the lock lives as long as it is open. Opened
    /// close-on-exec, so no worker inherits it (and keeps the folder
    /// locked after dispatch died).
    file: File,
    /// The record a run that is gone left in the file, if any.
    pub took_over: Option<Holder>,
}

impl Lock {
    /// Take the lock of `state` for `holder`, or say who holds it.
    pub fn acquire(state: &StateDir, holder: &Holder) -> Result<Lock, StateError> {
        let path = state.dir.join("lock");
        // The file can be removed between its opening and its locking (by
        // the holder that is finishing): a lock on a removed file locks
        // nothing, so it is taken again on the file now at the path.
        for _ in 0..16 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o666)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| StateError::io(&path, e))?;
            if !try_lock(&file).map_err(|e| StateError::io(&path, e))? {
                let named = read_record(&mut file)
                    .map(|other| {
                        format!(
                            "run {} (pid {}, started {}) is using {}",
                            other.run_id,
                            other.pid,
                            other.started_at,
                            state.dir.display()
                        )
                    })
                    .unwrap_or_else(|| {
                        format!("another dispatch is using {}", state.dir.display())
                    });
                return Err(StateError::Locked(format!(
                    "{named}; wait for it to finish, or stop it first (`dispatch cancel`)"
                )));
            }
            if !same_file(&file, &path) {
                continue;
            }
            let took_over = read_record(&mut file);
            write_record(&mut file, holder).map_err(|e| StateError::io(&path, e))?;
            return Ok(Lock {
                path,
                file,
                took_over,
            });
        }
        Err(StateError::Locked(format!(
            "could not take the lock {}; other dispatch runs keep starting and ending on it",
            path.display()
        )))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Still the holder here: the record is removed only while it is
        // this lock's own file (a person may have removed it, and another
        // run made and locked a new one since).
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        // Closing the descriptor (as the field drops) releases the lock.
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: whether it was taken.
fn try_lock(file: &File) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor owned by `file`; it touches no
        // memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(error),
        }
    }
}

/// Whether the open file is the one at `path` (not replaced or removed).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

fn read_record(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_record(file: &mut File, holder: &Holder) -> std::io::Result<()> {
    let text = serde_json::to_vec(holder).unwrap_or_default();
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&text)?;
    file.sync_data()
}

/// The holder named in a lock file, if it is readable (whether or not it
/// still holds the lock).
pub fn read_holder(path: &Path) -> Option<Holder> {
    let text = super::read_bounded(path, 64 * 1024).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether a process with this pid exists (signal 0 checks without
/// sending anything).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for the process's existence.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn holder(pid: u32, run: &str) -> Holder {
        Holder {
            pid,
            run_id: run.to_owned(),
            started_at: "2026-11-25T10:00:00Z".to_owned(),
        }
    }

    fn prepared() -> (tempfile::TempDir, StateDir) {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(temp.path());
        state.prepare().expect("prepare");
        (temp, state)
    }

    #[test]
    fn a_holder_keeps_the_lock_and_is_named() {
        let (_temp, state) = prepared();
        let first = Lock::acquire(&state, &holder(1, "run-a")).expect("free");
        let err = Lock::acquire(&state, &holder(2, "run-b")).expect_err("locked");
        assert!(err.to_string().contains("run run-a (pid 1"), "{err}");
        drop(first);
        Lock::acquire(&state, &holder(2, "run-b")).expect("released");
    }

    #[test]
    fn a_dead_holders_record_is_taken_over_and_removed_on_drop() {
        let (_temp, state) = prepared();
        let dead = holder(1, "run-dead");
        std::fs::write(
            state.dir.join("lock"),
            serde_json::to_vec(&dead).expect("json"),
        )
        .expect("write");
        let lock = Lock::acquire(&state, &holder(std::process::id(), "run-new")).expect("free");
        assert_eq!(lock.took_over, Some(dead));
        assert_eq!(
            read_holder(&state.dir.join("lock")).map(|h| h.run_id),
            Some("run-new".to_owned())
        );
        drop(lock);
        assert!(!state.dir.join("lock").exists());
    }

    /// Eight runs racing on an empty lock file: exactly one proceeds, every
    /// time.
    #[test]
    fn eight_racing_runs_on_an_empty_lock_let_exactly_one_through() {
        for round in 0..50 {
            let (_temp, state) = prepared();
            std::fs::write(state.dir.join("lock"), b"").expect("empty lock");
            let state = Arc::new(state);
            let start = Arc::new(Barrier::new(8));
            let held = Arc::new(Barrier::new(8));
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let (state, start, held) = (state.clone(), start.clone(), held.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let lock = Lock::acquire(&state, &holder(i, &format!("run-{i}")));
                        // Everyone has tried before anyone lets go.
                        held.wait();
                        lock.is_ok()
                    })
                })
                .collect();
            let through = racers
                .into_iter()
                .map(|r| r.join().expect("racer"))
                .filter(|&ok| ok)
                .count();
            assert_eq!(through, 1, "round {round}");
        }
    }

    /// A run whose lock file was removed under it (and taken by another
    /// run since) leaves the other run's record alone when it ends.
    #[test]
    fn a_finishing_run_does_not_remove_another_holders_record() {
        let (_temp, state) = prepared();
        let first = Lock::acquire(&state, &holder(1, "run-a")).expect("free");
        std::fs::remove_file(state.dir.join("lock")).expect("removed by hand");
        let second = Lock::acquire(&state, &holder(2, "run-b")).expect("a new file");
        drop(first);
        assert_eq!(
            read_holder(&state.dir.join("lock")).map(|h| h.run_id),
            Some("run-b".to_owned())
        );
        drop(second);
        assert!(!state.dir.join("lock").exists());
    }
}
