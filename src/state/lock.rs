//! One `dispatch run` per state folder. Two runs writing the same task
//! folders would corrupt each other's plans, so the second is refused with
//! the name of the run that holds the lock; a lock left by a run that was
//! killed (its process is gone) is taken over.

use std::io::Write;
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

/// The held lock; dropping it releases the folder.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// Set when the lock was taken over from a dead run.
    pub took_over: Option<Holder>,
}

impl Lock {
    /// Take the lock of `state` for `holder`.
    pub fn acquire(state: &StateDir, holder: &Holder) -> Result<Lock, StateError> {
        let path = state.dir.join("lock");
        let mut took_over = None;
        for _ in 0..3 {
            match create_exclusive(&path, holder) {
                Ok(()) => return Ok(Lock { path, took_over }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let current = read_holder(&path);
                    match current {
                        Some(other)
                            if process_alive(other.pid) && other.pid != std::process::id() =>
                        {
                            return Err(StateError::Locked(format!(
                                "run {} (pid {}, started {}) is using {}; wait for it to finish, or stop it first",
                                other.run_id,
                                other.pid,
                                other.started_at,
                                state.dir.display()
                            )));
                        }
                        stale => {
                            // Its process is gone (or the file is unreadable,
                            // as a crash mid-write leaves it): take it over.
                            took_over = stale;
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(StateError::io(&path, e)),
            }
        }
        Err(StateError::Locked(format!(
            "could not take the lock {}; another dispatch is starting at the same time",
            path.display()
        )))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn create_exclusive(path: &Path, holder: &Holder) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let text = serde_json::to_vec(holder).unwrap_or_default();
    file.write_all(&text)?;
    file.sync_all()
}

/// The holder of a lock file, if it is readable.
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

    fn holder(pid: u32, run: &str) -> Holder {
        Holder {
            pid,
            run_id: run.to_owned(),
            started_at: "2026-11-25T10:00:00Z".to_owned(),
        }
    }

    #[test]
    fn a_live_holder_keeps_the_lock_and_is_named() {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(temp.path());
        state.prepare().expect("prepare");
        // Pid 1 always exists.
        std::fs::write(
            state.dir.join("lock"),
            serde_json::to_vec(&holder(1, "run-a")).expect("json"),
        )
        .expect("write");
        let err = Lock::acquire(&state, &holder(std::process::id(), "run-b")).expect_err("locked");
        assert!(err.to_string().contains("run run-a (pid 1"), "{err}");
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over_and_released_on_drop() {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(temp.path());
        state.prepare().expect("prepare");
        let dead = holder(u32::try_from(libc::pid_t::MAX).expect("fits"), "run-dead");
        std::fs::write(
            state.dir.join("lock"),
            serde_json::to_vec(&dead).expect("json"),
        )
        .expect("write");
        let lock =
            Lock::acquire(&state, &holder(std::process::id(), "run-new")).expect("taken over");
        assert_eq!(lock.took_over, Some(dead));
        assert_eq!(
            read_holder(&state.dir.join("lock")).map(|h| h.run_id),
            Some("run-new".to_owned())
        );
        drop(lock);
        assert!(!state.dir.join("lock").exists());
    }
}
