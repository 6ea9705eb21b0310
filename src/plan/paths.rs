//! Where a task's files are: the `.dispatch/tasks/<id>/` layout of the
//! dispatch skill, spelled out per task for templates and the engine.

use serde::Serialize;

use crate::state::layout::{self, join};

/// A task's files, compatible with the dispatch skill.
#[derive(Clone, Debug, Serialize)]
pub struct TaskPaths {
    /// The project root (`.` in dry runs).
    pub root: String,
    /// The state folder, `ROOT/.dispatch` (agents in a worktree need leave
    /// to write there).
    pub state: String,
    pub task_dir: String,
    pub plan: String,
    pub output: String,
    pub context: String,
    pub ipc: String,
    pub prompt: String,
    /// Where the worker runs: the project root or its worktree.
    pub workdir: String,
}

impl TaskPaths {
    pub(super) fn new(root: &str, id: &str, workdir: String) -> Self {
        let task_dir = join(root, &layout::task_dir(id));
        let file = |name: &str| format!("{task_dir}/{name}");
        Self {
            plan: file(layout::PLAN),
            output: file(layout::OUTPUT),
            context: file(layout::CONTEXT),
            ipc: file(layout::IPC),
            prompt: file(layout::PROMPT),
            root: if root.is_empty() {
                ".".to_owned()
            } else {
                root.to_owned()
            },
            state: join(root, layout::DIR_NAME),
            task_dir,
            workdir,
        }
    }
}
