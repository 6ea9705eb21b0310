//! Reports a crash left unwritten. A run records its end in `run.json`
//! and then writes its reports; a kill between the two (or during
//! them: each file appears whole or not at all) leaves a finished run with
//! a report missing, which nothing would ever write again, since `resume`
//! has nothing left to run. So `dispatch resume` and `dispatch report`
//! look for the missing ones and write them from the run's state.

use std::path::PathBuf;

use super::write::{Format, Renderer};
use crate::record::snapshot::Snapshot;
use crate::state::fsutil::write_atomic;
use crate::state::StateDir;

/// The reports every run's folder holds.
pub const RUN_REPORTS: [&str; 4] = ["report.md", "report.json", "junit.xml", "report.html"];

/// The run folder's reports, each with which report it is (an index into
/// [`RUN_REPORTS`]). Only these are restored: they are the run's record.
/// The copies elsewhere (`reports:` in the manifest, `--junit`,
/// `--report-dir`) are shared by every run of the manifest, and an old
/// run's report must not land there.
fn places(state: &StateDir, snapshot: &Snapshot) -> Vec<(PathBuf, usize)> {
    let run_dir = state.run_dir(&snapshot.run.run_id);
    RUN_REPORTS
        .iter()
        .enumerate()
        .map(|(i, name)| (run_dir.join(name), i))
        .collect()
}

/// Write the reports of a run that is no longer running and that are
/// missing; returns the paths written, and the problems as messages. A
/// running run writes its own reports when it ends, so it is left alone.
pub fn restore(state: &StateDir, snapshot: &Snapshot) -> (Vec<PathBuf>, Vec<String>) {
    if snapshot.live {
        return (Vec::new(), Vec::new());
    }
    let missing: Vec<(PathBuf, usize)> = places(state, snapshot)
        .into_iter()
        .filter(|(path, _)| std::fs::symlink_metadata(path).is_err())
        .collect();
    if missing.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let redactor = crate::record::snapshot::redactor(&snapshot.run);
    // The renderer takes the plans into the report; the caller's snapshot
    // (a resume goes on with it) keeps its own.
    let mut snapshot = snapshot.clone();
    let renderer = Renderer::new(state, &mut snapshot, &redactor);
    let formats = [Format::Markdown, Format::Json, Format::Junit, Format::Html];
    let mut written = Vec::new();
    let mut problems = Vec::new();
    // Each format rendered once, only if one of its places is missing.
    for (which, format) in formats.into_iter().enumerate() {
        let paths: Vec<&PathBuf> = missing
            .iter()
            .filter(|(_, w)| *w == which)
            .map(|(path, _)| path)
            .collect();
        if paths.is_empty() {
            continue;
        }
        let text = renderer.render(format);
        for path in paths {
            match write_atomic(path, text.as_bytes()) {
                Ok(()) => written.push(path.clone()),
                Err(e) => problems.push(format!("cannot write {}: {e}", path.display())),
            }
        }
    }
    (written, problems)
}

/// Whether `run` has ended (or its process is gone) with a report of its
/// folder missing: only then is [`restore_and_say`] worth its snapshot.
pub fn needs_restore(state: &StateDir, run: &crate::record::RunRecord) -> bool {
    let head = crate::record::snapshot::assemble(run.clone(), Vec::new());
    !head.live
        && places(state, &head)
            .iter()
            .any(|(path, _)| std::fs::symlink_metadata(path).is_err())
}

/// Restore a run's missing reports, and say in a line each what was
/// written and what could not be, for the command to show (this layer
/// prints nothing), made safe for a terminal.
pub fn restore_and_say(state: &StateDir, snapshot: &Snapshot) -> Vec<String> {
    let (written, problems) = restore(state, snapshot);
    let wrote = written.into_iter().map(|path| {
        format!(
            "wrote {}, which run {} ended without (its process stopped before it was written)",
            path.display(),
            snapshot.run.run_id
        )
    });
    let failed = problems.into_iter().map(|p| format!("warning: {p}"));
    wrote
        .chain(failed)
        .map(|line| crate::util::escape::terminal(&line))
        .collect()
}
