//! What happens in a run, as one typed [`Event`] stream, and every output
//! of a run as a [`reporter::Reporter`] of it: the event log
//! (`events.jsonl`), the live view, CI lines, `--quiet`, `--json`, and
//! GitHub annotations with the job summary. The engine calls
//! [`reporter::Reporters::emit`] and nothing else; warnings are events
//! too. Text leaves through [`sanitize::sanitize_for`], escaped for where
//! it goes, in this module and nowhere else.
//!
//! Escalation `run:` hooks are not reporters: they are an action a rule
//! takes (fed the finding or task end that fired it, which carries more
//! than the event), and the engine waits for them before it concludes.

pub mod attention;
pub mod colour;
pub mod fit;
pub mod github;
pub mod job_summary;
pub mod json;
pub mod live;
pub mod log;
pub mod plain;
pub mod quiet;
mod redact;
pub mod reporter;
pub mod sanitize;
pub mod screen;
pub mod summary;

use indexmap::IndexMap;
use serde::Serialize;

use crate::domain::checklist::ItemState;
use crate::domain::status::{RunStatus, TaskStatus};
use crate::isolation::review::FolderState;
use crate::manifest::types::{Action, Severity};

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        run_id: String,
        name: String,
        manifest: String,
        tasks: usize,
        concurrency: u32,
    },
    /// `dispatch resume` took the run up again; `tasks` run again.
    RunResumed {
        run_id: String,
        tasks: usize,
    },
    TaskStarted {
        task: String,
        attempt: u32,
        model: Option<String>,
        backend: String,
        worktree: bool,
        pid: u32,
    },
    /// A plan item changed state (checked, failed, blocked) or appeared.
    Item {
        task: String,
        index: usize,
        text: String,
        state: ItemState,
        note: Option<String>,
        done: usize,
        total: usize,
        /// The item the worker is on now.
        current: Option<String>,
    },
    TaskEnded {
        task: String,
        status: TaskStatus,
        reason: String,
        done: usize,
        total: usize,
        duration_ms: u64,
        attempt: u32,
        /// Another attempt follows after a back-off.
        retrying: bool,
    },
    /// An acceptance check ran after a worker ended with its plan done.
    CheckEnded {
        task: String,
        attempt: u32,
        name: String,
        passed: bool,
        /// `exit code 1`, `timed out`, `could not start`.
        how: String,
        duration_ms: u64,
        /// Its output, relative to the task's folder.
        log: String,
    },
    /// A task's worktree is ready for its worker.
    WorktreeReady {
        task: String,
        path: String,
        branch: String,
        base_commit: String,
        /// An existing branch or folder was taken up.
        reused: bool,
        duration_ms: u64,
    },
    /// A worktree task ended: what its branch holds for review, and what
    /// became of its folder.
    BranchReviewed {
        task: String,
        branch: String,
        ahead: usize,
        files_changed: usize,
        insertions: usize,
        deletions: usize,
        uncommitted: usize,
        folder: FolderState,
        path: String,
    },
    /// A task carried over as it ended in an earlier run (`--retry-failed`,
    /// `--rerun`).
    TaskCarried {
        task: String,
        status: TaskStatus,
        from_run: String,
    },
    TaskSkipped {
        task: String,
        reason: String,
    },
    /// Ctrl-C, SIGTERM or SIGHUP: workers are being stopped.
    Interrupted {
        /// A second interrupt: workers are killed at once.
        force: bool,
        /// `SIGINT`, `SIGTERM` or `SIGHUP`.
        signal: String,
    },
    Warning {
        task: Option<String>,
        message: String,
    },
    /// A worker's CLI said it retries an API call (Claude Code's
    /// `api_retry`, Codex's reconnects): the worker is alive, and slow for
    /// this reason.
    ApiRetry {
        task: String,
        /// The HTTP status or the API's error name, when the CLI says.
        error: Option<String>,
        attempt: Option<u64>,
        max: Option<u64>,
        /// `retrying: API 529, attempt 3/10`.
        summary: String,
    },
    /// A worker asked a question (`ipc/NNN.question`).
    Question {
        task: String,
        seq: u32,
        text: String,
    },
    /// A question got its answer: from a rule, a person at this terminal,
    /// the manifest's default, or elsewhere (`dispatch answer`).
    Answered {
        task: String,
        seq: u32,
        answer: String,
        by: String,
    },
    /// A worker reported a finding.
    Finding {
        task: String,
        severity: Severity,
        title: String,
        location: Option<String>,
        detail: Option<String>,
    },
    /// An escalation rule fired.
    Escalation {
        rule: String,
        action: Action,
        exit_code: u8,
        summary: String,
        /// Whether a banner is shown.
        notify: bool,
    },
    RunEnded {
        run_id: String,
        status: RunStatus,
        exit_code: u8,
        counts: IndexMap<String, usize>,
        duration_ms: u64,
    },
}

/// An event with its time, as written to `events.jsonl`.
#[derive(Serialize)]
pub struct Stamped<'a> {
    pub ts: String,
    #[serde(flatten)]
    pub event: &'a Event,
}
