//! Where a task's files are: the `.dispatch/tasks/<id>/` layout of the
//! dispatch skill, spelled out per task for templates and the engine.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::state::layout::{self, join};

/// A task's files, compatible with the dispatch skill.
///
/// Only what differs between tasks is stored: the root is shared by every
/// task of a plan, the files inside the task's folder are derived from it
/// when asked for, and the working folder is kept only when it is not the
/// root. A 50,000-task sweep held nine owned paths per task (about 0.8 KiB
/// each task, twice while planning); serialised, it is the same nine fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPaths {
    /// The project root as the plan was given it (empty in dry runs).
    root: Arc<str>,
    /// `ROOT/.dispatch/tasks/ID`.
    task_dir: Box<str>,
    /// Where the worker runs when that is not the root (its worktree).
    workdir: Option<Box<str>>,
}

impl TaskPaths {
    pub(super) fn new(root: &Arc<str>, id: &str, workdir: String) -> Self {
        let mut paths = Self {
            root: Arc::clone(root),
            task_dir: join(root, &layout::task_dir(id)).into_boxed_str(),
            workdir: None,
        };
        paths.set_workdir(workdir);
        paths
    }

    /// A templated worktree path, once rendered.
    pub(super) fn set_workdir(&mut self, workdir: String) {
        self.workdir = (workdir != self.root()).then(|| workdir.into_boxed_str());
    }

    /// The project root (`.` in dry runs).
    pub fn root(&self) -> &str {
        if self.root.is_empty() {
            "."
        } else {
            &self.root
        }
    }

    /// The state folder, `ROOT/.dispatch` (agents in a worktree need leave
    /// to write there).
    pub fn state(&self) -> String {
        join(&self.root, layout::DIR_NAME)
    }

    pub fn task_dir(&self) -> &str {
        &self.task_dir
    }

    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.task_dir)
    }

    pub fn plan(&self) -> String {
        self.file(layout::PLAN)
    }

    pub fn output(&self) -> String {
        self.file(layout::OUTPUT)
    }

    pub fn context(&self) -> String {
        self.file(layout::CONTEXT)
    }

    pub fn ipc(&self) -> String {
        self.file(layout::IPC)
    }

    pub fn prompt(&self) -> String {
        self.file(layout::PROMPT)
    }

    /// Where the worker runs: the project root or its worktree.
    pub fn workdir(&self) -> &str {
        self.workdir.as_deref().unwrap_or_else(|| self.root())
    }

    /// Both hold one and the same root, not a copy each.
    #[cfg(test)]
    pub(super) fn shares_root_with(&self, other: &TaskPaths) -> bool {
        Arc::ptr_eq(&self.root, &other.root)
    }
}

/// The nine paths, in the order plans and templates have always shown them.
impl Serialize for TaskPaths {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TaskPaths", 9)?;
        s.serialize_field("root", self.root())?;
        s.serialize_field("state", &self.state())?;
        s.serialize_field("task_dir", self.task_dir())?;
        s.serialize_field("plan", &self.plan())?;
        s.serialize_field("output", &self.output())?;
        s.serialize_field("context", &self.context())?;
        s.serialize_field("ipc", &self.ipc())?;
        s.serialize_field("prompt", &self.prompt())?;
        s.serialize_field("workdir", self.workdir())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_paths_are_the_ones_stored_before() {
        let root: Arc<str> = Arc::from("/p");
        let paths = TaskPaths::new(&root, "a-1", "/p".to_owned());
        let json = serde_json::to_value(&paths).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "root": "/p", "state": "/p/.dispatch", "task_dir": "/p/.dispatch/tasks/a-1",
                "plan": "/p/.dispatch/tasks/a-1/plan.md", "output": "/p/.dispatch/tasks/a-1/output.md",
                "context": "/p/.dispatch/tasks/a-1/context.md", "ipc": "/p/.dispatch/tasks/a-1/ipc",
                "prompt": "/p/.dispatch/tasks/a-1/prompt.md", "workdir": "/p",
            })
        );
        let dry = TaskPaths::new(&Arc::from(""), "a", ".".to_owned());
        assert_eq!(
            (dry.root(), dry.workdir(), dry.state().as_str()),
            (".", ".", ".dispatch")
        );
        assert_eq!(dry.plan(), ".dispatch/tasks/a/plan.md");
    }

    /// A task that runs in the root keeps no path of its own for it.
    #[test]
    fn a_root_workdir_is_not_stored_per_task() {
        let root: Arc<str> = Arc::from("/p");
        let mut paths = TaskPaths::new(&root, "a", "/p".to_owned());
        assert!(paths.workdir.is_none());
        paths.set_workdir("/w/a".to_owned());
        assert_eq!(paths.workdir(), "/w/a");
    }
}
