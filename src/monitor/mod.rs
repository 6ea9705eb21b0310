//! Watching workers through their files: plans filling in (and, as the IPC
//! work lands, questions and findings).
//!
//! Plans are polled, not watched: a `stat` per running task every few
//! hundred milliseconds costs nothing measurable, works on every file
//! system, and a plan is only read again when its size or mtime changed.

pub mod checklist;
pub mod watch;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use checklist::Checklist;

/// Plans larger than this are read only this far: a worker that writes a
/// gigabyte into its plan does not take the runner's memory with it.
pub const MAX_PLAN_BYTES: u64 = 1024 * 1024;

/// Read a plan file (bounded, never through a symlink).
pub fn read_plan(path: &Path) -> Option<Checklist> {
    let text = crate::state::read_bounded(path, MAX_PLAN_BYTES).ok()?;
    Some(checklist::parse(&text))
}

/// A plan file and what it last held.
#[derive(Debug)]
pub struct PlanWatch {
    pub path: PathBuf,
    stamp: Option<(u64, SystemTime)>,
    pub last: Checklist,
}

impl PlanWatch {
    pub fn new(path: PathBuf, initial: Checklist) -> Self {
        Self {
            path,
            stamp: None,
            last: initial,
        }
    }

    /// The plan, if it changed since the last look (by size or mtime).
    pub fn poll(&mut self) -> Option<(Checklist, Checklist)> {
        let meta = std::fs::symlink_metadata(&self.path).ok()?;
        let stamp = (meta.len(), meta.modified().ok()?);
        if self.stamp == Some(stamp) {
            return None;
        }
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
