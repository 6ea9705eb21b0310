//! The manifest's worktree settings (`worktree:` in `defaults` and tasks):
//! how a task's worktree is made, set up and kept. Part of the format in
//! `types.rs`, which re-exports them; the JSON Schema is generated from
//! these types too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `worktree: true`, or settings for the worktree.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WorktreeSetting {
    Enabled(bool),
    Options(WorktreeOptions),
}

/// How a task's worktree is made and kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeOptions {
    /// The commit, branch or tag the worktree starts from (a template, so a
    /// stage can start from `{{ needs['research'].branch }}`). Default: HEAD.
    #[serde(default)]
    pub base: Option<String>,
    /// The branch created for the task (a template). Default:
    /// `dispatch/{{ task.id }}`.
    #[serde(default)]
    pub branch: Option<String>,
    /// Where the worktree folder goes, relative to the project root (a
    /// template). Default: `.dispatch/worktrees/{{ task.id }}`.
    #[serde(default)]
    pub path: Option<String>,
    /// Continue on a branch or in a folder an earlier run left, instead of
    /// refusing to start. Default: false.
    #[serde(default)]
    pub reuse: Option<bool>,
    /// What the worktree needs before the worker starts: files git ignores
    /// copied in, folders linked, a setup command.
    #[serde(default)]
    pub setup: Option<WorktreeSetup>,
    /// When the worktree folder is kept after the task: `always`,
    /// `on-failure` or `never` (the branch is always kept).
    #[serde(default)]
    pub keep: Option<KeepPolicy>,
    /// `auto` commits what the worker left uncommitted, with a message naming
    /// the task; `never` (the default) leaves it for review.
    #[serde(default)]
    pub commit: Option<CommitPolicy>,
}

/// Making a fresh worktree a place a real project can work in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeSetup {
    /// Files or folders copied from the main checkout, relative to the
    /// project root (`.env`, local config git ignores). A missing one fails
    /// the task before its worker starts.
    #[serde(default)]
    pub copy: Vec<String>,
    /// Folders linked (symbolic links) to the main checkout's, relative to
    /// the project root (`node_modules`, `target`, caches), so they are not
    /// rebuilt per task.
    #[serde(default)]
    pub link: Vec<String>,
    /// A shell command run in the worktree after copying and linking (with
    /// the worker's environment); if it fails, the task fails with its
    /// output, before any tokens are spent.
    #[serde(default)]
    pub run: Option<String>,
    /// How long the command may take (`90s`, `10m`). Default: 10m.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// When a worktree folder is kept: `always`, `on-failure` or `never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeepPolicy {
    Always,
    OnFailure,
    Never,
}

/// Whether uncommitted work is committed when the worker ends: `auto` or
/// `never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommitPolicy {
    Auto,
    Never,
}
