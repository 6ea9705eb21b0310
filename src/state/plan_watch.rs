//! Watching workers through their files: plans filling in (and, as the IPC
//! work lands, questions and findings).
//!
//! Plans are polled, not watched: a `stat` per running task every few
//! hundred milliseconds costs nothing measurable, works on every file
//! system, and a plan is only read again when its size or mtime changed,
//! or while its mtime is too recent to tell a second change in the same
//! clock tick.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::domain::checklist::{self, Checklist};

/// Plans larger than this are read only this far: a worker that writes a
/// gigabyte into its plan does not take the runner's memory with it.
pub const MAX_PLAN_BYTES: u64 = 1024 * 1024;

/// Read a plan file (bounded, never through a symlink).
pub fn read_plan(path: &Path) -> Option<Checklist> {
    let text = crate::state::read_bounded(path, MAX_PLAN_BYTES).ok()?;
    Some(checklist::parse(&text))
}

/// A file's modification time is only as fine as its file system's clock
/// tick (a few milliseconds, a second or two on some): a plan read less
/// than this after its last change may have changed again since, in the
/// same tick and with the same size (`[ ]` and `[x]` are), unseen by its
/// stamp. Such a plan is read again at the next look, as git does with
/// racily clean index entries.
const RACY: Duration = Duration::from_secs(2);

/// A plan file and what it last held.
#[derive(Debug)]
pub struct PlanWatch {
    pub path: PathBuf,
    stamp: Option<(u64, SystemTime)>,
    /// The stamp was read too soon after the change it records to be
    /// trusted (see [`RACY`]).
    racy: bool,
    pub last: Checklist,
}

impl PlanWatch {
    pub fn new(path: PathBuf, initial: Checklist) -> Self {
        Self {
            path,
            stamp: None,
            racy: false,
            last: initial,
        }
    }

    /// The plan, if it changed since the last look (by size or mtime, or
    /// read again while its mtime is too recent to be trusted).
    pub fn poll(&mut self) -> Option<(Checklist, Checklist)> {
        let meta = std::fs::symlink_metadata(&self.path).ok()?;
        let stamp = (meta.len(), meta.modified().ok()?);
        if self.stamp == Some(stamp) && !self.racy {
            return None;
        }
        // A modification time in the future (a skewed clock) is never
        // trusted either.
        self.racy = SystemTime::now()
            .duration_since(stamp.1)
            .map_or(true, |age| age < RACY);
        self.stamp = Some(stamp);
        let now = read_plan(&self.path)?;
        if now == self.last {
            return None;
        }
        let before = std::mem::replace(&mut self.last, now.clone());
        Some((before, now))
    }

    /// The last look, once the worker has ended: the plan as it is now
    /// (`None` when it cannot be read) and what changed since the previous
    /// look. One read, whatever the file's stamp says.
    pub fn last_look(mut self) -> (Option<Checklist>, Option<(Checklist, Checklist)>) {
        let now = read_plan(&self.path);
        let change = match &now {
            Some(now) if *now != self.last => {
                Some((std::mem::replace(&mut self.last, now.clone()), now.clone()))
            }
            _ => None,
        };
        (now, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Checklist {
        checklist::parse(text)
    }

    /// Give the file this modification time, as a write in the same clock
    /// tick (or long ago) would have left it.
    fn set_mtime(path: &Path, time: SystemTime) {
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        file.set_modified(time).expect("set mtime");
    }

    #[test]
    fn a_same_size_rewrite_in_the_same_clock_tick_is_still_seen() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("plan.md");
        std::fs::write(&path, "- [x] one\n- [ ] two\n").expect("write");
        let mut watch = PlanWatch::new(path.clone(), plan("- [ ] one\n- [ ] two\n"));
        let (_, seen) = watch.poll().expect("the first change is seen");
        assert_eq!(seen.counts().done, 1);

        // The worker ticks the second item within the same tick of the file
        // system's clock: same size, same mtime.
        let stamp = std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime");
        std::fs::write(&path, "- [x] one\n- [x] two\n").expect("rewrite");
        set_mtime(&path, stamp);

        let (_, seen) = watch.poll().expect("the second change is seen too");
        assert_eq!(seen.counts().done, 2);
    }

    #[test]
    fn an_old_unchanged_plan_is_not_read_again() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("plan.md");
        std::fs::write(&path, "- [x] one\n").expect("write");
        let old = SystemTime::now() - Duration::from_secs(60);
        set_mtime(&path, old);
        let mut watch = PlanWatch::new(path.clone(), plan("- [ ] one\n"));
        assert!(watch.poll().is_some(), "the change is seen");
        // Rewritten behind its stamp's back (same size, same old mtime):
        // an old stamp is trusted, so this is not read.
        std::fs::write(&path, "- [!] one\n").expect("rewrite");
        set_mtime(&path, old);
        assert!(watch.poll().is_none(), "a trusted stamp saves the read");
    }
}
