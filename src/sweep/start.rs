//! How a run starts when it is not simply a whole new sweep: a part of
//! the manifest (`--only`, `--skip`, `--tag`, `--shard`), a rerun on top
//! of an earlier run (`--retry-failed`, `--rerun`), or a resumed run
//! (`dispatch resume`), and what the tasks that run again bring with them.

use std::path::{Path, PathBuf};

use super::{carry, RunError, RunResult};
use crate::domain::exit::RunOutcome;
use crate::domain::status::TaskStatus;
use crate::ipc::findings::FindingsReader;
use crate::manifest::{self, LoadedManifest};
use crate::plan::SweepPlan;
use crate::record::{snapshot, RunRecord, TaskRecord};
use crate::state::{self, StateDir};

/// Keep only the selected tasks. With a rerun, a task left out is carried
/// over as it ended instead; either way a selected task's needs must be
/// selected or carried over complete.
pub(super) fn select_tasks(
    selection: &crate::plan::select::Selection,
    plan: &mut SweepPlan,
    fates: &mut Vec<carry::Fate>,
) -> Result<(), RunError> {
    let chosen = selection.choose(plan)?;
    let available: Vec<bool> = chosen
        .iter()
        .zip(fates.iter())
        .map(|(chosen, fate)| {
            *chosen
                || matches!(fate, carry::Fate::Carried { record, .. } if record.status == TaskStatus::Complete)
                || matches!(fate, carry::Fate::Continued { record, .. } if record.status == TaskStatus::Complete)
        })
        .collect();
    crate::plan::select::check_needs(plan, &available, &chosen)?;
    let mut keep = Vec::with_capacity(chosen.len());
    for (fate, chosen) in fates.iter_mut().zip(&chosen) {
        if *chosen {
            keep.push(true);
            continue;
        }
        match std::mem::replace(fate, carry::Fate::Fresh) {
            carry::Fate::Continued { record, dir } | carry::Fate::Carried { record, dir } => {
                *fate = carry::Fate::Carried { record, dir };
                keep.push(true);
            }
            _ => keep.push(false),
        }
    }
    let mut kept = keep.iter();
    plan.tasks.retain(|_| *kept.next().unwrap_or(&false));
    let mut kept = keep.iter();
    fates.retain(|_| *kept.next().unwrap_or(&false));
    Ok(())
}

/// The run `dispatch resume` names, if it can be resumed: it exists and
/// its process is gone. Whatever of it is still running is stopped first,
/// so no task ever has two workers.
pub(super) fn resumable(
    state: &StateDir,
    run: &str,
    grace: std::time::Duration,
    notes: &mut Vec<String>,
) -> Result<snapshot::Snapshot, RunError> {
    let id = (run != "latest").then_some(run);
    let earlier = snapshot::load(state, id).map_err(carry::CarryError::from)?;
    if earlier.live {
        return Err(carry::CarryError::StillRunning(earlier.run.run_id).into());
    }
    let stopped = stop_earlier(state, &earlier, grace, "resume", notes)?;
    if stopped {
        let id = earlier.run.run_id.clone();
        return Ok(snapshot::load(state, Some(&id)).map_err(carry::CarryError::from)?);
    }
    Ok(earlier)
}

/// Stop the workers (and what they started) that a dead run left
/// running, before `resume`, `--retry-failed` or `--rerun` launches
/// anything: grace, then kill, as `dispatch cancel` does. Each such task's
/// record says so, and `notes` gets the warning the run then shows and
/// logs. Returns whether anything was stopped.
pub(super) fn stop_earlier(
    state: &StateDir,
    earlier: &snapshot::Snapshot,
    grace: std::time::Duration,
    by: &str,
    notes: &mut Vec<String>,
) -> Result<bool, carry::CarryError> {
    let run_id = &earlier.run.run_id;
    let reason = format!(
        "still running after its run's process was gone; stopped by `dispatch {by}` before anything ran again"
    );
    let stopped = super::cancel::stop_left_behind(
        state,
        earlier,
        &[],
        grace,
        &reason,
        &format!("before {by}"),
    )
    .map_err(|e| carry::CarryError::Leftovers(e.to_string()))?;
    // Anything else of the dead run: its hooks, and what they started.
    let others = crate::supervise::reaper::stop_marked(
        &crate::supervise::procfs::Marker::run(run_id),
        crate::supervise::reaper::Scope::Anywhere,
        grace,
        &format!("before {by}"),
    );
    if stopped.is_empty() && others.is_empty() {
        return Ok(false);
    }
    let mut message = format!(
        "stopped what run {run_id} left running when its process died, before running anything again: {}",
        stopped.join(", ")
    );
    if !others.is_empty() {
        message.push_str(&format!(
            "{}{}",
            if stopped.is_empty() { "" } else { "; and " },
            crate::supervise::reaper::describe(&others)
        ));
    }
    notes.push(message);
    Ok(true)
}

/// The manifest a run started from: the user's own file, at the path the
/// run recorded, and only while it still reads exactly as the copy taken
/// when the run started. Workers can write anything under `.dispatch/`
/// (the codex backend is even given write access there), so the copy in
/// the run folder is a record, never what runs: a worker that rewrote it
/// (or the user's file, or the recorded path to a file of its own inside
/// `.dispatch/`) makes resume refuse, saying why, instead of running its
/// commands. Templates are read next to the user's file, as in any run.
pub(super) fn manifest_of(state: &StateDir, run: &RunRecord) -> Result<LoadedManifest, RunError> {
    let refuse = |why: String| RunError::from(carry::CarryError::Resume(why));
    let recorded = user_manifest(run);
    let path = std::fs::canonicalize(&recorded).map_err(|e| {
        refuse(format!(
            "cannot resume run {}: the manifest it started from, {}, cannot be read ({e}); resume runs only that file, unchanged\n  help: restore it, or start a new run with `dispatch run MANIFEST`",
            run.run_id,
            recorded.display()
        ))
    })?;
    let state_dir = std::fs::canonicalize(&state.dir).unwrap_or_else(|_| state.dir.clone());
    if path.starts_with(&state_dir) {
        return Err(refuse(format!(
            "cannot resume run {}: its record names {} as its manifest, a file inside {}, which workers can write; resume runs only your own manifest\n  help: start a new run with `dispatch run MANIFEST`",
            run.run_id,
            path.display(),
            crate::state::DIR_NAME
        )));
    }
    let mut loaded = manifest::load_with_user_config(&path)?;
    let copy = state.run_dir(&run.run_id).join("manifest.yaml");
    let started_with = state::read_bounded(&copy, loaded.source.text.len() as u64 + 1).ok();
    if started_with.as_deref() != Some(loaded.source.text.as_str()) {
        return Err(refuse(format!(
            "cannot resume run {}: {} is not the manifest the run started with (it, or the run's copy in {}, changed since); resume runs only what you started\n  help: to run the manifest as it is now, start a new run: `dispatch run {} --retry-failed {}`",
            run.run_id,
            path.display(),
            copy.display(),
            path.display(),
            run.run_id
        )));
    }
    loaded.path = PathBuf::from(&run.manifest);
    Ok(loaded)
}

/// Where the user's manifest of `run` is: the absolute path it recorded,
/// or for a run recorded before that, its file name in its folder.
fn user_manifest(run: &RunRecord) -> PathBuf {
    match &run.manifest_path {
        Some(path) => PathBuf::from(path),
        None => {
            let name = Path::new(&run.manifest)
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_default();
            PathBuf::from(&run.manifest_dir).join(name)
        }
    }
}

/// The absolute path of the manifest a run starts from, for `resume`:
/// its file name in its folder (a resumed run's `path` is the one shown,
/// as first given, relative to wherever the run was started).
pub(super) fn manifest_path(loaded: &LoadedManifest) -> Option<String> {
    let name = loaded.path.file_name()?;
    std::fs::canonicalize(loaded.dir.join(name))
        .ok()
        .map(|p| p.display().to_string())
}

/// The `--var`s a resumed run renders with: those it was started with, and
/// those given again now (which win). A secret one was recorded only as its
/// marker, so it must be given again; resuming without it would render
/// the marker where the secret belongs.
pub(super) fn resume_vars(
    run: &RunRecord,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, RunError> {
    let mut vars = run.vars.clone();
    for (name, value) in given {
        match vars.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => vars.push((name.clone(), value.clone())),
        }
    }
    let missing: Vec<&str> = vars
        .iter()
        .filter(|(name, value)| *value == crate::domain::redact::marker(name))
        .map(|(name, _)| name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(vars);
    }
    let again: Vec<String> = missing.iter().map(|n| format!("--var {n}=…")).collect();
    Err(manifest::Invalid::one(
        crate::manifest::diagnostic::Diagnostic::new(
            "dispatch resume",
            format!(
                "run {} was started with secret variables that are not stored: {}",
                run.run_id,
                missing.join(", ")
            ),
        )
        .with_help(format!(
            "give them again: `dispatch resume {} {}`",
            run.run_id,
            again.join(" ")
        )),
    )
    .into())
}

/// The `--var`s as `run.json` keeps them: secret values (by name, by
/// `secrets:`, or equal to a secret value of the environment or of a
/// task's `env`) become markers, so `run.json` and `status --json` never
/// carry them.
pub(super) fn recorded_vars(
    vars: &[(String, String)],
    plan: &SweepPlan,
    redactor: &crate::domain::redact::Redactor,
) -> Vec<(String, String)> {
    let known = plan.tasks.iter().fold(redactor.clone(), |known, task| {
        known.with(task.env.iter(), &plan.secrets)
    });
    known.mask_vars(vars, &plan.secrets)
}

/// Resuming a run with nothing left to do is harmless: it says so and
/// exits as the run did.
///
/// A run that ended before all its reports were written (a kill between
/// `run.json` and `junit.xml`) gets the missing ones now.
pub(super) fn nothing_to_resume(state: &StateDir, earlier: &snapshot::Snapshot) -> RunResult {
    let restored = crate::report::repair::restore_and_say(state, earlier);
    let records: Vec<Box<TaskRecord>> = earlier.tasks.iter().map(|t| t.record.clone()).collect();
    let exit_code = earlier.run.exit_code.unwrap_or_else(|| {
        RunOutcome::decide(false, None, records.iter().map(|r| r.status)).code()
    });
    let mut message = restored.join("\n");
    if !message.is_empty() {
        message.push('\n');
    }
    message.push_str(&format!(
        "run {} has nothing to resume: its tasks are complete, over budget, or waiting on a question nobody answered yet (`dispatch questions`); exit code {exit_code}",
        earlier.run.run_id
    ));
    RunResult {
        run_id: earlier.run.run_id.clone(),
        exit_code,
        records,
        message: Some(message),
    }
}

/// What a task rerun from an earlier run (`--retry-failed`, `--rerun`,
/// `resume`) brings with it, so attempts are numbered on and usage adds
/// up.
#[derive(Clone, Debug, Default)]
pub(super) struct Earlier {
    /// Attempts made in earlier runs.
    pub(super) attempts: u32,
    /// Usage of those attempts.
    pub(super) usage: crate::agents::stream::Usage,
    /// Continues from its plan so far (else starts from a fresh one).
    pub(super) continued: bool,
    /// Takes up the worktree and branch its earlier run made.
    pub(super) reuse_worktree: bool,
}

/// What an earlier run left on record that must not be reported again:
/// the findings already read, and the questions already asked.
pub(super) struct OnRecord {
    pub(super) findings: Option<FindingsReader>,
    pub(super) questions: Vec<u32>,
}

impl Earlier {
    pub(super) fn take_up(record: &TaskRecord, fate: &carry::Fate, dir: &Path) -> (Self, OnRecord) {
        let mut on_record = OnRecord {
            findings: None,
            questions: Vec::new(),
        };
        if !fate.runs() {
            return (Self::default(), on_record);
        }
        let earlier = Self {
            attempts: record.attempts.len() as u32,
            usage: record.usage.clone(),
            continued: fate.continues(),
            reuse_worktree: fate.reuses_worktree(),
        };
        if earlier.continued {
            // What the copied folder already holds is on record.
            let mut reader = FindingsReader::new(dir.join("findings.jsonl"));
            while !reader.poll().is_empty() {}
            on_record.findings = Some(reader);
            on_record.questions = crate::ipc::questions::list(&dir.join("ipc"))
                .unwrap_or_default()
                .iter()
                .map(|q| q.seq)
                .collect();
        }
        (earlier, on_record)
    }
}
